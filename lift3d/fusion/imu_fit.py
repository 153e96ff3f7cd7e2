"""A body motion from body-worn IMUs alone (no camera): sparse sensors plus priors.

Six sensors (``imu.SPARSE6``) fix six segments' rotations; every other joint comes from the
priors learned from motion capture (the GMM over joint rotations and the joint-angle limits,
``fitting.prior``) and temporal smoothness. The mountings must be known (an N-pose recording,
``IMUData.calibration``); the result is expressed in lift3d's world (Y up) with the IMU
world's heading. Root translation is not estimated (the body stays in place, its lowest point
on the floor y = 0): double-integrating accelerometers drifts by metres within seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import roma
import torch
from tqdm.auto import tqdm

import body_models
from lift3d.fitting import losses
from lift3d.fusion.imu import Y_UP_TO_Z_UP, IMUData, mountings_from_calibration, segment_rotations
from lift3d.io_utils import Lift3DError
from lift3d.types import BodyFit


@dataclass
class IMUFitOptions:
    """Weights and iterations of ``fit_imu_only``."""

    w_imu: float = 1.0       # per unit of ||G - G_imu||_F^2
    w_prior: float = 1e-3    # mocap GMM, per nat
    w_limits: float = 0.1    # per rad^2 outside the learned joint-angle limits
    w_pose: float = 1e-3     # rotation prior ||R - I||^2
    w_smooth: float = 10.0   # per (m/frame^2)^2 of joint positions
    # The IMU-conditional prior (fusion.imu_prior): start from and pull towards the pose the six
    # sensors imply, per unit of ||R - R_prior||_F^2 / its variance, summed over joints (0 = the
    # GMM alone). Weak beside w_imu: the prior's variances are for the motion it learnt, and a
    # pose far from it must still follow the sensors (tests/test_imu.py, random poses).
    w_imu_prior: float = 5e-4
    iters: int = 150


def fit_imu_only(imu: IMUData, model: str | body_models.BodyModel = "anny",
                 options: IMUFitOptions | None = None, shape: np.ndarray | None = None,
                 progress: bool = True) -> BodyFit:
    """Fit the body model's pose to IMU orientations alone.

    Args:
        imu: the streams, with ``calibration`` (N-pose readings) for the mountings.
        model: body model or its name.
        options: weights and iterations.
        shape: (S,) the person's shape if known (zeros: the average body).
    Returns:
        ``BodyFit`` in the world frame (Y up, floor y = 0), the body in place.
    Raises:
        Lift3DError: no calibration readings, or segments the model does not have.
    """
    from lift3d.fitting.fit import _pose_prior, _rot6d_to_matrix

    opts = options or IMUFitOptions()
    if isinstance(model, str):
        model = body_models.load(model)
    if imu.calibration is None:
        raise Lift3DError("an IMU-only fit needs the sensors' N-pose calibration readings (IMUData.calibration)")
    missing = [s for s in imu.segments if s not in model.joint_names]
    if missing:
        raise Lift3DError(f"IMU segment(s) {', '.join(missing)} are not joints of the {model.name} model")
    idx = [model.joint_names.index(s) for s in imu.segments]
    M = mountings_from_calibration(imu.calibration)
    # Segment rotations in lift3d's world: Y_UP_TO_Z_UP^T R M^T (the IMU world's own heading).
    target = Y_UP_TO_Z_UP.T @ imu.orientation @ M[None].transpose(0, 1, 3, 2)
    dt = model.dtype
    T = imu.num_frames
    tgt = torch.as_tensor(target, dtype=dt)
    w = torch.as_tensor(imu.valid.astype(np.float64), dtype=dt)
    shape_t = torch.as_tensor(np.zeros(model.num_shape) if shape is None else shape, dtype=dt)[None]
    body = model.body_joints[1:]
    root = idx.index(0) if 0 in idx else None
    root0 = tgt[:, root] if root is not None else torch.eye(3, dtype=dt).expand(T, 3, 3)
    root6 = torch.nn.Parameter(root0[..., :2].contiguous().clone())
    body6 = torch.nn.Parameter(torch.eye(3, dtype=dt)[:, :2].expand(T, len(body), 3, 2).contiguous().clone())
    prior = _pose_prior(model, dt, "cpu")
    cond = None
    if opts.w_imu_prior > 0:
        from lift3d.fusion.imu_prior import conditional_rotations

        cond = conditional_rotations(model, tgt, idx, torch.tensor([0.0, 1.0, 0.0], dtype=dt), imu.fps)
    if cond is not None:
        init = torch.eye(3, dtype=dt).repeat(T, len(body), 1, 1)
        init[:, [body.index(j) for j in cond[0]]] = cond[1]
        body6 = torch.nn.Parameter(init[..., :2].contiguous().clone())
        cond_w = opts.w_imu_prior * w.min(1).values

    def full_pose() -> torch.Tensor:
        pose = model.rest_pose(T).clone()
        pose[:, 0] = _rot6d_to_matrix(root6)
        pose[:, body] = _rot6d_to_matrix(body6)
        return pose

    bar = tqdm(total=int(1.25 * opts.iters), desc="fitting to IMUs", disable=not progress, leave=False)
    optim = torch.optim.LBFGS([root6, body6], lr=1.0, max_iter=opts.iters, history_size=20,
                              line_search_fn="strong_wolfe", tolerance_change=1e-12, tolerance_grad=1e-10)

    def closure() -> torch.Tensor:
        optim.zero_grad()
        pose = full_pose()
        seg = segment_rotations(pose, model.parents, idx)
        loss = opts.w_imu * losses.imu_orientation(seg, tgt, w)
        loss = loss + opts.w_pose * losses.rotation_prior(pose[:, body])
        if cond is not None:
            loss = loss + losses.conditional_rotation(pose[:, cond[0]], cond[1], cond[2], cond_w)
        if prior is not None:
            loss = loss + opts.w_prior * prior.nll(pose).mean() + opts.w_limits * prior.angle_limit_penalty(pose).mean()
        out = model(pose, shape_t, vertices=False)
        loss = loss + opts.w_smooth * losses.acceleration(out.keypoints)
        loss.backward()
        bar.update(1)
        return loss

    optim.step(closure)
    bar.close()
    with torch.no_grad():
        pose = full_pose()
        out = model(pose, shape_t)
        floor = out.vertices[..., 1].min(1).values  # (T,) lowest point per frame
    transl = np.zeros((T, 1, 3))
    transl[:, 0, 1] = -floor.double().numpy()
    return BodyFit(model.name, pose.double().numpy()[:, None], shape_t.double().numpy(), transl, imu.fps,
                   frame="world")
