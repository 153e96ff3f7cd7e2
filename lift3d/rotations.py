"""Two small rotation-matrix helpers shared by calibration and IMU alignment (numpy in/out)."""
from __future__ import annotations

import numpy as np
import roma
import torch


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """(..., 3, 3) the rotation nearest each matrix (Frobenius), e.g. the chordal mean of a sum
    of rotations."""
    return roma.special_procrustes(torch.as_tensor(np.asarray(M, dtype=np.float64))).numpy()


def rotation_angle(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """(...) angle in radians of the rotation between (..., 3, 3) rotations Ra and Rb."""
    c = (np.trace(np.swapaxes(Ra, -1, -2) @ Rb, axis1=-2, axis2=-1) - 1) / 2
    return np.arccos(np.clip(c, -1.0, 1.0))
