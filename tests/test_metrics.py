"""Error measures split a mesh's error into size, orientation and pose."""
import numpy as np
import roma
import torch

from lift3d.metrics import vertex_errors


def test_vertex_errors_separate_size_orientation_and_pose():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 0.3, (4, 200, 3))
    smaller = 0.8 * true
    e = vertex_errors(smaller, true)
    assert e["pve_mm"] > 50 and e["size_matched_pve_mm"] < 1e-4 and e["pa_pve_mm"] < 1e-4

    R = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.3, 0.0])).numpy()
    turned = true @ R.T
    e = vertex_errors(turned, true)
    assert e["size_matched_pve_mm"] > 50 and e["pa_pve_mm"] < 1e-4

    noise = rng.normal(0, 0.01, true.shape)
    e = vertex_errors(1.2 * (true + noise) @ R.T, true)
    expected = np.linalg.norm(noise, axis=-1).mean() * 1000  # ~16 mm; alignment takes a little off
    assert 0.8 * expected < e["pa_pve_mm"] < 1.01 * expected
    assert e["pve_mm"] > e["size_matched_pve_mm"] > e["pa_pve_mm"]


def test_orientation_error_reads_a_known_turn_about_each_axis():
    from lift3d.metrics import orientation_error

    rng = np.random.default_rng(1)
    true = rng.normal(0, 0.3, (3, 100, 3))
    rotvecs = np.array([[0.2, 0, 0], [0, -0.3, 0], [0, 0, 0.1]])
    R = roma.rotvec_to_rotmat(torch.as_tensor(rotvecs)).numpy()  # (3, 3, 3)
    pred = np.einsum("tij,tnj->tni", R.transpose(0, 2, 1), true)  # true turned back by R
    np.testing.assert_allclose(orientation_error(1.1 * pred, true), rotvecs, atol=1e-9)
