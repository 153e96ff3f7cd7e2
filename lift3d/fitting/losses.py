"""Objective terms of the body fit: small pure functions on torch tensors.

Shapes: T = frames, K = keypoints, J = joints. Every term returns a scalar that is a weighted
*mean*, so that weights keep their meaning whatever the sequence length.
"""
from __future__ import annotations

import torch


def project(points: torch.Tensor, K: torch.Tensor, min_depth: float = 0.05) -> torch.Tensor:
    """Pinhole projection of camera-frame points.

    Args:
        points: (..., 3) in the OpenCV camera frame (z forward), metres.
        K: (3, 3) intrinsics.
        min_depth: depths are clamped here so that a point crossing the image plane during
            optimisation gives a large but finite residual instead of a sign flip.
    Returns:
        (..., 2) pixels.
    """
    z = points[..., 2:3].clamp(min=min_depth)
    xy = points[..., :2] / z
    return xy * torch.stack([K[0, 0], K[1, 1]]) + torch.stack([K[0, 2], K[1, 2]])


def gmof(residual_sq: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure robust penalty of squared residuals: sigma^2 r^2 / (sigma^2 + r^2).

    Quadratic near zero, bounded by sigma^2 far away, so one wrong detection (a swapped
    left/right wrist) cannot drag the whole body.
    """
    s2 = sigma * sigma
    return s2 * residual_sq / (s2 + residual_sq)


def reprojection(points_cam: torch.Tensor, observed: torch.Tensor, K: torch.Tensor,
                 sigma_px: float) -> torch.Tensor:
    """Robust, confidence-weighted 2D reprojection error.

    Args:
        points_cam: (T, K, 3) model keypoints in the camera frame.
        observed: (T, K, 3) detected pixels + confidence (0 = missing).
        K: (3, 3) intrinsics.
        sigma_px: robustness scale in pixels.
    Returns:
        scalar: mean over confident keypoints of gmof(r^2) / sigma^2 (dimensionless, <= 1).
    """
    uv = project(points_cam, K)
    r2 = (uv - observed[..., :2]).square().sum(-1)
    w = observed[..., 2]
    return (w * gmof(r2, sigma_px)).sum() / (w.sum().clamp(min=1e-6) * sigma_px**2)


def root_relative_3d(points: torch.Tensor, target: torch.Tensor, root: list[int],
                     sigma: float = 0.0) -> torch.Tensor:
    """Confidence-weighted squared distance of root-relative 3D keypoints (metres^2).

    Args:
        points: (T, K, 3) model keypoints.
        target: (T, K, 4) target xyz + confidence, same keypoint order.
        root: keypoint indices whose mean is the root (e.g. both hips).
        sigma: robust scale in metres (``gmof``; 0 = plain squares): a target joint further off
            than about sigma pulls no harder than one sigma off.
    """
    p = points - points[:, root].mean(1, keepdim=True)
    q = target[..., :3] - target[:, root, :3].mean(1, keepdim=True)
    w = target[..., 3] * target[:, root, 3].min(1, keepdim=True).values
    r2 = (p - q).square().sum(-1)
    if sigma > 0:
        r2 = gmof(r2, sigma)  # ~r2 near zero: the weight keeps its meaning
    return (w * r2).sum() / w.sum().clamp(min=1e-6)


def rotation_prior(rotations: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared Frobenius distance of (T, J, 3, 3) local rotations to the rest pose.

    ||R - I||_F^2 = 4 (1 - cos theta): a smooth penalty on the rotation angle.
    """
    eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    d = (rotations - eye).square().sum((-1, -2))  # (T, J)
    if weights is not None:
        d = d * weights
    return d.mean()


def acceleration(x: torch.Tensor) -> torch.Tensor:
    """Mean squared second difference along time of a (T, ...) sequence (units^2/frame^4)."""
    if x.shape[0] < 3:
        return x.new_zeros(())
    return (x[2:] - 2 * x[1:-1] + x[:-2]).square().sum(-1).mean()


def velocity(x: torch.Tensor) -> torch.Tensor:
    """Mean squared first difference along time of a (T, ...) sequence (units^2/frame^2)."""
    if x.shape[0] < 2:
        return x.new_zeros(())
    return (x[1:] - x[:-1]).square().sum(-1).mean()


def foot_sliding(feet: torch.Tensor, contact: torch.Tensor) -> torch.Tensor:
    """Mean squared displacement of foot points between consecutive frames in which both are
    in contact (metres^2/frame^2): feet on the ground do not slide.

    Args:
        feet: (T, F, 3) foot points; contact: (T, F) bool or 0/1.
    """
    if feet.shape[0] < 2:
        return feet.new_zeros(())
    both = (contact[1:] * contact[:-1]).to(feet.dtype)  # (T-1, F)
    step = (feet[1:] - feet[:-1]).square().sum(-1)
    return (both * step).sum() / both.sum().clamp(min=1.0)


def ground_contact(feet: torch.Tensor, contact: torch.Tensor, normal: torch.Tensor,
                   offset: torch.Tensor | float, lift: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Feet in contact rest on the floor, and no foot point goes below it (metres^2).

    Args:
        feet: (T, F, 3) foot points; contact: (T, F) bool or 0/1.
        normal: (3,) unit floor normal pointing up; offset: floor is normal . x + offset = 0.
        lift: (F,) or scalar height each point has above the floor when its foot stands flat
            (an ankle is ~8 cm up, a toe ~2 cm).
    Returns:
        mean over points of contact * (height - lift)^2 + relu(-height)^2.
    """
    h = feet @ normal + offset  # (T, F)
    c = contact.to(feet.dtype)
    return (c * (h - lift).square() + torch.relu(-h).square()).mean()


def conditional_rotation(rot: torch.Tensor, target: torch.Tensor, var: torch.Tensor,
                         weight: torch.Tensor) -> torch.Tensor:
    """Per-frame weighted mean over frames of sum_j ||R_j - R_target,j||_F^2 / var_j: the pull
    towards a prior's rotations, each joint by how sure the prior is of it.

    Args:
        rot: (T, J, 3, 3) the fit's local rotations of the prior's joints.
        target: (T, J, 3, 3) the prior's rotations; var: (T, J) their variances.
        weight: (T,) per-frame weights (0 drops a frame).
    """
    d = ((rot - target).square().sum((-1, -2)) / var).sum(-1)
    return (weight * d).mean()


def imu_orientation(segment_rot: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean squared Frobenius distance between the fit's segment rotations and the
    IMU-derived ones (4 (1 - cos theta): 1 degree costs 1.2e-3).

    Args:
        segment_rot: (T, N, 3, 3) world rotations of the sensed segments in the fit's frame.
        target: (T, N, 3, 3) the same rotations measured by the sensors (Q^T R M^T).
        weight: (T, N) 0 for dropped samples.
    """
    d = (segment_rot - target).square().sum((-1, -2))
    return (weight * d).sum() / weight.sum().clamp(min=1e-6)


def imu_acceleration(points: torch.Tensor, specific_force: torch.Tensor, gravity: torch.Tensor,
                     weight: torch.Tensor, fps: float) -> torch.Tensor:
    """Weighted mean squared difference (m/s^2)^2 between the sensor points' acceleration in the
    fit and the accelerometers' (specific force plus gravity, in the fit's frame).

    Args:
        points: (T, N, 3) sensor points (metres); specific_force: (T, N, 3) in the fit frame;
        gravity: (T, 3) or (3,) gravity vector in the fit frame (m/s^2); weight: (T, N).
    """
    if points.shape[0] < 3:
        return points.new_zeros(())
    acc = (points[2:] - 2 * points[1:-1] + points[:-2]) * fps**2
    meas = specific_force[1:-1] + (gravity[1:-1, None] if gravity.ndim == 2 else gravity)
    w = weight[2:] * weight[1:-1] * weight[:-2]
    return (w * (acc - meas).square().sum(-1)).sum() / w.sum().clamp(min=1e-6)


def window_frames(window_s: float, fps: float) -> int:
    """The half-window k, in frames (at least 1), of ``stride_accelerations``."""
    return max(1, round(window_s * fps))


def stride_accelerations(points, measured, k: int, fps: float):
    """A fit's sensor points' accelerations and the accelerometers', both over +-k frames: the
    stride-k second difference of positions, (x[t+k] - 2 x[t] + x[t-k]) / (k dt)^2, which is
    exactly the measured acceleration averaged with triangle weights (k - |j|) / k^2.

    Args:
        points: (T, ...) positions (metres); measured: (T, ...) accelerations (m/s^2) on the
            same axes; numpy arrays or torch tensors alike. T >= 2k + 1.
    Returns:
        (acc, meas), each (T - 2k, ...), for the frames k .. T - k - 1.
    """
    T = points.shape[0]
    acc = (points[2 * k:] - 2 * points[k:-k] + points[:-2 * k]) * (fps / k) ** 2
    meas = sum((k - abs(j)) / k**2 * measured[k + j:T - k + j] for j in range(-k + 1, k))
    return acc, meas


def imu_relative_acceleration(points: torch.Tensor, specific_force: torch.Tensor, weight: torch.Tensor,
                              fps: float, window_s: float = 1 / 15) -> torch.Tensor:
    """Weighted mean squared difference (m/s^2)^2 between the sensor points' accelerations
    relative to their mean in the fit and the accelerometers' relative to theirs.

    Gravity and the body's own translation are common to every sensor and cancel, so a
    monocular fit's depth jitter (large beside any limb's acceleration) does not enter: what is
    left is how the sensed points move about each other, which the unsensed segments between
    them (thighs, upper arms, spine) and the body's size decide.

    Both sides are the acceleration averaged over +-k frames (k = window_s * fps, at least 1)
    with triangle weights, which is exactly what the stride-k second difference of positions
    is: (x[t+k] - 2 x[t] + x[t-k]) / (k dt)^2. At k = 1 the comparison would hinge on how the
    sensor's stream was differentiated or filtered down to the frame rate: on CMU motion at
    30 fps, against streams made with np.gradient twice (``synthesize_imu``), the true motion
    read a fifth of the relative signal at k = 1 and 1/30-1/70 (noise included) at k = 2.

    Args:
        points: (T, N, 3) sensor points (metres); specific_force: (T, N, 3) in the fit frame;
        weight: (T, N) 0 for dropped samples (a window counts only when all its samples are valid).
    """
    k = window_frames(window_s, fps)
    T = points.shape[0]
    if T < 2 * k + 1 or points.shape[1] < 2:
        return points.new_zeros(())
    acc, meas = stride_accelerations(points, specific_force, k, fps)
    valid = weight.min(1).values  # (T,)
    w = torch.stack([valid[k + j:T - k + j] for j in range(-k, k + 1)]).min(0).values
    d = (acc - acc.mean(1, keepdim=True)) - (meas - meas.mean(1, keepdim=True))
    return (w * d.square().sum((-1, -2))).sum() / (w.sum() * points.shape[1]).clamp(min=1e-6)
