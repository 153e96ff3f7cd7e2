"""Frame offsets between cameras that were not hardware-synchronised, from the people they see.

Convention: ``offsets[c]`` is the number of frames camera c's video runs late: frame t of the
reference camera (index 0) shows the same instant as frame ``t + offsets[c]`` of camera c.
``apply_offsets`` trims the videos' keypoints to their common span.

Two signals, both from 2D keypoints of the first person:

- with calibrated cameras, **epipolar consistency**: at the right lag, each keypoint seen by two
  cameras lies on the epipolar line of its partner (a distance in pixels, minimised over lags);
  this is sharp and does not depend on the viewpoints;
- without calibration, **motion**: the keypoints' image speed (relative to the person's size)
  rises and falls at the same instants in every view; the lag maximising the normalised
  cross-correlation is taken (as Pose2Sim does). It is blunter, and it is what calibrating
  from the people themselves needs first.
"""
from __future__ import annotations

import numpy as np

from lift3d.fusion.associate import epipolar_distances
from lift3d.io_utils import Lift3DError
from lift3d.types import Camera, Keypoints2D


def _first_person(kp: Keypoints2D) -> np.ndarray:
    """(T, K, 3) keypoints of person 0, NaN-free."""
    d = np.array(kp.data[:, 0], dtype=np.float64)
    bad = ~np.isfinite(d).all(-1)
    d[bad] = 0.0
    return d


def motion_signal(kp: np.ndarray, min_confidence: float = 0.3) -> np.ndarray:
    """(T, 2K) per-joint image motion, in person heights per frame.

    Args:
        kp: (T, K, 3) pixels + confidence.
    Returns:
        Columns 0..K-1: each joint's speed |uv_t - uv_{t-1}|; columns K..2K-1: its signed
        vertical step (cameras share gravity, so rising and falling agree in sign across
        views); both divided by the person's box height. NaN where the joint is not confident
        in both frames (frame 0 included). Joints are kept apart because the same joint's
        motion peaks at the same instants in every view, while a mean over joints mixes
        views' foreshortening differently.
    """
    import warnings

    ok = kp[..., 2] > min_confidence
    ys = np.where(ok, kp[..., 1], np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames with nobody: NaN height
        height = np.nanmax(ys, 1) - np.nanmin(ys, 1)
    d = np.diff(kp[..., :2], axis=0) / np.maximum(np.nan_to_num(height[1:], nan=1.0), 1.0)[:, None, None]
    both = ok[1:] & ok[:-1]
    sig = np.concatenate([np.linalg.norm(d, axis=-1), d[..., 1]], 1)
    sig[~np.concatenate([both, both], 1)] = np.nan
    return np.concatenate([np.full((1, sig.shape[1]), np.nan), sig])


def _normalised(x: np.ndarray) -> np.ndarray:
    """Each column bridged over its gaps (linear), lightly smoothed (Gaussian, 1.5 frames:
    detector jitter otherwise dominates the frame-to-frame speed; chosen on
    benchmarks/sync_eval.py), then standardised; a column never seen becomes 0."""
    from scipy.ndimage import gaussian_filter1d

    x = np.array(x, dtype=np.float64)
    idx = np.arange(len(x))
    for c in range(x.shape[1]):
        m = np.isfinite(x[:, c])
        x[:, c] = np.interp(idx, idx[m], x[m, c]) if m.sum() > 1 else 0.0
    x = gaussian_filter1d(x, 1.5, axis=0, mode="nearest")
    return (x - x.mean(0)) / (x.std(0) + 1e-12)


def _lag_by_motion(ref: np.ndarray, other: np.ndarray, max_offset: int, min_overlap: int) -> tuple[int, float]:
    a, b = _normalised(motion_signal(ref)), _normalised(motion_signal(other))
    best, score = 0, -np.inf
    for lag in range(-max_offset, max_offset + 1):
        # frame t of ref <-> frame t + lag of other
        lo, hi = max(0, -lag), min(len(a), len(b) - lag)
        if hi - lo < min_overlap:
            continue
        s = np.mean(a[lo:hi] * b[lo + lag:hi + lag])  # mean correlation over joints
        if s > score:
            best, score = lag, s
    return best, score


def _lag_by_epipolar(ref: np.ndarray, other: np.ndarray, ca: Camera, cb: Camera, max_offset: int,
                     min_overlap: int, min_confidence: float = 0.3) -> tuple[int, float]:
    xa, xb = ca.normalized(ref[..., :2]), cb.normalized(other[..., :2])
    oka, okb = ref[..., 2] > min_confidence, other[..., 2] > min_confidence
    best, cost = 0, np.inf
    for lag in range(-max_offset, max_offset + 1):
        lo, hi = max(0, -lag), min(len(ref), len(other) - lag)
        if hi - lo < min_overlap:
            continue
        ok = oka[lo:hi] & okb[lo + lag:hi + lag]
        if ok.sum() < min_overlap:
            continue
        d = epipolar_distances(xa[lo:hi][ok], xb[lo + lag:hi + lag][ok], ca, cb)
        c = np.mean(np.minimum(d, 50.0))  # truncated: a wrong detection counts at most 50 px
        if c < cost:
            best, cost = lag, c
    return best, cost


def estimate_offsets(keypoints: list[Keypoints2D], cameras: list[Camera] | None = None,
                     max_offset: int = 90, min_overlap: int = 30) -> np.ndarray:
    """Frame offsets of every camera relative to the first (see the module docstring).

    Args:
        keypoints: one Keypoints2D per camera (same keypoint format; person 0 is used).
        cameras: calibrated cameras in the same order; None to use the motion signal.
        max_offset: largest lag tried, in frames, each way.
        min_overlap: fewest frames that must overlap at a lag for it to count (at most half
            the shortest video).
    Returns:
        (C,) int offsets, offsets[0] = 0.
    Raises:
        Lift3DError: fewer than two cameras, mismatched formats, or no lag with enough overlap.
    """
    if len(keypoints) < 2:
        raise Lift3DError("synchronisation needs at least two cameras")
    if len({k.format for k in keypoints}) != 1:
        raise Lift3DError("all cameras' keypoints must be in the same format")
    if cameras is not None and len(cameras) != len(keypoints):
        raise Lift3DError(f"{len(cameras)} cameras for {len(keypoints)} keypoint streams")
    data = [_first_person(k) for k in keypoints]
    # Short clips cannot leave 30 frames in common: ask for half the shortest instead.
    min_overlap = min(min_overlap, max(3, min(len(d) for d in data) // 2))
    out = [0]
    for c in range(1, len(data)):
        if cameras is None:
            lag, score = _lag_by_motion(data[0], data[c], max_offset, min_overlap)
            found = np.isfinite(score)
        else:
            lag, score = _lag_by_epipolar(data[0], data[c], cameras[0], cameras[c], max_offset, min_overlap)
            found = np.isfinite(score)
        if not found:
            raise Lift3DError(f"camera {c + 1}: no lag within ±{max_offset} frames leaves {min_overlap} "
                              "frames in common with camera 1 in which the person is seen")
        out.append(lag)
    return np.array(out, dtype=int)


def apply_offsets(keypoints: list[Keypoints2D], offsets: np.ndarray) -> list[Keypoints2D]:
    """Trim each camera's keypoints so that frame t of every output shows the same instant."""
    offsets = np.asarray(offsets, dtype=int)
    start = max(0, -offsets.min())  # reference frames before every camera has started
    stop = min(k.num_frames - o for k, o in zip(keypoints, offsets))
    if stop - start < 1:
        raise Lift3DError("the videos share no frame once synchronised")
    return [Keypoints2D(k.data[start + o:stop + o], k.format, k.fps, k.image_size)
            for k, o in zip(keypoints, offsets)]
