"""Small rotation-matrix helpers shared by calibration, IMU alignment, the fitter and the lifter's
training (numpy in/out, except ``orthonormal_frame``: torch, so gradients pass through it)."""
from __future__ import annotations

import numpy as np
import roma
import torch


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """(..., 3, 3) the rotation nearest each matrix (Frobenius), e.g. the chordal mean of a sum
    of rotations."""
    return roma.special_procrustes(torch.as_tensor(np.asarray(M, dtype=np.float64))).numpy()


def orthonormal_frame(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) right-handed orthonormal frames whose columns are x, y made orthogonal to x,
    and x cross y, from (..., 3) vectors x and y (torch: the retargeter differentiates it)."""
    x = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    y = y - (y * x).sum(-1, keepdim=True) * x
    y = y / y.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    return torch.stack([x, y, torch.cross(x, y, dim=-1)], -1)


def rotation_angle(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """(...) angle in radians of the rotation between (..., 3, 3) rotations Ra and Rb."""
    c = (np.trace(np.swapaxes(Ra, -1, -2) @ Rb, axis1=-2, axis2=-1) - 1) / 2
    return np.arccos(np.clip(c, -1.0, 1.0))


def interpolate_rotations(R: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(T, ..., 3, 3) rotations with the frames where ``keep`` (T,) is False replaced by the
    spherical interpolation between the nearest kept frames before and after (held constant
    before the first and after the last kept frame). Nothing kept: returned unchanged."""
    from scipy.spatial.transform import Rotation, Slerp

    R = np.asarray(R, dtype=np.float64)
    keep = np.asarray(keep, dtype=bool)
    k = np.flatnonzero(keep)
    if len(k) == 0 or keep.all():
        return R.copy()
    out = R.copy()
    drop = np.flatnonzero(~keep)
    times = np.clip(drop, k[0], k[-1]).astype(np.float64)
    flat = R.reshape(len(R), -1, 3, 3)
    res = out.reshape(len(R), -1, 3, 3)
    for j in range(flat.shape[1]):
        if len(k) == 1:
            res[drop, j] = flat[k[0], j]
        else:
            res[drop, j] = Slerp(k, Rotation.from_matrix(flat[k, j]))(times).as_matrix()
    return out
