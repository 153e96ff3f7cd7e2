"""Synchronisation of unsynchronised cameras from keypoint motion and epipolar geometry."""
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from lift3d.fusion.sync import apply_offsets, estimate_offsets, motion_signal
from lift3d.io_utils import Lift3DError
from lift3d.lifting.data import look_at
from lift3d.types import Camera, Keypoints2D


def wandering_points(T: int = 300, K: int = 17, seed: int = 0) -> np.ndarray:
    """(T, K, 3) world points: a body-sized cloud that moves and deforms without repeating."""
    rng = np.random.default_rng(seed)
    base = rng.uniform([-0.3, 0.0, -0.2], [0.3, 1.7, 0.2], (K, 3))
    wobble = gaussian_filter1d(rng.standard_normal((T, K, 3)), 4, axis=0) * 0.6
    drift = gaussian_filter1d(rng.standard_normal((T, 1, 3)), 15, axis=0) * np.array([8.0, 0.0, 8.0])
    return base + wobble + drift


def ring_cameras(n: int) -> list[Camera]:
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n
        eye = np.array([4 * np.sin(a), 1.5, 4 * np.cos(a)])
        R, t = look_at(eye, np.array([0.0, 1.0, 0.0]))
        cams.append(Camera(K=[[900, 0, 640], [0, 900, 360], [0, 0, 1]], image_size=(1280, 720), R=R, t=t))
    return cams


def observe(points: np.ndarray, cam: Camera, offset: int, noise: float, rng) -> Keypoints2D:
    """The camera's keypoints, its video starting ``offset`` frames before the reference's."""
    uv = cam.project(points) + noise * rng.standard_normal(points.shape[:-1] + (2,))
    kp = np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], -1)
    # Camera frame t shows reference frame t - offset (late by `offset` frames).
    if offset > 0:
        kp = np.concatenate([np.zeros((offset,) + kp.shape[1:]), kp])
    else:
        kp = kp[-offset:]
    return Keypoints2D(kp[:, None], "coco17", 30.0, cam.image_size)


@pytest.mark.parametrize("calibrated", [True, False])
def test_offsets_recovered(calibrated):
    rng = np.random.default_rng(1)
    pts = wandering_points()
    cams = ring_cameras(3)
    true = [0, 7, -12]
    kps = [observe(pts, c, o, 1.5, rng) for c, o in zip(cams, true)]
    est = estimate_offsets(kps, cams if calibrated else None, max_offset=40)
    assert list(est) == true
    synced = apply_offsets(kps, est)
    assert len({k.num_frames for k in synced}) == 1
    # After trimming, the same frame index shows the same instant in every view.
    for c in (1, 2):
        mid = synced[0].num_frames // 2
        uv = cams[c].project(pts)
        t_ref = mid + max(0, -est.min())
        assert np.abs(synced[c].data[mid, 0, :, :2] - uv[t_ref]).max() < 10


def test_motion_signal_is_scale_free():
    rng = np.random.default_rng(2)
    pts = wandering_points(60)
    kp = observe(pts, ring_cameras(1)[0], 0, 0.0, rng).data[:, 0]
    big = kp.copy()
    big[..., :2] *= 3.0
    assert np.allclose(motion_signal(kp)[1:], motion_signal(big)[1:], equal_nan=True)


def test_bad_input():
    rng = np.random.default_rng(3)
    pts = wandering_points(40)
    cams = ring_cameras(2)
    kps = [observe(pts, c, 0, 0.0, rng) for c in cams]
    with pytest.raises(Lift3DError):
        estimate_offsets(kps[:1])
    hidden = [kps[0], Keypoints2D(kps[1].data * [1, 1, 0], "coco17", 30.0, kps[1].image_size)]
    with pytest.raises(Lift3DError, match="no lag"):
        estimate_offsets(hidden, cams, max_offset=5)  # nobody seen by camera 2
