"""Mocap retargeting and the learned pose prior (lift3d.fitting.retarget, lift3d.fitting.prior)."""
import math

import numpy as np
import pytest
import roma
import torch

from lift3d.fitting.prior import DEFAULT_PATH, PosePrior, fit_gmm, mirror_features
from lift3d.fitting.retarget import retarget
from lift3d.fitting.train_prior import TARGET_NAMES, target_joints
from lift3d.io_utils import Lift3DError

CLIP_FRAMES = 60
RETARGET_BOUND_MM = 25.0  # CMU skeletons and Anny define joints differently; ~13-17 mm is typical


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Batched small matrix products run far slower with threads fighting over busy cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def prior():
    return PosePrior.load()


@pytest.fixture(scope="module")
def held_out_clip(shared_data, anny):
    """60 frames of a walk of CMU subject 02 (held out of the prior's training), retargeted."""
    from lift3d.mocap import load_motion

    path = shared_data / "cmu-mocap" / "asfamc" / "02" / "02_01.amc"
    if not path.is_file():
        pytest.skip(f"needs {path} (CMU mocap subject 02)")
    motion = load_motion(path).resample(30.0)
    seq = {"inp": motion.to_joints3d("coco17").data[:, 0], "out": motion.to_joints3d("h36m17").data[:, 0]}
    joints = target_joints(seq)[20:20 + CLIP_FRAMES]
    assert len(joints) == CLIP_FRAMES
    return joints, retarget(joints, TARGET_NAMES, anny, progress=False)


def _rotate_joint(pose: torch.Tensor, j: int, rotvec) -> torch.Tensor:
    """Compose a world-axis rotation onto joint j's local rotation of every frame."""
    out = pose.clone()
    R = roma.rotvec_to_rotmat(torch.as_tensor(rotvec, dtype=pose.dtype))
    out[:, j] = R @ out[:, j]
    return out


def _elbow_axis(anny, side: str = "left") -> torch.Tensor:
    """The left elbow's flexion axis at rest (world): upper arm x forearm (Anny's rest elbow is bent)."""
    from lift3d import formats

    with torch.no_grad():
        kp = anny.keypoints(anny(anny.rest_pose(1), vertices=False), "coco17")[0, :, :3]
    s, e, w = (kp[formats.index("coco17", f"{side}_{n}")] for n in ("shoulder", "elbow", "wrist"))
    axis = torch.cross(e - s, w - e, dim=-1)
    return axis / axis.norm()


def test_retarget_real_clip(held_out_clip, anny):
    joints, res = held_out_clip
    T = CLIP_FRAMES
    assert res["pose"].shape == (T, anny.num_joints, 3, 3)
    assert res["shape"].shape == (anny.num_shape,) and res["transl"].shape == (T, 3)
    assert np.isfinite(res["pose"]).all()
    # Only the body joints move; the others (fingers, toes, eyes) stay at rest.
    others = [j for j in range(anny.num_joints) if j not in anny.body_joints]
    assert np.allclose(res["pose"][:, others], np.eye(3), atol=1e-6)
    # Mean keypoint distance to the mocap joints, with both skeletons' definitions differing.
    assert res["error_mm"] < RETARGET_BOUND_MM, res["error_mm"]
    assert np.percentile(res["frame_error_mm"], 95) < 1.5 * RETARGET_BOUND_MM
    # The result really is the motion: the fitted ankles follow the mocap ankles.
    with torch.no_grad():
        out = anny(torch.as_tensor(res["pose"], dtype=torch.float32),
                   torch.as_tensor(res["shape"], dtype=torch.float32)[None],
                   torch.as_tensor(res["transl"], dtype=torch.float32), vertices=False)
    ank = anny.keypoints(out, "coco17")[:, 15, :3].numpy()
    assert np.abs(ank - joints[:, 15]).max() < 0.08


def test_prior_prefers_real_poses(held_out_clip, prior, anny):
    _, res = held_out_clip
    real = torch.as_tensor(res["pose"], dtype=torch.float32)
    nll_real = prior.nll(real)
    assert torch.isfinite(nll_real).all()
    # Random articulations (0.5 rad per axis on every prior joint).
    g = torch.Generator().manual_seed(0)
    rnd = anny.rest_pose(CLIP_FRAMES)
    rnd[:, prior.joint_indices] = roma.rotvec_to_rotmat(0.5 * torch.randn(CLIP_FRAMES, len(prior.joint_indices), 3,
                                                                         generator=g))
    nll_rnd = prior.nll(rnd)
    assert nll_real.max() < nll_rnd.min()
    # The same real poses with the left knee bent 40 degrees backwards (its flexion is about +x at
    # rest). The mixture is soft there (~10 nats, within the spread of real poses): the hard stop
    # is ``angle_limit_penalty``'s job.
    knee = anny.joint_names.index("lowerleg01.L")
    bad = real.clone()
    bad[:, knee] = roma.rotvec_to_rotmat(torch.tensor([-math.radians(40), 0.0, 0.0]))
    gain = prior.nll(bad) - nll_real
    assert (gain > 2).all() and gain.mean() > 5, gain
    assert (prior.angle_limit_penalty(bad) > 0).all()
    # Real (held-out) motion is inside the limits.
    assert (prior.angle_limit_penalty(real) < 1e-3).float().mean() > 0.95
    # The max-mixture energy bounds the exact negative log-density from above.
    assert (prior.nll(real, mode="min") >= nll_real - 1e-3).all()


def test_angle_limits(prior, anny):
    rest = anny.rest_pose(1)
    assert prior.angle_limit_penalty(rest).item() == 0.0
    knee = anny.joint_names.index("lowerleg01.L")
    elbow = anny.joint_names.index("lowerarm01.L")
    assert prior.angle_limit_penalty(_rotate_joint(rest, knee, [math.radians(60), 0, 0])).item() == 0.0  # flexed
    assert prior.angle_limit_penalty(_rotate_joint(rest, knee, [-math.radians(30), 0, 0])).item() > 0.0
    axis = _elbow_axis(anny)  # Anny's rest elbow is ~40 degrees flexed: straighten it and go 40 beyond
    assert prior.angle_limit_penalty(_rotate_joint(rest, elbow, axis * math.radians(40))).item() == 0.0
    assert prior.angle_limit_penalty(_rotate_joint(rest, elbow, -axis * math.radians(80))).item() > 0.0
    for j in (knee, elbow):  # differentiable, and pushing back inside
        bad = _rotate_joint(rest, j, [-math.radians(40), 0, 0] if j == knee else -axis * math.radians(80))
        x6 = bad[..., :2].clone().requires_grad_()
        prior.angle_limit_penalty(roma.special_gramschmidt(x6)).sum().backward()
        assert torch.isfinite(x6.grad).all() and x6.grad[0, j].abs().sum() > 0


def test_nll_gradient_moves_random_pose_towards_plausible(prior, anny):
    g = torch.Generator().manual_seed(1)
    J = prior.joint_indices
    rv0 = 0.4 * torch.randn(8, len(J), 3, generator=g)
    x6 = torch.nn.Parameter(roma.rotvec_to_rotmat(rv0)[..., :2].clone())

    def pose_of(x):
        p = anny.rest_pose(8).clone()
        p[:, J] = roma.special_gramschmidt(x)
        return p

    with torch.no_grad():
        start = prior.nll(pose_of(x6))
        pen0 = prior.angle_limit_penalty(pose_of(x6))
    opt = torch.optim.Adam([x6], lr=0.02)
    for i in range(150):
        opt.zero_grad()
        loss = prior.nll(pose_of(x6)).sum()
        loss.backward()
        if i == 0:
            assert torch.isfinite(x6.grad).all() and x6.grad.abs().sum() > 0
        opt.step()
    with torch.no_grad():
        end = prior.nll(pose_of(x6))
        pen1 = prior.angle_limit_penalty(pose_of(x6))
    assert (end < start - 50).all(), (start, end)
    assert pen1.sum() < 0.2 * pen0.sum()
    # It ends as likely as the training motion on average (meta: mean training NLL).
    assert end.mean() < prior.meta["nll_train"] + 20


def test_shipped_prior_loads(prior, anny):
    assert DEFAULT_PATH.is_file() and DEFAULT_PATH.stat().st_size < 1_000_000
    prior.check(anny)
    assert prior.model_name == "anny"
    assert anny.joint_names[0] not in prior.joint_names  # no global orientation
    assert set(prior.joint_indices) <= set(anny.body_joints)
    assert {"lowerleg01.L", "lowerleg01.R", "lowerarm01.L", "lowerarm01.R"} <= set(prior.joint_names)
    assert 8 <= prior.num_components <= 16 and prior.dim == 3 * len(prior.joint_names)
    assert torch.allclose(prior.weights.sum(), torch.tensor(1.0), atol=1e-5)
    assert (prior.limit_lo <= 0).all() and (prior.limit_hi >= 0).all()
    for key in ("frames", "retarget_error_mm", "nll_train", "nll_held_out"):
        assert key in prior.meta


def test_em_recovers_a_known_mixture_and_roundtrips(tmp_path):
    rng = np.random.default_rng(0)
    names = ["a.L", "a.R"]
    mu = np.array([[0.5, 0.1, 0.0, -0.5, 0.2, 0.1], [-0.6, 0.0, 0.3, 0.6, -0.2, 0.0]])
    x = np.concatenate([rng.normal(mu[0], 0.05, (600, 6)), rng.normal(mu[1], 0.1, (400, 6))])
    w, means, A, ll = fit_gmm(x, 2, reg=1e-6, iters=100, progress=False)
    order = np.argsort(-w)
    assert np.allclose(w[order], [0.6, 0.4], atol=0.02)
    assert np.abs(means[order] - mu).max() < 0.03
    std = 1 / np.sqrt(np.diag(A[order[0]] @ A[order[0]].T))  # only approximately the marginal std
    assert np.all((std > 0.03) & (std < 0.08))
    # save / load keeps the density; mirroring twice is the identity
    p = PosePrior("test", names, [1, 2], w, means, A, np.tile(np.eye(3), (2, 1, 1)), -np.ones((2, 3)),
                  np.ones((2, 3)), {"k": 1})
    p.save(tmp_path / "p.npz")
    q = PosePrior.load(tmp_path / "p.npz")
    pose = roma.rotvec_to_rotmat(torch.as_tensor(rng.normal(0, 0.3, (5, 3, 3)), dtype=torch.float32))
    assert torch.allclose(p.nll(pose), q.nll(pose), atol=1e-3) and q.meta == {"k": 1}
    assert np.allclose(mirror_features(mirror_features(x[:3], names), names), x[:3])


def test_retarget_and_prior_work_for_smpl_too(tmp_path):
    """Retargeting, the prior's joints and its file are model-generic: a synthetic SMPL model
    (the smplx file layout, as in test_smpl_model) posed smoothly is recovered and gets a prior."""
    from test_smpl_model import make_model_data

    from body_models.smpl import SMPLFamily
    from lift3d.fitting.retarget import observed_joints
    from lift3d.fitting.prior import pose_features

    (tmp_path / "smpl").mkdir()
    np.savez(tmp_path / "smpl" / "SMPL_NEUTRAL.npz", **make_model_data("smpl"))
    smpl = SMPLFamily("smpl", model_path=tmp_path)
    T, g = 40, torch.Generator().manual_seed(0)
    body = smpl.body_joints[1:]
    rv = torch.zeros(T, smpl.num_joints, 3)
    wave = torch.sin(torch.linspace(0, 3, T))[:, None, None]
    rv[:, body] = 0.25 * torch.randn(1, len(body), 3, generator=g) + 0.3 * wave * torch.randn(1, len(body), 3,
                                                                                           generator=g)
    rv[:, 0] = torch.tensor([0.0, 1.0, 0.0])
    shape = 0.5 * torch.randn(1, smpl.num_shape, generator=g)
    with torch.no_grad():
        out = smpl(roma.rotvec_to_rotmat(rv), shape, torch.tensor([0.3, 0.9, 0.1]).expand(T, 3), vertices=False)
    targets = smpl.keypoints(out, TARGET_NAMES)[..., :3].numpy()
    res = retarget(targets, TARGET_NAMES, smpl, progress=False)
    assert res["error_mm"] < 15, res["error_mm"]
    joints = observed_joints(smpl, TARGET_NAMES)
    names = [smpl.joint_names[j] for j in joints]
    assert {"left_knee", "right_elbow", "spine2"} <= set(names) and "left_wrist" not in names
    feats = pose_features(res["pose"], joints).astype(np.float64)
    p = PosePrior.fit(np.concatenate([feats, mirror_features(feats, names)]), smpl.name, names, joints,
                      components=2, progress=False)
    p.save(tmp_path / "smpl_prior.npz")
    q = PosePrior.load(tmp_path / "smpl_prior.npz")
    q.check(smpl)
    with pytest.raises(Lift3DError, match="anny"):
        PosePrior.load().check(smpl)
    assert torch.isfinite(q.nll(torch.as_tensor(res["pose"], dtype=torch.float32))).all()
