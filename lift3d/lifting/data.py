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


def look_at(eye: np.ndarray, target: np.ndarray, roll: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera (R, t) of OpenCV cameras at ``eye`` looking at ``target``, world Y up.

    Args:
        eye, target: (..., 3) world positions; roll: (...,) radians about the viewing axis.
    Returns:
        R (..., 3, 3) with rows = camera x (right), y (down), z (forward) in world axes; t (..., 3).
    """
    eye, target = np.asarray(eye, dtype=np.float64), np.asarray(target, dtype=np.float64)
    z = target - eye
    z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    x = np.cross(z, np.array([0.0, 1.0, 0.0]))  # right = forward x up (right-handed, Y up)
    vertical = np.linalg.norm(x, axis=-1, keepdims=True) < 1e-6  # looking straight up or down
    x = np.where(vertical, np.array([1.0, 0.0, 0.0]), x)
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    y = np.cross(z, x)
    c, s = np.cos(roll)[..., None], np.sin(roll)[..., None]
    x, y = c * x + s * y, -s * x + c * y
    R = np.stack([x, y, z], axis=-2)
    return R, -np.einsum("...ij,...j->...i", R, eye)


IMAGE_SIZES = np.array([(1920, 1080), (1280, 720), (1080, 1920), (640, 480), (1000, 1000)], dtype=np.float64)


def sample_cameras(rng: np.random.Generator, joints: np.ndarray) -> tuple[np.ndarray, ...]:
    """Random pinhole cameras, one per motion, each seeing its motion ``joints`` (N, T, J, 3).

    Varies image size and orientation, horizontal field of view (35-95 deg), distance
    (1.8-9 m from the motion's centre, and always 0.8 m beyond its extent), camera height
    (0.2-2.8 m), roll (+-6 deg), and the aim point (jittered so the person is sometimes partly
    out of frame). World Y up.

    Returns:
        K (N, 3, 3), R (N, 3, 3), t (N, 3), image sizes (N, 2) as (width, height).
    """
    N = joints.shape[0]
    size = IMAGE_SIZES[rng.integers(len(IMAGE_SIZES), size=N)]
    w, h = size[:, 0], size[:, 1]
    fov = np.radians(rng.uniform(35, 95, N))
    f = 0.5 * w / np.tan(fov / 2)
    K = np.zeros((N, 3, 3))
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = f, f, w / 2, h / 2, 1.0
    ground = joints[..., [0, 2]].reshape(N, -1, 2)
    centre = ground.mean(1)
    extent = np.sqrt(((ground - centre[:, None]) ** 2).sum(-1).max(1))
    # Far enough that the whole body fits in the shorter image side most of the time.
    fit_dist = 1.9 / (2 * np.tan(fov / 2) * np.minimum(w, h) / w)
    dist = np.maximum.reduce([extent + 0.8, rng.uniform(0.7, 1.6, N) * fit_dist, rng.uniform(1.8, 3.0, N)])
    dist = np.minimum(dist, 9.0 + extent)
    yaw = rng.uniform(0, 2 * np.pi, N)
    eye = np.stack([centre[:, 0] + dist * np.sin(yaw), rng.uniform(0.2, 2.8, N),
                    centre[:, 1] + dist * np.cos(yaw)], -1)
    body_y = np.median(joints[..., 1].reshape(N, -1), axis=1)
    target = np.stack([centre[:, 0], body_y, centre[:, 1]], -1) + rng.normal(0, 0.25, (N, 3)) * [1, 1.5, 1]
    R, t = look_at(eye, target, roll=np.radians(rng.uniform(-6, 6, N)))
    return K, R, t, size


def sample_camera(rng: np.random.Generator, joints: np.ndarray) -> Camera:
    """One random Camera (no distortion) that sees the motion ``joints`` (T, J, 3); see
    ``sample_cameras`` for the ranges."""
    K, R, t, size = sample_cameras(rng, np.asarray(joints)[None])
    return Camera(K=K[0], image_size=(int(size[0, 0]), int(size[0, 1])), R=R[0], t=t[0])


def project(points: np.ndarray, cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) world points -> (..., 2) pixels and (...,) camera depth (<= 0 behind the camera)."""
    return cam.project(points), cam.world_to_camera(points)[..., 2]


def _median_time(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Median filter along one (time) axis only, edges repeated."""
    if x.shape[axis] <= 2:
        return x
    sizes = [1] * x.ndim
    sizes[axis] = min(size, x.shape[axis])
    return median_filter(x, size=sizes, mode="nearest")


def corrupt(rng: np.random.Generator, uv: np.ndarray, depth: np.ndarray, image_size,
            noise: float = 1.0) -> np.ndarray:
    """Make clean projections look like a detector's output, with confidence.

    Gaussian jitter with sigma ~ 0.5-2.5% of the person's height in pixels (x ``noise``),
    temporally correlated drift, rare large outliers, per-joint dropout, left/right swaps on a
    few frames, and zero confidence outside the image or behind the camera.

    Args:
        uv: (..., T, J, 2) pixels; depth: (..., T, J) camera depth.
        image_size: (width, height), or (..., 2) one per sequence.
    Returns:
        (..., T, J, 3) pixels + confidence; missing joints are (0, 0, 0).
    """
    batch = uv.shape[:-3]
    T, J = uv.shape[-3:-1]
    height = np.ptp(uv[..., 1], axis=-1).clip(min=10.0)[..., None, None]  # (..., T, 1, 1)
    sigma = noise * rng.uniform(0.005, 0.025, batch + (1, 1, 1)) * height
    jitter = rng.normal(0, 1, uv.shape) * sigma
    drift = _median_time(rng.normal(0, 1, uv.shape), 9, uv.ndim - 3)
    out = uv + jitter + 2.0 * drift * sigma
    # Detector confidence is mostly a property of the joint and the view, drifting slowly; white
    # noise here would teach the network to pass frame-to-frame confidence noise on as jitter.
    conf = np.clip(rng.uniform(0.6, 1.0, batch + (1, J)) + 0.05 * drift[..., 0], 0.3, 1.0)
    if noise > 0:
        outlier = rng.random(batch + (T, J)) < 0.01 * noise
        out = out + outlier[..., None] * rng.normal(0, 0.15, uv.shape) * height
        conf = np.where(outlier, 0.5 * conf, conf)
        conf = np.where(rng.random(batch + (T, J)) < 0.05 * noise, 0.0, conf)
        # Left/right swaps: one joint pair per sequence, on ~2% of its frames.
        pair = np.asarray(_SWAPS)[rng.integers(len(_SWAPS), size=batch)]  # (..., 2)
        swap = rng.random(batch + (T,)) < 0.02 * noise
        perm = np.broadcast_to(np.arange(J), batch + (T, J)).copy()
        a, b = pair[..., None, 0:1], pair[..., None, 1:2]
        a, b = np.broadcast_to(a, batch + (T, 1)), np.broadcast_to(b, batch + (T, 1))
        pa, pb = np.take_along_axis(perm, a, -1), np.take_along_axis(perm, b, -1)
        np.put_along_axis(perm, a, np.where(swap[..., None], pb, pa), -1)
        np.put_along_axis(perm, b, np.where(swap[..., None], pa, pb), -1)
        out = np.take_along_axis(out, perm[..., None], -2)
    size = np.broadcast_to(np.asarray(image_size, dtype=np.float64), batch + (2,))[..., None, None, :]
    inside = ((out >= 0) & (out < size)).all(-1) & (depth > 0.1)
    conf = np.where(inside, conf, 0.0)
    out = np.where(conf[..., None] > 0, out, 0.0)
    return np.concatenate([out, conf[..., None]], -1)


TRAIN_FPS = 30.0  # the frame rate the lifting and contact networks are trained at


def resample_frames(x: np.ndarray, fps: float, new_fps: float, frames: int | None = None) -> np.ndarray:
    """Linear resampling of a sequence along its first axis.

    Args:
        x: (T, ...) values at ``fps``.
        frames: output length; default: every ``1 / new_fps`` s within the input's time span.
    Returns:
        (frames, ...) values at times k / new_fps (the last input frame repeats beyond the end).
    """
    T = len(x)
    if frames is None:
        frames = int(np.floor((T - 1) * new_fps / fps + 1e-9)) + 1
    t = np.arange(frames) * (fps / new_fps)
    i0 = np.clip(np.floor(t).astype(int), 0, T - 1)
    i1 = np.minimum(i0 + 1, T - 1)
    w = np.clip(t - i0, 0.0, 1.0).reshape((-1,) + (1,) * (x.ndim - 1))
    return (1 - w) * x[i0] + w * x[i1]


def resample_keypoints(kp: np.ndarray, fps: float, new_fps: float) -> np.ndarray:
    """(T, ..., J, 3) pixels + confidence at ``fps`` -> the same time span at ``new_fps``:
    positions interpolated, each confidence the smaller of its two neighbours' (a joint missing
    in either neighbour stays missing)."""
    out = resample_frames(kp, fps, new_fps)
    t = np.arange(len(out)) * (fps / new_fps)
    i0 = np.clip(np.floor(t + 1e-9).astype(int), 0, len(kp) - 1)
    i1 = np.where(t - i0 > 1e-9, np.minimum(i0 + 1, len(kp) - 1), i0)
    out[..., 2] = np.minimum(kp[i0, ..., 2], kp[i1, ..., 2])
    return np.where(out[..., 2:] > 0, out, 0.0)


def at_training_rate(run, kp: np.ndarray, fps: float, tolerance: float = 0.5,
                     extra: np.ndarray | None = None) -> np.ndarray:
    """``run`` (a function of (T', ..., J, 3) keypoints at ``TRAIN_FPS`` giving (T', ...)
    values) applied to keypoints at ``fps``: resampled there and back when the rates differ by
    more than ``tolerance`` frames/s, so a 60 fps video gets the temporal context and the motion
    speeds the networks learned. ``extra``: (T, ...) per-frame values resampled linearly with
    the keypoints and passed as ``run``'s second argument."""
    args = () if extra is None else (extra,)
    if abs(fps - TRAIN_FPS) <= tolerance or len(kp) < 2:
        return run(kp, *args)
    args = tuple(resample_frames(a, fps, TRAIN_FPS) for a in args)
    return resample_frames(run(resample_keypoints(kp, fps, TRAIN_FPS), *args), TRAIN_FPS, fps, len(kp))


def fill_gaps(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of (..., T, D) values where ``valid`` (..., T) is False;
    sequences with no valid frame are left as they are."""
    out = values.copy()
    flat_v = out.reshape((-1,) + values.shape[-2:])
    flat_ok = valid.reshape(-1, valid.shape[-1])
    t = np.arange(valid.shape[-1])
    for seq, ok in zip(flat_v, flat_ok):
        if ok.any() and not ok.all():
            for d in range(seq.shape[-1]):
                seq[:, d] = np.interp(t, t[ok], seq[ok, d])
    return out


def _box(xy: np.ndarray, ok: np.ndarray, smooth: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame box centre (..., T, 2) and larger side (..., T) of the confident points,
    interpolated over frames without any, side median-filtered over ``smooth`` frames."""
    big = np.where(ok[..., None], xy, np.nan)
    with warnings.catch_warnings():  # frames with no confident joint give NaN, handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(big, axis=-2), np.nanmax(big, axis=-2)  # (..., T, 2)
    valid = np.isfinite(lo).all(-1)
    centre = np.where(valid[..., None], 0.5 * (lo + hi), 0.0)
    side = np.where(valid, np.maximum((hi - lo).max(-1), 1.0), 1.0)  # >= 1 pixel
    both = fill_gaps(np.concatenate([centre, side[..., None]], -1), valid)
    # The filtered side never drops below half the frame's own, so confident points stay within
    # +-1 even when the box jumps (a person leaving the image).
    centre, side = both[..., :2], np.maximum(_median_time(both[..., 2], smooth, both.ndim - 2), 0.5 * both[..., 2])
    return centre, side


def normalize_2d(kp: np.ndarray, smooth: int = 9) -> np.ndarray:
    """Centre and scale 2D keypoints by the person's box, as the lifter expects.

    Per frame: centre = box centre of the confident joints, scale = the box's larger side;
    the scale is median-filtered over ``smooth`` frames so box noise does not become jitter.
    Missing joints become (0, 0, 0).

    Args:
        kp: (..., T, J, 3) pixels + confidence.
    Returns:
        (..., T, J, 3) normalised x, y (about [-0.5, 0.5]) + confidence.
    """
    kp = np.asarray(kp, dtype=np.float64)
    ok = kp[..., 2] > 0
    centre, side = _box(kp[..., :2], ok, smooth)
    xy = (kp[..., :2] - centre[..., None, :]) / side[..., None, None]
    xy = np.where(ok[..., None], xy, 0.0)
    return np.concatenate([xy, np.where(ok, kp[..., 2], 0.0)[..., None]], -1)


def view_rotation(centre: np.ndarray) -> np.ndarray:
    """Rotations that turn a camera, without roll, to look straight along given rays.

    Args:
        centre: (..., 2) normalised image coordinates (x/z, y/z) of the point to look at.
    Returns:
        (..., 3, 3) R with R @ (x, y, 1) along +z: rows are the virtual camera's axes in the real
        camera's axes. The minimal rotation (Rodrigues about ray x z), so it is smooth in the ray.
    """
    d = np.concatenate([centre, np.ones_like(centre[..., :1])], -1)
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    k = np.cross(d, np.array([0.0, 0.0, 1.0]))  # |k| = sin(angle)
    c = d[..., 2]  # cos(angle) > 0: the ray is in front of the camera
    S = np.zeros(d.shape[:-1] + (3, 3))
    S[..., 0, 1], S[..., 0, 2], S[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    S = S - np.swapaxes(S, -1, -2)
    return np.eye(3) + S + S @ S / (1.0 + c)[..., None, None]


VIRTUAL_FOCAL = 1000.0  # "pixels" of the virtual camera; only ratios reach the network


def mirror_order(fmt: str) -> list[int]:
    """Index of each joint's mirror image in keypoint format ``fmt`` (left and right swapped)."""
    names = formats.names(fmt)
    return [names.index(formats.mirror_name(n)) for n in names]


def mirror_joints(x: np.ndarray, fmt: str) -> np.ndarray:
    """(..., J, C) points of keypoint format ``fmt`` seen in a mirror: left and right swapped,
    x negated, the other columns (y, z, confidence) kept."""
    out = x[..., mirror_order(fmt), :].copy()
    out[..., 0] *= -1.0
    return out


def canonicalize(xyc: np.ndarray, smooth: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """The lifter's input: keypoints seen by a virtual camera turned to look at the person.

    A person off the optical axis is seen obliquely: the same body looks rotated in the image
    by the angle between its viewing ray and the axis (up to ~45 degrees at a wide angle's
    border). Box normalisation alone hides where in the image the person was, so a network
    could not undo that rotation. Re-projecting every frame into a virtual camera aimed at the
    person's box centre (the perspective-crop idea) removes it: the network predicts in the
    virtual camera's axes, and ``R`` takes its output back to the real camera's axes.

    Args:
        xyc: (..., T, J, 3) normalised image coordinates (x/z, y/z; see ``Camera.normalized``)
            + confidence.
        smooth: median-filter length for the box centre, so the rotation does not jitter.
    Returns:
        x: (..., T, J, 3) box-normalised 2D + confidence, as ``normalize_2d``.
        R: (..., T, 3, 3) virtual-from-real rotations; real-camera points = virtual points @ R.
    """
    ok = xyc[..., 2] > 0
    centre, _ = _box(xyc[..., :2], ok, smooth)
    centre = _median_time(centre, smooth, centre.ndim - 2)
    R = view_rotation(centre)
    rays = np.concatenate([xyc[..., :2], np.ones_like(xyc[..., :1])], -1) @ np.swapaxes(R, -1, -2)
    virtual = VIRTUAL_FOCAL * rays[..., :2] / rays[..., 2:].clip(min=1e-6)
    return normalize_2d(np.concatenate([virtual, xyc[..., 2:]], -1), smooth), R


def canonical_2d(kp: np.ndarray, camera: Camera, smooth: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """``canonicalize`` for (..., T, J, 3) pixels + confidence seen by ``camera``."""
    kp = np.asarray(kp, dtype=np.float64)
    return canonicalize(np.concatenate([camera.normalized(kp[..., :2]), kp[..., 2:]], -1), smooth)


def camera_targets(joints_world: np.ndarray, cam: Camera) -> np.ndarray:
    """(T, J, 3) world joints -> (T, J, 3) root-relative joints in camera axes."""
    pc = cam.world_to_camera(joints_world)
    return pc - pc[:, ROOT:ROOT + 1]
