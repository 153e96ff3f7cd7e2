"""Retarget motion-capture joint positions onto a body model (pose, one shape, root motion).

``retarget(joints, fmt, model)`` finds, for a whole sequence of world-frame 3D joints in a named
format, the body model's per-frame rotations of its body joints (``model.body_joints``, the root's
being the global orientation), one shape shared by all frames and a per-frame root translation,
minimising the mean over frames of

    w_data   * sum_k w_k |model keypoint k - target k|^2 / sum_k w_k     (cm^2)
  + w_pose   * sum_i |M_i rotvec(R_i)|^2   (a weak pull to rest, M_i = I for most joints: the
               twists no keypoint constrains, e.g. the forearm's roll, and the feet and hands
               stay at rest)
  + w_shape  * |shape|^2
  + w_smooth * keypoint acceleration (cm/frame^2)^2 + w_smooth_rot * 6D rotation acceleration.

The steps:

1. an analytic start: global orientation by Kabsch alignment of the torso, then each leg and arm
   as a two-bone chain (swing and twist of the upper bone from the limb's bending plane, bend of
   the lower bone);
2. the shape, fitted with the poses of up to 48 frames spread over the sequence: Levenberg-Marquardt
   on the poses (``_lm``), then L-BFGS on poses and shape together;
3. the poses and translations, chunk by chunk with the shape fixed: Levenberg-Marquardt from the
   analytic start, every frame at once (frames are independent without the temporal terms; its
   Jacobian is nearly free, see ``_attachments``; on a CMU walk it reaches ~10 mm in 15
   iterations where L-BFGS over 6D rotations was still at 20 mm after 300), then a few L-BFGS
   iterations over 6D rotations (as ``fit.py``) with the temporal terms, which see the end of the
   previous chunk.

Anny's limbs have two bones per segment (``upperleg01``/``upperleg02``, ``lowerarm01``/``lowerarm02``,
...), the second one mid-segment; bending it would "break" the limb to absorb bone-length
differences between the mocap skeleton and the body, so those bones (and ``pelvis.L/R``, which
move the hip joints) get a stiffer rotation prior (``STIFF``). Knees and elbows are hinges: with
only hip, knee and ankle to go by, bending the knee sideways is as good a fit as turning the
thigh, and costs less under an isotropic prior; so the component of their rotation about the
axis perpendicular to both the hinge axis and the bone (found from the rest keypoints) is also
``STIFFNESS`` times stiffer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import roma
import torch
from tqdm.auto import tqdm

import body_models
from lift3d import formats
from lift3d.fitting import losses
from lift3d.rotations import orthonormal_frame

TORSO = ["left_shoulder", "right_shoulder", "left_hip", "right_hip"]
FACE = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]

# Target keypoints whose definition differs between mocap skeletons (lift3d.mocap.skeletons) and
# the formats.DERIVED approximation a body model without them falls back to: the mocap ``spine``
# is a point of the real (curved) spine, ``head_top`` a fixed offset in the head frame. They get
# weight 0 unless the model has them natively. Face points are fixed offsets from the mocap head
# (adult averages), so they count half.
DEFAULT_WEIGHTS = {n: 0.5 for n in FACE}
UNLESS_NATIVE = ("spine", "head_top")

# Two-bone limb chains for the analytic start, per model:
# (upper bone, lower bone, root keypoint, middle keypoint, end keypoint, kind).
LIMB_CHAINS = {
    "anny": [(f"upperleg01.{s}", f"lowerleg01.{s}", f"{side}_hip", f"{side}_knee", f"{side}_ankle", "knee")
             for s, side in (("L", "left"), ("R", "right"))]
    + [(f"upperarm01.{s}", f"lowerarm01.{s}", f"{side}_shoulder", f"{side}_elbow", f"{side}_wrist", "elbow")
       for s, side in (("L", "left"), ("R", "right"))],
}
for _name in ("smpl", "smplh", "smplx"):
    LIMB_CHAINS[_name] = [(f"{side}_hip", f"{side}_knee", f"{side}_hip", f"{side}_knee", f"{side}_ankle", "knee")
                          for side in ("left", "right")] + \
                         [(f"{side}_shoulder", f"{side}_elbow", f"{side}_shoulder", f"{side}_elbow",
                           f"{side}_wrist", "elbow") for side in ("left", "right")]

# Bones whose rotation prior weighs STIFFNESS times more (see the module docstring).
STIFF = {
    "anny": [f"{b}.{s}" for b in ("pelvis", "upperleg02", "lowerleg02", "upperarm02", "lowerarm02")
             for s in ("L", "R")],
}
STIFFNESS = 30.0


@dataclass
class RetargetOptions:
    """Weights (the data term is in cm^2, so 1 cm RMS error costs 1) and schedule."""

    w_data: float = 1.0
    w_pose: float = 1.0
    w_shape: float = 0.1
    # Temporal terms, small: mocap is clean, and 1.0 on the keypoints already costs ~1 mm of fit
    # at 30 fps (it damps real accelerations); they keep unconstrained twists from flickering.
    w_smooth: float = 0.01        # per (cm/frame^2)^2 of keypoint acceleration
    w_smooth_rot: float = 1.0     # per (6D units/frame^2)^2 of body-rotation acceleration
    shape_frames: int = 48        # frames (spread over the sequence) the shape is fitted on
    shape_iters: int = 60         # L-BFGS iterations of the shape stage (poses and shape together)
    polish_iters: int = 10        # L-BFGS iterations per chunk after Levenberg-Marquardt (temporal terms)
    chunk: int = 250              # frames optimised together in the pose stage
    weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))


def _normalize(v: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp(min=eps)


def _skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrices: skew(v) @ x = v x x."""
    z = torch.zeros_like(v[..., 0])
    return torch.stack([torch.stack([z, -v[..., 2], v[..., 1]], -1),
                        torch.stack([v[..., 2], z, -v[..., 0]], -1),
                        torch.stack([-v[..., 1], v[..., 0], z], -1)], -2)


def _min_rotation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) smallest rotation taking unit vectors ``a`` to ``b`` (identity when opposite)."""
    vx = _skew(torch.cross(a, b, dim=-1))
    c = (a * b).sum(-1)
    eye = torch.eye(3, dtype=a.dtype, device=a.device).expand_as(vx)
    k = torch.where(c > -0.999, 1.0 / (1.0 + c).clamp(min=1e-3), torch.zeros_like(c))
    R = eye + vx + vx @ vx * k[..., None, None]
    return torch.where((c > -0.999)[..., None, None], R, eye)


def global_rotations(pose: torch.Tensor, parents: list[int], joints: list[int]) -> dict[int, torch.Tensor]:
    """World rotations of ``joints`` (and their ancestors): G_j = G_parent(j) @ pose[:, j].

    (The body models' local rotations are expressed in rest-pose world axes, so they compose
    this way; see body_models/anny.py.)
    """
    out: dict[int, torch.Tensor] = {}

    def get(j: int) -> torch.Tensor:
        if j not in out:
            p = parents[j]
            out[j] = pose[:, j] if p < 0 else get(p) @ pose[:, j]
        return out[j]

    for j in joints:
        get(j)
    return out


class _Targets:
    """Target keypoints in the model's vocabulary: positions, per-frame weights, the model map."""

    def __init__(self, model, joints: np.ndarray, fmt, weights: dict, device, dtype):
        names = formats.names(fmt)
        joints = np.asarray(joints, dtype=np.float64)
        if joints.ndim != 3 or joints.shape[1] != len(names) or joints.shape[2] not in (3, 4):
            raise ValueError(f"joints must be (T, {len(names)}, 3 or 4) for format {fmt!r}, got {joints.shape}")
        conf = joints[..., 3] if joints.shape[2] == 4 else np.ones(joints.shape[:2])
        xyz = joints[..., :3]
        conf = np.where(np.isfinite(xyz).all(-1), conf, 0.0)
        xyz = np.where(conf[..., None] > 0, np.nan_to_num(xyz), 0.0)
        keep, seen = [], set()
        for i, n in enumerate(names):  # a name given twice counts once
            if n not in seen:
                seen.add(n)
                keep.append(i)
        self.names = [names[i] for i in keep]
        W, available = formats.conversion_matrix(model.keypoint_names, self.names)
        w = np.array([0.0 if (n in UNLESS_NATIVE and n not in model.keypoint_names) else weights.get(n, 1.0)
                      for n in self.names])
        w = w * available
        self.W = torch.as_tensor(W, dtype=dtype, device=device)
        self.xyz = torch.as_tensor(xyz[:, keep], dtype=dtype, device=device)
        self.w = torch.as_tensor(conf[:, keep] * w, dtype=dtype, device=device)  # (T, K)
        self.index = {n: i for i, n in enumerate(self.names)}

    def model_points(self, out) -> torch.Tensor:
        return torch.einsum("ks,bsd->bkd", self.W, out.keypoints)

    def subset(self, idx):
        new = object.__new__(_Targets)
        new.__dict__.update(self.__dict__)
        new.xyz, new.w = self.xyz[idx], self.w[idx]
        return new


def _hinge_axis(d_u: torch.Tensor, l_r: torch.Tensor, kind: str) -> torch.Tensor:
    """Flexion axis (world, at rest) of a knee or elbow from its rest upper- and lower-bone
    directions: their cross product if the joint is bent at rest (Anny's elbows), else the axis
    that bends a knee's lower leg backwards or an elbow's forearm forwards."""
    bend = torch.cross(d_u, l_r, dim=-1)
    if bend.norm() > 0.3:
        return _normalize(bend)
    z = torch.tensor([0.0, 0.0, 1.0], dtype=d_u.dtype, device=d_u.device)
    return _normalize(torch.cross(d_u, -z if kind == "knee" else z, dim=-1))


def _initial_pose(model, tg: _Targets, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Analytic start (see the module docstring): (T, J, 3, 3) pose and (T, 3) translation."""
    T = tg.xyz.shape[0]
    dt, dev = tg.xyz.dtype, tg.xyz.device
    pose = model.rest_pose(T).to(dt)
    with torch.no_grad():
        rest = model(model.rest_pose(1).to(dt), shape, vertices=False)
    rest_kp = tg.model_points(rest)[0]  # (K, 3)
    root = rest.joints[0, 0]
    transl = torch.zeros(T, 3, dtype=dt, device=dev)
    torso = [tg.index[n] for n in TORSO if n in tg.index]
    if len(torso) >= 3:
        src = rest_kp[torso].expand(T, -1, -1)
        dst = tg.xyz[:, torso]
        ok = (tg.w[:, torso] > 0).all(1)
        R, t = roma.rigid_points_registration(src, dst)
        R = torch.where(ok[:, None, None], R, torch.eye(3, dtype=dt, device=dev))
        pose[:, 0] = R
        cen = torch.where(ok[:, None], t, tg.xyz[:, torso].mean(1) - rest_kp[torso].mean(0))
        transl = cen - root + (R @ root[:, None])[..., 0]
    names = model.joint_names
    for upper, lower, a, b, c, kind in LIMB_CHAINS.get(model.name, []):
        if upper not in names or lower not in names or not all(n in tg.index for n in (a, b, c)):
            continue
        iu, il = names.index(upper), names.index(lower)
        ka, kb, kc = tg.index[a], tg.index[b], tg.index[c]
        ok = (tg.w[:, [ka, kb, kc]] > 0).all(1)
        d_u = _normalize(rest_kp[kb] - rest_kp[ka])
        l_r = _normalize(rest_kp[kc] - rest_kp[kb])
        a_rest = _hinge_axis(d_u, l_r, kind)
        u_t = _normalize(tg.xyz[:, kb] - tg.xyz[:, ka])
        l_t = _normalize(tg.xyz[:, kc] - tg.xyz[:, kb])
        n = torch.cross(u_t, l_t, dim=-1)
        Gp = global_rotations(pose, model.parents, [model.parents[iu]])[model.parents[iu]]
        if kind == "knee":  # a knee bent a little "backwards" is a slightly hyperextended one, not a
            # hip turned 180 degrees; a knee bent more than 20 degrees is flexed, whatever the pelvis says
            flip = ((n * (Gp @ a_rest)).sum(-1) < 0) & (n.norm(dim=-1) < math.sin(math.radians(20)))
            n = torch.where(flip[:, None], -n, n)
        bent = n.norm(dim=-1) > 0.15
        G_full = orthonormal_frame(u_t, n) @ orthonormal_frame(d_u, a_rest).transpose(-1, -2)
        G_swing = _min_rotation(_normalize(Gp @ d_u), u_t) @ Gp
        G_u = torch.where(bent[:, None, None], G_full, G_swing)
        pose[:, iu] = torch.where(ok[:, None, None], Gp.transpose(-1, -2) @ G_u, pose[:, iu])
        Gl_parent = global_rotations(pose, model.parents, [model.parents[il]])[model.parents[il]]
        l_local = _normalize((Gl_parent.transpose(-1, -2) @ l_t[..., None])[..., 0])
        pose[:, il] = torch.where(ok[:, None, None], _min_rotation(l_r.expand_as(l_local), l_local), pose[:, il])
    return pose, transl


def _attachments(model, shape: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """(K, Jb) how rigidly each native keypoint follows each body joint's rotation.

    Turning joint i by a small world-axis rotation w turns its whole subtree about the joint's
    position p_i, so a point fixed to that subtree moves by w x (x - p_i). A keypoint blended
    from several bones moves by about a_ki w x (x - p_i), a_ki being the share of its skinning
    inside the subtree (1 for the ancestors of all its bones, 0 for unrelated joints). a_ki is
    measured once at rest by central differences, in one batched forward pass; it makes the
    Gauss-Newton Jacobian of ``_lm`` cost nothing but a few tensor products per iteration.
    """
    body = model.body_joints
    nb, dt = len(body), shape.dtype
    n = 2 * 3 * nb
    rv = torch.zeros(n, model.num_joints, 3, dtype=dt, device=shape.device)
    k = 0
    for j in body:
        for ax in range(3):
            rv[k, j, ax], rv[k + 1, j, ax] = eps, -eps
            k += 2
    with torch.no_grad():
        out = model(roma.rotvec_to_rotmat(rv), shape, vertices=False)
        rest = model(model.rest_pose(1).to(dt), shape, vertices=False)
    kp = out.keypoints.reshape(nb, 3, 2, -1, 3)
    J = (kp[:, :, 0] - kp[:, :, 1]) / (2 * eps)  # (nb, axis, K, 3): d kp / d w_i[axis]
    J = J.permute(2, 0, 3, 1)  # (K, nb, 3, 3)
    M = -_skew(rest.keypoints[0][:, None] - rest.joints[0, body][None])  # (K, nb, 3, 3)
    a = (J * M).sum((-1, -2)) / (M * M).sum((-1, -2)).clamp(min=1e-10)
    return a.clamp(0.0, 1.0)


def observed_joints(model, fmt, min_motion: float = 0.02) -> list[int]:
    """Body joints (root excluded) whose rotation moves some keypoint of ``fmt``: turning the
    joint by 1 radian at rest moves one of them by at least ``min_motion`` metres. The others
    (Anny's feet and hands for coco17/h36m17 targets) are left at rest by ``retarget``, so a
    prior learnt from retargeted motion knows nothing about them."""
    dt = model.dtype
    shape = torch.zeros(1, model.num_shape, dtype=dt, device=model.device)
    a = _attachments(model, shape)  # (Kn, Jb)
    W, available = formats.conversion_matrix(model.keypoint_names, fmt)
    with torch.no_grad():
        rest = model(model.rest_pose(1).to(dt), shape, vertices=False)
    lever = (rest.keypoints[0][:, None] - rest.joints[0, model.body_joints][None]).norm(dim=-1)  # (Kn, Jb)
    motion = torch.as_tensor(np.abs(W[available]), dtype=dt) @ (a * lever)  # (Kt, Jb), an upper bound
    return [j for j, m in zip(model.body_joints[1:], motion.max(0).values[1:].tolist()) if m >= min_motion]


def _inv_left_jacobian(phi: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vectors -> (..., 3, 3) inverse left Jacobian of SO(3):
    rotvec(exp(psi) R) ~= rotvec(R) + J^-1 psi for small psi."""
    th = phi.norm(dim=-1, keepdim=True)[..., None]  # (..., 1, 1)
    K = _skew(phi)
    small = th < 1e-3
    ths = th.clamp(min=1e-3)
    c = torch.where(small, torch.full_like(th, 1.0 / 12.0),
                    1.0 / ths**2 - (1.0 + torch.cos(ths)) / (2.0 * ths * torch.sin(ths).clamp(min=1e-6)))
    eye = torch.eye(3, dtype=phi.dtype, device=phi.device)
    return eye - 0.5 * K + c * (K @ K)


def prior_matrices(model) -> torch.Tensor:
    """(Jb-1, 3, 3) the rest prior's per-joint weighting M_i of rotation vectors (body joints
    after the root): cost |M_i rotvec(R_i)|^2. See the module docstring."""
    dt, dev = model.dtype, model.device
    body = model.body_joints[1:]
    stiff = set(STIFF.get(model.name, []))
    M = torch.eye(3, dtype=dt, device=dev).repeat(len(body), 1, 1)
    for i, j in enumerate(body):
        if model.joint_names[j] in stiff:
            M[i] *= math.sqrt(STIFFNESS)
    chains = [c for c in LIMB_CHAINS.get(model.name, []) if c[1] in model.joint_names]
    if chains:
        W, _ = formats.conversion_matrix(model.keypoint_names, [n for c in chains for n in c[2:5]])
        with torch.no_grad():
            rest = model(model.rest_pose(1), vertices=False).keypoints[0]
        kp = (torch.as_tensor(W, dtype=dt, device=dev) @ rest).reshape(len(chains), 3, 3)
        for (_, lower, _, _, _, kind), (a, b, c) in zip(chains, kp):
            j = model.joint_names.index(lower)
            if j not in body:
                continue
            d_u, l_r = _normalize(b - a), _normalize(c - b)
            h = _hinge_axis(d_u, l_r, kind)
            side = _normalize(torch.cross(h, l_r, dim=-1))
            B = orthonormal_frame(h, l_r)  # columns: hinge, bone (made orthogonal), sideways
            assert torch.allclose(B[:, 2].abs(), side.abs(), atol=1e-4)
            M[body.index(j)] = torch.diag(torch.tensor([1.0, 1.0, math.sqrt(STIFFNESS)], dtype=dt)) @ B.T
    return M


class _Problem:
    """The per-frame objective (everything but the temporal terms), shared by both optimisers:

        f_t = (1/w_mean) sum_k w_tk |kp_tk - y_tk|^2 [cm^2] + w_pose sum_i s_i |rotvec(R_ti)|^2

    (w_mean: the mean over frames of sum_k w_tk), the prior being |M_i rotvec(R_ti)|^2 with
    M_i = I, sqrt(STIFFNESS) I for ``STIFF`` bones, and for knees and elbows a matrix that weighs
    the sideways component (see the module docstring) STIFFNESS times more.
    """

    def __init__(self, model, tg: _Targets, opts: RetargetOptions):
        self.model, self.tg, self.opts = model, tg, opts
        self.body = model.body_joints
        self.M = prior_matrices(model)  # (Jb-1, 3, 3)
        self.w_mean = tg.w.sum(1).mean().clamp(min=1e-6)

    def data_cost(self, kp: torch.Tensor) -> torch.Tensor:
        r2 = (kp - self.tg.xyz).square().sum(-1) * 1e4
        return self.opts.w_data * (self.tg.w * r2).sum(1) / self.w_mean

    def prior_cost(self, pose: torch.Tensor) -> torch.Tensor:
        rv = roma.rotmat_to_rotvec(pose[:, self.body[1:]])
        return self.opts.w_pose * (self.M.to(rv.dtype) @ rv[..., None]).square().sum((1, 2, 3))

    def frame_cost(self, pose, transl, shape) -> tuple[torch.Tensor, object]:
        out = self.model(pose, shape, transl, vertices=False)
        return self.data_cost(self.tg.model_points(out)) + self.prior_cost(pose), out


def _lm(prob: _Problem, pose: torch.Tensor, transl: torch.Tensor, shape: torch.Tensor, attach: torch.Tensor,
        iters: int, bar) -> tuple[torch.Tensor, torch.Tensor]:
    """Levenberg-Marquardt on every frame at once (frames are independent here; shape fixed).

    Unknowns per frame: a world-axis rotation increment w_i for each body joint (the root's is
    the global orientation's) and the translation. Each iteration costs one forward pass."""
    model, tg = prob.model, prob.tg
    body, nb = prob.body, len(prob.body)
    T, dt, dev = pose.shape[0], pose.dtype, pose.device
    P = 3 * nb + 3
    sw = (prob.opts.w_data * tg.w / prob.w_mean).sqrt() * 100.0  # (T, Kt): residuals in weighted cm
    sM = math.sqrt(prob.opts.w_pose) * prob.M.to(dt)  # (Jb-1, 3, 3)
    Wt = tg.W  # (Kt, Kn)
    Jtr = Wt.sum(1)  # (Kt,) d target / d translation (derived points' weights sum to 1)
    eye3 = torch.eye(3, dtype=dt, device=dev)
    lam = torch.full((T,), 1e-2, dtype=dt, device=dev)
    with torch.no_grad():
        cost, out = prob.frame_cost(pose, transl, shape)
        for _ in range(iters):
            kp_n, joints = out.keypoints, out.joints[:, body]
            G = global_rotations(pose, model.parents, body)
            Gp = torch.stack([G[model.parents[j]] for j in body[1:]], 1)  # (T, Jb-1, 3, 3)
            # data Jacobian: d kp_k / d w_i = -a_ki [kp_k - p_i]x, mapped to the targets by W
            Jn = -attach[None, :, :, None, None] * _skew(kp_n[:, :, None] - joints[:, None])  # (T,Kn,Jb,3,3)
            Jt = torch.einsum("ts,bsixy->btxiy", Wt, Jn).reshape(T, -1, 3 * nb)
            Jt = torch.cat([Jt, (Jtr[:, None, None] * eye3).reshape(1, -1, 3).expand(T, -1, -1)], -1)
            r = ((tg.model_points(out) - tg.xyz) * sw[..., None]).reshape(T, -1)
            Jd = Jt * sw.repeat_interleave(3, 1)[..., None]
            H = Jd.transpose(1, 2) @ Jd
            g = (Jd.transpose(1, 2) @ r[..., None])[..., 0]
            # prior: rotvec(G_p^T exp(w) G_p R) ~= phi + Jl^-1(phi) G_p^T w
            phi = roma.rotmat_to_rotvec(pose[:, body[1:]])
            Jp = sM @ _inv_left_jacobian(phi) @ Gp.transpose(-1, -2)  # (T, Jb-1, 3, 3)
            rp = (sM @ phi[..., None])[..., 0]
            Hp = Jp.transpose(-1, -2) @ Jp
            gp = (Jp.transpose(-1, -2) @ rp[..., None])[..., 0]
            idx = torch.arange(3, 3 * nb, device=dev).reshape(nb - 1, 3)
            H[:, idx[:, :, None], idx[:, None, :]] += Hp
            g[:, 3:3 * nb] += gp.reshape(T, -1)
            diag = torch.diagonal(H, dim1=1, dim2=2)
            A = H + torch.diag_embed(lam[:, None] * diag + 1e-6)
            L, info = torch.linalg.cholesky_ex(A)
            step = -torch.cholesky_solve(g[..., None], L)[..., 0]
            step = torch.where((info == 0)[:, None], step, torch.zeros_like(step))
            w = step[:, :3 * nb].reshape(T, nb, 3)
            cand = pose.clone()
            cand[:, 0] = roma.rotvec_to_rotmat(w[:, 0]) @ pose[:, 0]
            local_w = (Gp.transpose(-1, -2) @ w[:, 1:, :, None])[..., 0]
            cand[:, body[1:]] = roma.rotvec_to_rotmat(local_w) @ pose[:, body[1:]]
            cand_t = transl + step[:, 3 * nb:]
            c_cost, c_out = prob.frame_cost(cand, cand_t, shape)
            ok = c_cost < cost
            pose = torch.where(ok[:, None, None, None], cand, pose)
            transl = torch.where(ok[:, None], cand_t, transl)
            out = type(out)(None, torch.where(ok[:, None, None], c_out.joints, out.joints),
                            torch.where(ok[:, None, None], c_out.keypoints, out.keypoints))
            cost = torch.where(ok, c_cost, cost)
            lam = torch.where(ok, lam / 3.0, lam * 5.0).clamp(1e-7, 1e7)
            bar.update(1)
    return pose, transl


def _lbfgs(prob: _Problem, pose0: torch.Tensor, transl0: torch.Tensor, shape0: torch.Tensor, free_shape: bool,
           iters: int, prev: torch.Tensor | None, bar) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L-BFGS over 6D rotations, translations (and the shape), with the temporal terms.
    ``prev``: (2, K, 3) fitted target points of the two frames before (previous chunk), or None."""
    model, opts = prob.model, prob.opts
    dt = pose0.dtype
    body = model.body_joints[1:]
    T = pose0.shape[0]
    root6 = torch.nn.Parameter(pose0[:, 0, :, :2].clone())
    body6 = torch.nn.Parameter(pose0[:, body, :, :2].clone())
    transl = torch.nn.Parameter(transl0.clone())
    shape = torch.nn.Parameter(shape0.clone()) if free_shape else shape0
    params = [root6, body6, transl] + ([shape] if free_shape else [])

    def full_pose() -> torch.Tensor:
        pose = pose0.clone()
        pose[:, 0] = roma.special_gramschmidt(root6)
        pose[:, body] = roma.special_gramschmidt(body6)
        return pose

    def objective() -> torch.Tensor:
        pose = full_pose()
        out = model(pose, shape, transl, vertices=False)
        kp = prob.tg.model_points(out)
        loss = (prob.data_cost(kp) + prob.prior_cost(pose)).mean()
        if free_shape:
            loss = loss + opts.w_shape * shape.square().sum()
        if opts.w_smooth and T + (0 if prev is None else len(prev)) >= 3:
            seq = kp if prev is None else torch.cat([prev, kp])
            loss = loss + opts.w_smooth * 1e4 * losses.acceleration(seq.flatten(1))
        if opts.w_smooth_rot and T >= 3:
            loss = loss + opts.w_smooth_rot * losses.acceleration(body6.flatten(1))
        return loss

    optim = torch.optim.LBFGS(params, lr=1.0, max_iter=iters, history_size=20, line_search_fn="strong_wolfe",
                              tolerance_change=1e-10, tolerance_grad=1e-8)

    def closure() -> torch.Tensor:
        optim.zero_grad()
        loss = objective()
        loss.backward()
        bar.update(1)
        return loss

    if iters > 0:
        optim.step(closure)
    with torch.no_grad():
        return full_pose(), transl.detach().clone(), shape.detach().clone()


def retarget(joints_world: np.ndarray, fmt, model="anny", iters: int = 15, progress: bool = True,
             options: RetargetOptions | None = None, shape: np.ndarray | None = None) -> dict:
    """Fit a body model to a sequence of world-frame 3D joints (motion capture).

    Args:
        joints_world: (T, J, 3) positions in metres (lift3d world: Y up), or (T, J, 4) with a
            confidence/weight last (0 = missing; NaN positions count as missing).
        fmt: the joints' format: a ``lift3d.formats`` name or a list of names (e.g. coco17's names
            followed by h36m17's pelvis/spine/neck/head, with the joints concatenated to match).
        model: a body model or its name for ``body_models.load``.
        iters: Levenberg-Marquardt iterations per stage (the shape stage, then each chunk).
        progress: show a tqdm bar.
        options: weights and schedule (``RetargetOptions``).
        shape: (S,) a known body shape (e.g. from another take of the same subject): the shape
            stage is skipped.
    Returns:
        dict with ``pose`` (T, Jm, 3, 3) local rotations (only ``model.body_joints`` differ from
        rest), ``shape`` (S,), ``transl`` (T, 3), ``error_mm`` (mean distance of the fitted
        keypoints to the weighted targets), ``frame_error_mm`` (T,) and ``names`` (the targets).
    """
    opts = options or RetargetOptions()
    if isinstance(model, str):
        model = body_models.load(model)
    dt, dev = model.dtype, model.device
    tg = _Targets(model, joints_world, fmt, opts.weights, dev, dt)
    T = tg.xyz.shape[0]
    if T == 0:
        raise ValueError("no frames to retarget")
    chunks = [(s, min(T, s + opts.chunk)) for s in range(0, T, opts.chunk)]
    n_eval = (0 if shape is not None else iters + int(1.25 * opts.shape_iters)) + \
        len(chunks) * (iters + int(1.25 * opts.polish_iters))
    bar = tqdm(total=n_eval, desc="retargeting", unit="step", disable=not progress, leave=False)

    if shape is not None:
        shape = torch.as_tensor(np.asarray(shape), dtype=dt, device=dev).reshape(1, model.num_shape)
    else:  # 1. Shape, on a few frames spread over the sequence (not consecutive: no temporal terms).
        pick = np.unique(np.linspace(0, T - 1, min(T, opts.shape_frames)).round().astype(int))
        sub = tg.subset(torch.as_tensor(pick))
        static = RetargetOptions(**{**opts.__dict__, "w_smooth": 0.0, "w_smooth_rot": 0.0})
        prob = _Problem(model, sub, static)
        shape = torch.zeros(1, model.num_shape, dtype=dt, device=dev)
        pose, transl = _initial_pose(model, sub, shape)
        pose, transl = _lm(prob, pose, transl, shape, _attachments(model, shape), iters, bar)
        _, _, shape = _lbfgs(prob, pose, transl, shape, True, opts.shape_iters, None, bar)
        if model.name == "anny":  # the model clamps phenotypes to their valid range: stay inside it
            shape = shape.clamp(-0.5, 0.5)

    # 2. Poses and translations, chunk by chunk, with the shape fixed.
    attach = _attachments(model, shape)
    poses, transls, prev = [], [], None
    for s, e in chunks:
        part = tg.subset(slice(s, e))
        prob = _Problem(model, part, opts)
        pose, transl = _initial_pose(model, part, shape)
        pose, transl = _lm(prob, pose, transl, shape, attach, iters, bar)
        pose, transl, _ = _lbfgs(prob, pose, transl, shape, False, opts.polish_iters, prev, bar)
        with torch.no_grad():
            prev = part.model_points(model(pose[-2:], shape, transl[-2:], vertices=False))
        poses.append(pose)
        transls.append(transl)
    bar.close()
    pose, transl = torch.cat(poses), torch.cat(transls)
    with torch.no_grad():
        kp = tg.model_points(model(pose, shape, transl, vertices=False))
    d = (kp - tg.xyz).norm(dim=-1)
    used = (tg.w > 0).to(dt)
    frame_err = (d * used).sum(1) / used.sum(1).clamp(min=1)
    return {
        "pose": pose.cpu().double().numpy(),
        "shape": shape[0].cpu().double().numpy(),
        "transl": transl.cpu().double().numpy(),
        "error_mm": float(1000 * (d * used).sum() / used.sum().clamp(min=1)),
        "frame_error_mm": 1000 * frame_err.cpu().double().numpy(),
        "names": tg.names,
    }
