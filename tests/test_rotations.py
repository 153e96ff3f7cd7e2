"""Rotation helpers: interpolation across dropped frames."""
import numpy as np
from scipy.spatial.transform import Rotation

from lift3d.rotations import interpolate_rotations, rotation_angle


def test_interpolate_rotations_slerps_between_kept_frames_and_holds_the_ends():
    angles = np.array([10.0, 0.0, 0.0, 0.0, 90.0, 0.0, 50.0, 0.0])  # degrees about z
    keep = np.array([False, True, False, False, True, False, True, False])
    R = Rotation.from_euler("z", angles[:, None], degrees=True).as_matrix()[:, None]  # (T, 1, 3, 3)
    R[[2, 3, 5, 7], 0] = Rotation.random(4, random_state=0).as_matrix()  # junk where dropped
    out = interpolate_rotations(R, keep)
    want = Rotation.from_euler("z", np.array([0, 0, 30, 60, 90, 70, 50, 50.0])[:, None], degrees=True).as_matrix()
    np.testing.assert_allclose(np.degrees(rotation_angle(out[:, 0], want)), 0.0, atol=1e-6)
    np.testing.assert_array_equal(out[keep], R[keep])  # kept frames untouched


def test_interpolate_rotations_without_anything_kept_changes_nothing():
    R = Rotation.random(5, random_state=1).as_matrix()
    np.testing.assert_array_equal(interpolate_rotations(R, np.zeros(5, bool)), R)
    np.testing.assert_array_equal(interpolate_rotations(R, np.array([0, 0, 1, 0, 0], bool)),
                                  np.repeat(R[2:3], 5, 0))
