"""Multi-view triangulation, temporal filtering and multi-person association (lift3d.fusion)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lift3d.fusion.associate import associate
from lift3d.fusion.triangulate import (filter_joints, smooth_trajectories, triangulate, triangulate_dlt,
                                       triangulate_points, undistort_points)
from lift3d.io_utils import Lift3DError
from lift3d.lifting.data import look_at
from lift3d.types import Camera, Joints3D, Keypoints2D

W, H = 1920, 1080
F = 0.5 * W / np.tan(np.radians(30))  # 60 degree horizontal field of view


def ring(n: int = 4, radius: float = 4.0, distortion: bool = True, seed: int = 0) -> list[Camera]:
    """n cameras around the origin looking at (0, 1, 0), with OpenCV distortion."""
    rng = np.random.default_rng(seed)
    cams = []
    for k in range(n):
        a = 2 * np.pi * k / n + 0.3
        eye = np.array([radius * np.sin(a), 1.2 + 0.3 * k, radius * np.cos(a)])
        R, t = look_at(eye, np.array([0.0, 1.0, 0.0]))
        dist = [rng.uniform(-0.1, 0.05), rng.uniform(-0.02, 0.02), 1e-3, -1e-3, 0.005] if distortion else np.zeros(5)
        cams.append(Camera(K=[[F, 0, W / 2 + 7], [0, F * 1.001, H / 2 - 5], [0, 0, 1]], image_size=(W, H),
                           dist=dist, R=R, t=t))
    return cams


def body_points(rng: np.random.Generator, T: int = 20, K: int = 17) -> np.ndarray:
    """(T, K, 3) points in a person-sized box around (0, 1, 0)."""
    return rng.uniform([-0.4, 0.05, -0.3], [0.4, 1.8, 0.3], (T, K, 3))


def project_all(cams, X) -> np.ndarray:
    return np.stack([c.project(X) for c in cams])


def test_undistort_inverts_projection_distortion():
    cams = ring()
    X = body_points(np.random.default_rng(0))
    pix = project_all(cams, X)
    xn = undistort_points(pix, cams)
    for c, cam in enumerate(cams):
        pc = cam.world_to_camera(X)
        np.testing.assert_allclose(xn[c], pc[..., :2] / pc[..., 2:], atol=1e-12)


@pytest.mark.parametrize("robust", [None, "irls", "ransac"])
def test_exact_on_noise_free_data_with_distortion(robust):
    cams = ring()
    X = body_points(np.random.default_rng(1))
    pix = project_all(cams, X)
    w = np.random.default_rng(2).uniform(0.3, 1.0, pix.shape[:-1])
    res = triangulate_points(pix, cams, w, robust=robust)
    assert np.abs(res.points - X).max() <= 1e-6
    assert np.nanmax(res.error) < 1e-6
    assert (res.num_views == 4).all() and res.inliers.all()
    np.testing.assert_allclose(res.confidence, w.mean(0) * (1 - 1 / 16), rtol=1e-6)  # 4 views, no error


@pytest.mark.parametrize("solver", ["linear", "eigh"])
def test_dlt_exact_any_number_of_views(solver):
    X = body_points(np.random.default_rng(3), T=5)
    for n in (2, 3, 6):
        cams = ring(n, seed=n)
        pts, err = triangulate_dlt(project_all(cams, X), cams, solver=solver)
        assert pts.shape == X.shape and err.shape == X.shape[:-1]
        assert np.abs(pts - X).max() <= 1e-6


def test_weights_matter():
    """A view with a 40 px error moves the point; down-weighted, it barely does."""
    cams = ring()
    X = body_points(np.random.default_rng(4))
    pix = project_all(cams, X)
    pix[0] += 40.0
    w = np.ones(pix.shape[:-1])
    full, _ = triangulate_dlt(pix, cams, w)
    w[0] = 0.01
    down, _ = triangulate_dlt(pix, cams, w)
    e_full = np.linalg.norm(full - X, axis=-1).mean()
    e_down = np.linalg.norm(down - X, axis=-1).mean()
    assert e_full > 0.02  # centimetres off with the bad view at full weight
    assert e_down < 0.05 * e_full


@pytest.mark.parametrize("robust", ["ransac", "irls"])
def test_robust_rejects_a_garbage_view(robust):
    """One of 4 views gives confident random pixels: the robust fit drops it."""
    rng = np.random.default_rng(5)
    cams = ring()
    X = body_points(rng, T=30)
    pix = project_all(cams, X) + rng.normal(0, 1.0, (4, 30, 17, 2))
    pix[2] = rng.uniform([0, 0], [W, H], (30, 17, 2))
    w = np.ones(pix.shape[:-1])
    plain = triangulate_points(pix, cams, w, robust=None)
    res = triangulate_points(pix, cams, w, robust=robust)
    e_plain = np.nanmean(np.linalg.norm(plain.points - X, axis=-1))
    e = np.linalg.norm(res.points - X, axis=-1)
    assert e_plain > 0.1
    assert np.isfinite(e).mean() > 0.97
    assert np.nanmean(e) < 0.006  # ~1 px noise at 4 m: millimetres
    assert res.inliers[2].mean() < 0.03 and res.inliers[[0, 1, 3]].mean() > 0.97


def test_fewer_than_two_views_gives_nan_and_zero_confidence():
    cams = ring()
    X = body_points(np.random.default_rng(6), T=4)
    pix = project_all(cams, X)
    w = np.ones(pix.shape[:-1])
    w[1:, 0, :5] = 0.0  # frame 0, joints 0-4: one view only
    w[:, 1, 7] = 0.0  # frame 1, joint 7: no view
    pts, err = triangulate_dlt(pix, cams, w)
    assert np.isnan(pts[0, :5]).all() and np.isnan(pts[1, 7]).all() and np.isnan(err[0, :5]).all()
    assert np.isfinite(pts[0, 5:]).all()
    res = triangulate_points(pix, cams, w)
    assert (res.confidence[0, :5] == 0).all() and (res.num_views[0, :5] == 0).all()
    # the public type: position 0 and confidence 0, never NaN
    kp = np.concatenate([pix, w[..., None]], -1)
    j = triangulate(kp, cams)
    assert isinstance(j, Joints3D) and j.frame == "world" and j.format == "coco17"
    assert j.data.shape == (4, 1, 17, 3) and np.isfinite(j.data).all()
    assert (j.confidence[0, 0, :5] == 0).all() and (j.data[0, 0, :5] == 0).all()
    assert np.abs(j.data[2, 0] - X[2]).max() < 1e-6


def test_triangulate_keypoints2d_several_people():
    rng = np.random.default_rng(7)
    cams = ring(3)
    X = np.stack([body_points(rng, T=6) + [dx, 0, 0] for dx in (-0.8, 0.8)], 1)  # (T, 2, K, 3)
    kps = []
    for cam in cams:
        uv = cam.project(X)
        kps.append(Keypoints2D(np.concatenate([uv, np.full(uv.shape[:-1] + (1,), 0.9)], -1), "coco17", 25.0, (W, H)))
    j, res = triangulate(kps, cams, return_result=True)
    assert j.data.shape == (6, 2, 17, 3) and j.fps == 25.0 and j.format == "coco17"
    assert np.abs(j.data - X).max() < 1e-6
    assert res.num_views.min() == 3


def test_bad_input_raises_lift3d_error():
    cams = ring()
    X = body_points(np.random.default_rng(8), T=3)
    pix = project_all(cams, X)
    with pytest.raises(Lift3DError, match="cameras"):
        triangulate_dlt(pix, cams[:3])
    with pytest.raises(Lift3DError, match="at least 2 cameras"):
        triangulate_dlt(pix[:1], cams[:1])
    bad = pix.copy()
    bad[1, 0, 0, 0] = np.nan
    with pytest.raises(Lift3DError, match="NaN"):
        triangulate_points(bad, cams)
    w = np.ones(pix.shape[:-1])
    w[1, 0, 0] = 0.0
    triangulate_points(bad, cams, w)  # NaN with weight 0 is just a missing point
    with pytest.raises(Lift3DError, match="robust"):
        triangulate_points(pix, cams, robust="lmeds")
    kp = lambda T, size=(W, H): Keypoints2D(np.ones((T, 1, 17, 3)), "coco17", 30, size)
    with pytest.raises(Lift3DError, match="frame counts"):
        triangulate([kp(3), kp(3), kp(4), kp(3)], cams)
    with pytest.raises(Lift3DError, match="keypoint sets but 3 cameras|views of keypoints but 3"):
        triangulate([kp(3)] * 4, cams[:3])
    with pytest.raises(Lift3DError, match="calibrated for"):
        triangulate([kp(3), kp(3, (1280, 720)), kp(3), kp(3)], cams)
    with pytest.raises(Lift3DError, match="window"):
        smooth_trajectories(np.zeros((10, 3)), np.ones(10), window=4)


def test_temporal_filter_bridges_a_short_gap_and_lowers_noise():
    rng = np.random.default_rng(9)
    T = 120
    t = np.arange(T) / 30.0
    true = np.stack([np.sin(2 * t), 1 + 0.3 * np.cos(3 * t), 0.5 * t], -1)[:, None]  # (T, 1, 3)
    noisy = true + rng.normal(0, 0.01, true.shape)
    conf = np.ones((T, 1))
    conf[50:58] = 0.0  # 8-frame gap
    conf[90:110] = 0.0  # 20 frames: longer than max_gap
    noisy[conf == 0] = np.nan
    noisy[30, 0] += [0.3, 0, 0]  # one wrong triangulation
    out, c = smooth_trajectories(noisy, conf, max_gap=15)
    err_in = np.linalg.norm(np.nan_to_num(noisy - true), axis=-1)[conf > 0]
    err_out = np.linalg.norm(out - true, axis=-1)
    assert np.isfinite(out[50:58]).all() and (c[50:58] > 0).all() and (c[50:58] < 1).all()
    assert err_out[50:58].max() < 0.02
    assert np.isnan(out[95]).all() and c[95] == 0
    assert err_out[30] < 0.02  # the outlier is replaced
    ok = (conf[:, 0] > 0) & (np.arange(T) != 30)
    assert np.sqrt((err_out[ok] ** 2).mean()) < 0.6 * np.sqrt((err_in[np.arange(T)[conf[:, 0] > 0] != 30] ** 2).mean())
    # the Joints3D wrapper keeps the public convention: zeros where missing
    data = np.repeat(np.nan_to_num(noisy)[:, :, None], 17, axis=2)  # (T, 1, 17, 3)
    j = filter_joints(Joints3D(data, "coco17", 30.0, "world", np.repeat(conf[:, :, None], 17, axis=2)))
    assert np.isfinite(j.data).all() and j.confidence[95, 0, 0] == 0 and (j.data[95] == 0).all()
    assert np.abs(j.data[:, 0, 3] - out[:, 0]).max(initial=0, where=np.isfinite(out[:, 0])) < 1e-12


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_filter_is_savitzky_golay_with_full_confidence(degree):
    from scipy.signal import savgol_filter

    x = np.random.default_rng(12).normal(size=(60, 4, 3))
    out, _ = smooth_trajectories(x, np.ones((60, 4)), window=9, degree=degree, outlier_sigma=0)
    ref = savgol_filter(x, 9, degree, axis=0)
    np.testing.assert_allclose(out[4:-4], ref[4:-4], atol=1e-12)


def walking_people(T: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(T, n, 17, 3) simple synthetic people (a random rigid 'skeleton' each) walking on
    separate straight paths."""
    out = []
    for p in range(n):
        skel = rng.uniform([-0.25, 0.0, -0.15], [0.25, 1.75, 0.15], (17, 3))
        start = np.array([1.4 * np.cos(2 * np.pi * p / n), 0.0, 1.4 * np.sin(2 * np.pi * p / n)])
        vel = rng.normal(0, 0.5, 3) * [1, 0, 1] / 30.0
        out.append(skel[None] + start + np.arange(T)[:, None, None] * vel)
    return np.stack(out, 1)


@pytest.mark.parametrize("n_people", [2, 3])
def test_association_recovers_people_across_views_and_time(n_people):
    rng = np.random.default_rng(10 + n_people)
    T = 40
    X = walking_people(T, n_people, rng)
    cams = ring(3, radius=5.0)
    kps, perms = [], []
    for cam in cams:
        uv = cam.project(X) + rng.normal(0, 1.5, (T, n_people, 17, 2))
        d = np.concatenate([uv, np.full(uv.shape[:-1] + (1,), 0.9)], -1)
        d[rng.random(d.shape[:-1]) < 0.05, 2] = 0.0  # some missing joints
        perm = np.stack([rng.permutation(n_people) for _ in range(T)])  # a new order every frame
        kps.append(Keypoints2D(np.take_along_axis(d, perm[:, :, None, None], 1), "coco17", 30, (W, H)))
        perms.append(perm)
    out = associate(kps, cams)
    assert len(out) == 3 and all(k.num_people == n_people for k in out)
    mapping = None
    for c in range(3):
        assert (out.slots[:, c] >= 0).all()
        true = np.take_along_axis(perms[c], out.slots[:, c], 1)  # (T, P): true person in each slot
        assert (true == true[:1]).all()  # the same person in a slot at every frame ...
        mapping = true[0] if mapping is None else mapping
        assert (true[0] == mapping).all()  # ... and in every view
    j = triangulate(out, cams)
    truth = X[:, mapping]
    assert np.linalg.norm(j.data - truth, axis=-1)[j.confidence > 0].mean() < 0.01


def test_real_cmu_motion_four_cameras(shared_data: Path):
    """Real motion (CMU subject 02), 4 ring cameras with distortion, 2 px Gaussian noise."""
    from lift3d.lifting.train import load_sequences

    seqs = load_sequences(shared_data / "cmu-mocap", subjects={"02"}, progress=False)
    seq = next(s for s in seqs if s["name"] == "asfamc/02_05")
    X = seq["inp"][:300]
    centre = X[..., [0, 2]].reshape(-1, 2).mean(0)
    X = X - [centre[0], 0, centre[1]]
    cams = ring(4, radius=4.0)
    rng = np.random.default_rng(11)
    pix = project_all(cams, X) + rng.normal(0, 2.0, (4,) + X.shape[:2] + (2,))
    kps = [Keypoints2D(np.concatenate([p, np.full(p.shape[:-1] + (1,), 0.9)], -1), "coco17", 30, (W, H))
           for p in pix]
    j = triangulate(kps, cams)
    mpjpe = np.linalg.norm(j.data[:, 0] - X, axis=-1).mean() * 1000
    assert (j.confidence > 0).all()
    print(f"4 cameras, 2 px noise: MPJPE {mpjpe:.2f} mm")
    assert mpjpe < 6.0, f"MPJPE {mpjpe:.1f} mm"
    js = triangulate(kps, cams, smooth=True)
    assert np.linalg.norm(js.data[:, 0] - X, axis=-1).mean() * 1000 < mpjpe
