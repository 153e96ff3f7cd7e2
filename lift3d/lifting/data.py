"""Training data for the lifter: real mocap joints seen through random virtual cameras, with
detector-like corruption, plus the 2D normalisation shared by training and inference.

Shapes: T = frames, J = joints. Joint sets: the 2D input is ``INPUT_FORMAT`` (coco17, what
detectors give), the 3D output is ``OUTPUT_FORMAT`` (h36m17 body joints).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.ndimage import median_filter

from lift3d import formats
from lift3d.types import Camera

INPUT_FORMAT = "coco17"
OUTPUT_FORMAT = "h36m17"
ROOT = formats.index(OUTPUT_FORMAT, "pelvis")
_SWAPS = [(formats.index(INPUT_FORMAT, n), formats.index(INPUT_FORMAT, formats.mirror_name(n)))
          for n in formats.names(INPUT_FORMAT) if n.startswith("left_")]


def look_at(eye: np.ndarray, target: np.ndarray, roll: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera (R, t) of an OpenCV camera at ``eye`` looking at ``target``, world Y up.

    Returns R (3, 3) with rows = camera x (right), y (down), z (forward) in world axes, and t (3,).
    """
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, np.array([0.0, 1.0, 0.0]))  # right = forward x up (right-handed, Y up)
    if np.linalg.norm(x) < 1e-6:  # looking straight up or down
        x = np.array([1.0, 0.0, 0.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = np.cos(roll), np.sin(roll)
    x, y = c * x + s * y, -s * x + c * y
    R = np.stack([x, y, z])
    return R, -R @ eye


def sample_camera(rng: np.random.Generator, joints: np.ndarray) -> Camera:
    """A random pinhole camera that sees the motion ``joints`` (T, J, 3) world, Y up.

    Varies image size and orientation, horizontal field of view (35-95 deg), distance
    (1.8-9 m from the motion's centre, and always 0.8 m beyond its extent), camera height
    (0.2-2.8 m), roll (+-6 deg), and the aim point (jittered so the person is sometimes partly
    out of frame).

    Returns: the Camera (no distortion).
    """
    sizes = [(1920, 1080), (1280, 720), (1080, 1920), (640, 480), (1000, 1000)]
    w, h = sizes[rng.integers(len(sizes))]
    fov = np.radians(rng.uniform(35, 95))
    f = 0.5 * w / np.tan(fov / 2)
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    ground = joints[..., [0, 2]].reshape(-1, 2)
    centre = ground.mean(0)
    extent = np.sqrt(((ground - centre) ** 2).sum(1).max())
    # Far enough that the whole body fits in the shorter image side most of the time.
    fit_dist = 1.9 / (2 * np.tan(fov / 2) * min(w, h) / w)
    dist = max(extent + 0.8, rng.uniform(0.7, 1.6) * fit_dist, rng.uniform(1.8, 3.0))
    dist = min(dist, 9.0 + extent)
    yaw = rng.uniform(0, 2 * np.pi)
    eye = np.array([centre[0] + dist * np.sin(yaw), rng.uniform(0.2, 2.8), centre[1] + dist * np.cos(yaw)])
    body_y = np.median(joints[..., 1])
    target = np.array([centre[0], body_y, centre[1]]) + rng.normal(0, 0.25, 3) * np.array([1, 1.5, 1])
    R, t = look_at(eye, target, roll=np.radians(rng.uniform(-6, 6)))
    return Camera(K=K, image_size=(w, h), R=R, t=t)


def project(points: np.ndarray, cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) world points -> (..., 2) pixels and (...,) camera depth (<= 0 behind the camera)."""
    return cam.project(points), cam.world_to_camera(points)[..., 2]


def corrupt(rng: np.random.Generator, uv: np.ndarray, depth: np.ndarray, image_size: tuple[int, int],
            noise: float = 1.0) -> np.ndarray:
    """Make clean projections (T, J, 2) look like a detector's output (T, J, 3) with confidence.

    Gaussian jitter with sigma ~ 1.5% of the person's height in pixels (x ``noise``), temporally
    correlated drift, rare large outliers, per-joint dropout, left/right swaps on a few
    frames, and zero confidence outside the image or behind the camera.
    """
    T, J, _ = uv.shape
    height = np.ptp(uv[..., 1], axis=1).clip(min=10.0)[:, None, None]  # (T, 1, 1)
    sigma = noise * rng.uniform(0.005, 0.025) * height
    jitter = rng.normal(0, 1, (T, J, 2)) * sigma
    drift = median_filter(rng.normal(0, 1, (T, J, 2)), size=(min(9, T), 1, 1), mode="nearest")
    out = uv + jitter + 2.0 * drift * sigma
    # Detector confidence is mostly a property of the joint and the view, drifting slowly; white
    # noise here would teach the network to pass frame-to-frame confidence noise on as jitter.
    conf = np.clip(rng.uniform(0.6, 1.0, (1, J)) + 0.05 * drift[..., 0], 0.3, 1.0)
    if noise > 0:
        outlier = rng.random((T, J)) < 0.01 * noise
        out[outlier] += rng.normal(0, 0.15, (outlier.sum(), 2)) * height[np.nonzero(outlier)[0], 0]
        conf[outlier] *= 0.5
        conf[rng.random((T, J)) < 0.05 * noise] = 0.0
        swap_frames = rng.random(T) < 0.02 * noise
        if swap_frames.any():
            a, b = _SWAPS[rng.integers(len(_SWAPS))]
            out[swap_frames, a], out[swap_frames, b] = out[swap_frames, b].copy(), out[swap_frames, a].copy()
    w, h = image_size
    inside = (out[..., 0] >= 0) & (out[..., 0] < w) & (out[..., 1] >= 0) & (out[..., 1] < h) & (depth > 0.1)
    conf = np.where(inside, conf, 0.0)
    out = np.where(conf[..., None] > 0, out, 0.0)
    return np.concatenate([out, conf[..., None]], -1)


def normalize_2d(kp: np.ndarray, smooth: int = 9) -> np.ndarray:
    """Centre and scale 2D keypoints by the person's box, as the lifter expects.

    Per frame: centre = box centre of the confident joints, scale = the box's larger side;
    the scale is median-filtered over ``smooth`` frames so box noise does not become jitter.
    Missing joints become (0, 0, 0).

    Args:
        kp: (T, J, 3) pixels + confidence.
    Returns:
        (T, J, 3) normalised x, y (about [-0.5, 0.5]) + confidence.
    """
    kp = np.asarray(kp, dtype=np.float64)
    T = kp.shape[0]
    ok = kp[..., 2] > 0
    big = np.where(ok[..., None], kp[..., :2], np.nan)
    with warnings.catch_warnings():  # frames with no confident joint give NaN, handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(big, axis=1), np.nanmax(big, axis=1)  # (T, 2)
    valid = np.isfinite(lo).all(1)
    centre = np.zeros((T, 2))
    scale = np.ones(T)
    if valid.any():
        centre[valid] = 0.5 * (lo[valid] + hi[valid])
        scale[valid] = np.maximum((hi - lo)[valid].max(1), 1.0)
        t = np.arange(T)
        for d in range(2):
            centre[:, d] = np.interp(t, t[valid], centre[valid, d])
        scale = np.interp(t, t[valid], scale[valid])
        if T > 2:
            scale = median_filter(scale, size=min(smooth, T), mode="nearest")
    xy = (kp[..., :2] - centre[:, None]) / scale[:, None, None]
    xy = np.where(ok[..., None], xy, 0.0)
    return np.concatenate([xy, np.where(ok, kp[..., 2], 0.0)[..., None]], -1)


def camera_targets(joints_world: np.ndarray, cam: Camera) -> np.ndarray:
    """(T, J, 3) world joints -> (T, J, 3) root-relative joints in camera axes."""
    pc = cam.world_to_camera(joints_world)
    return pc - pc[:, ROOT:ROOT + 1]
