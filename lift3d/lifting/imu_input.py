"""What six body-worn IMUs tell the lifting network: the directions of the bones they ride on.

A sensor's orientation fixes its segment's rotation, and with it the direction of any two
joints that move with that segment: elbow -> wrist for a forearm sensor, knee -> ankle for a
shin, left hip -> right hip for the pelvis, head -> head top for the head. Directions (not
rotations) are what joint-position mocap gives for training and what a monocular view cannot
settle for a hidden limb; a forearm's twist, which directions leave out, is also what
mountings estimated from video get wrong. The IMU lifter (``lift(..., bone_directions=...)``)
sees them beside the 2D keypoints, as 3-vectors in its virtual camera's axes; a zero vector
is a sensor it does not have.

Order: ``SENSOR_BONES``, the order of ``fusion.imu.SPARSE6`` (forearms, shins, head, pelvis).
"""
from __future__ import annotations

import numpy as np
import roma
import torch

from lift3d import formats
from lift3d.lifting.data import OUTPUT_FORMAT

SENSOR_BONES: tuple[tuple[str, str], ...] = (
    ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"),
    ("left_knee", "left_ankle"), ("right_knee", "right_ankle"),
    ("head", "head_top"), ("left_hip", "right_hip"),
)
NUM_SENSORS = len(SENSOR_BONES)
_NAMES = formats.names(OUTPUT_FORMAT)
# (6, 2): each bone's two h36m17 joints, from -> to.
BONE_INDICES = np.array([[_NAMES.index(a), _NAMES.index(b)] for a, b in SENSOR_BONES])


def _mirror_table() -> tuple[np.ndarray, np.ndarray]:
    """For each sensor, which sensor's direction its mirror image takes, and the sign."""
    src, sign = [], []
    for a, b in SENSOR_BONES:
        ma, mb = formats.mirror_name(a), formats.mirror_name(b)
        if (ma, mb) in SENSOR_BONES:
            src.append(SENSOR_BONES.index((ma, mb)))
            sign.append(1.0)
        else:  # the pelvis: left->right becomes right->left
            src.append(SENSOR_BONES.index((mb, ma)))
            sign.append(-1.0)
    return np.array(src), np.array(sign)


_MIRROR_SRC, _MIRROR_SIGN = _mirror_table()


def bone_directions(joints: np.ndarray) -> np.ndarray:
    """(..., 17, 3) h36m17 joints -> (..., 6, 3) unit directions of ``SENSOR_BONES``."""
    d = joints[..., BONE_INDICES[:, 1], :] - joints[..., BONE_INDICES[:, 0], :]
    return d / np.linalg.norm(d, axis=-1, keepdims=True).clip(min=1e-9)


def mirror_directions(d: np.ndarray) -> np.ndarray:
    """(..., 6, 3) directions of a person -> those of the mirror image that
    ``data.mirror_joints`` makes (x negated, left and right swapped)."""
    out = d[..., _MIRROR_SRC, :] * _MIRROR_SIGN[:, None]
    out[..., 0] *= -1.0
    return out


def _random_rotations(rng: np.random.Generator, shape: tuple, sigma_deg: np.ndarray | float) -> np.ndarray:
    """(*shape, 3, 3) rotations about random axes by N(0, sigma) degrees."""
    axis = rng.normal(size=shape + (3,))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.radians(rng.normal(size=shape) * sigma_deg)[..., None]
    return roma.rotvec_to_rotmat(torch.as_tensor(axis * angle)).numpy()


def sensor_like(rng: np.random.Generator, d: np.ndarray, frame_deg: float = 4.0, bias_deg: float = 4.0,
                noise_deg: float = 1.5, drop: float = 0.03) -> np.ndarray:
    """Training directions that look like real sensors' through an estimated alignment.

    Args:
        d: (n, L, 6, 3) true directions of n windows.
        frame_deg: per window, one rotation of all six (the camera-to-IMU alignment's error).
        bias_deg: per window and sensor, a fixed rotation (a mounting's or the skeleton's offset).
        noise_deg: per frame and sensor (orientation noise).
        drop: probability that a sensor is missing for a whole window (zero vector).
    Returns:
        (n, L, 6, 3) directions.
    """
    n, L = d.shape[:2]
    frame = _random_rotations(rng, (n, 1, 1), rng.uniform(0, frame_deg, (n, 1, 1)))
    bias = _random_rotations(rng, (n, 1, NUM_SENSORS), bias_deg)
    noise = _random_rotations(rng, (n, L, NUM_SENSORS), noise_deg)
    out = np.einsum("...ij,...j->...i", frame @ bias @ noise, d)
    keep = rng.random((n, 1, NUM_SENSORS, 1)) >= drop
    return out * keep
