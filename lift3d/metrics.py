"""Error measures for 3D joints, shared by the demo, the tests and the benchmarks.

Shapes: T = frames, J = joints; positions in metres, errors reported in millimetres.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from lift3d import formats

COCO_HIPS = [formats.index("coco17", "left_hip"), formats.index("coco17", "right_hip")]


def procrustes_align(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Move (J, 3) ``x`` by the similarity transform (rotation, scale, translation) that best
    matches (J, 3) ``y`` in the least-squares sense; reflections are excluded."""
    R, scale = _similarity(x, y)
    return scale * (x - x.mean(0)) @ R + y.mean(0)


def _similarity(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Rotation R (3, 3) and scale of the best similarity taking centred x to centred y, as
    ``scale * x @ R`` (row vectors)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    U, S, Vt = np.linalg.svd(xc.T @ yc)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    return R, float((S * np.diag(D)).sum() / (xc**2).sum())


def orientation_error(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(T, 3) rotation vectors (radians, in the points' axes) of the rotation that best turns
    each frame's (T, N, 3) ``pred`` onto ``true`` (Procrustes): in camera axes, x is a lean
    towards or away from the camera, y a turn about the image's vertical, z a roll in the image."""
    import roma
    import torch

    R = np.stack([_similarity(p, q)[0].T for p, q in zip(pred, true)])  # column-vector form
    return roma.rotmat_to_rotvec(torch.as_tensor(R)).numpy()


def joint_errors(pred: np.ndarray, true: np.ndarray, root: Sequence[int] = COCO_HIPS) -> dict[str, float]:
    """Errors of (T, J, 3) predicted joints against the truth.

    Args:
        pred, true: (T, J, 3) joints in the same frame, metres.
        root: joint indices whose mean is the root (default: coco17's hips).
    Returns:
        mpjpe_mm: mean per-joint position error as given.
        root_relative_mpjpe_mm: after subtracting each frame's root.
        pa_mpjpe_mm: after a per-frame similarity Procrustes alignment of the root-relative joints.
        accel_mm: mean error of the root-relative joints' acceleration (mm/frame^2, as
            VideoPose3D defines it); 0 for fewer than 3 frames.
    """
    root = list(root)
    rel_p = pred - pred[:, root].mean(1, keepdims=True)
    rel_t = true - true[:, root].mean(1, keepdims=True)
    pa = np.stack([procrustes_align(p, q) for p, q in zip(rel_p, rel_t)])
    if len(pred) >= 3:
        acc_p = rel_p[2:] - 2 * rel_p[1:-1] + rel_p[:-2]
        acc_t = rel_t[2:] - 2 * rel_t[1:-1] + rel_t[:-2]
        accel = float(np.linalg.norm(acc_p - acc_t, axis=-1).mean() * 1000)
    else:
        accel = 0.0
    return {
        "mpjpe_mm": float(np.linalg.norm(pred - true, axis=-1).mean() * 1000),
        "root_relative_mpjpe_mm": float(np.linalg.norm(rel_p - rel_t, axis=-1).mean() * 1000),
        "pa_mpjpe_mm": float(np.linalg.norm(pa - rel_t, axis=-1).mean() * 1000),
        "accel_mm": accel,
    }


def vertex_errors(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Errors of (T, V, 3) root-relative mesh vertices against the truth's, in three steps that
    split a monocular fit's error into size, orientation and pose.

    Returns:
        pve_mm: mean per-vertex error as given (the root already subtracted by the caller).
        size_matched_pve_mm: after scaling each frame's mesh about the root by the factor that
            best matches the truth (least squares): what is left once the size is right.
        pa_pve_mm: after a per-frame similarity Procrustes alignment (rotation, scale,
            translation): the pose and shape alone.
    """
    s = (pred * true).sum((1, 2)) / np.maximum((pred * pred).sum((1, 2)), 1e-12)  # (T,)
    pa = np.stack([procrustes_align(p, q) for p, q in zip(pred, true)])
    err = lambda x: float(np.linalg.norm(x - true, axis=-1).mean() * 1000)  # noqa: E731
    return {"pve_mm": err(pred), "size_matched_pve_mm": err(s[:, None, None] * pred), "pa_pve_mm": err(pa)}
