"""Camera conventions, keypoint format mappings and the core types."""
import json

import numpy as np
import pytest

from lift3d import formats
from lift3d.io_utils import LoadError
from lift3d.types import BodyFit, Camera, Joints3D, Keypoints2D


def _camera(dist=(0.0, 0, 0, 0, 0)):
    R = np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]])  # 90 degrees about y
    return Camera(K=[[800, 0, 330], [0, 790, 250], [0, 0, 1]], image_size=(640, 480), dist=dist,
                  R=R, t=[0.1, -0.2, 4.0])


@pytest.mark.parametrize("dist", [(0, 0, 0, 0, 0), (-0.2, 0.05, 0.001, -0.002, 0.0)])
def test_project_unproject_round_trip(dist):
    cam = _camera(dist)
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, (50, 3))
    uv = cam.project(pts)
    depth = cam.world_to_camera(pts)[:, 2]
    back = cam.unproject(uv, depth)
    np.testing.assert_allclose(back, pts, atol=1e-6)


def test_projection_matches_opencv():
    import cv2

    cam = _camera((-0.2, 0.05, 0.001, -0.002, 0.01))
    pts = np.random.default_rng(1).uniform(-0.5, 0.5, (20, 3))
    rvec, _ = cv2.Rodrigues(cam.R)
    ref, _ = cv2.projectPoints(pts, rvec, cam.t, cam.K, cam.dist)
    np.testing.assert_allclose(cam.project(pts), ref[:, 0], atol=1e-6)


def test_camera_axes_opencv_convention():
    cam = Camera.from_fov(640, 480, 60)
    # x right, y down, z forward: a point right of and below the axis lands right/below centre.
    u, v = cam.project(np.array([0.5, 0.5, 3.0]))
    assert u > 320 and v > 240
    assert cam.K[0, 0] == pytest.approx(320 / np.tan(np.radians(30)))


def test_camera_save_load_and_bad_files(tmp_path):
    cam = _camera((-0.1, 0, 0, 0, 0))
    cam.save(tmp_path / "cam.json")
    back = Camera.load(tmp_path / "cam.json")
    np.testing.assert_allclose(back.K, cam.K)
    np.testing.assert_allclose(back.R, cam.R)
    assert back.image_size == (640, 480)
    (tmp_path / "bad.json").write_text('{"K": [[1, 0')
    with pytest.raises(LoadError, match="not valid JSON"):
        Camera.load(tmp_path / "bad.json")
    (tmp_path / "binary.json").write_bytes(b"\xd3\x00\xff" * 10)  # e.g. a video passed as --camera
    with pytest.raises(LoadError, match="not valid JSON"):
        Camera.load(tmp_path / "binary.json")
    with pytest.raises(LoadError, match="not found"):
        Camera.load(tmp_path / "missing.json")
    d = cam.to_dict()
    d["R"] = (2 * np.eye(3)).tolist()
    (tmp_path / "wrong.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="rotation"):
        Camera.load(tmp_path / "wrong.json")
    d["R"] = np.eye(3).tolist()
    d["K"][0][0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Camera.from_dict(d)


def test_format_tables_consistent():
    for fmt, ns in formats.FORMATS.items():
        assert len(ns) == len(set(ns)), fmt
    assert len(formats.names("coco17")) == 17
    assert len(formats.names("blazepose33")) == 33
    assert len(formats.names("openpose25")) == 25
    assert formats.index("openpose25", "neck") == 1
    assert formats.index("coco17", "left_wrist") == 9
    assert formats.mirror_name("left_knee") == "right_knee"
    assert formats.mirror_name("mouth_left") == "mouth_right"


def test_convert_blazepose_to_coco_and_openpose():
    rng = np.random.default_rng(0)
    bp = np.concatenate([rng.uniform(0, 500, (4, 33, 2)), rng.uniform(0.5, 1, (4, 33, 1))], -1)
    coco = formats.convert(bp, "blazepose33", "coco17")
    for i, name in enumerate(formats.names("coco17")):
        np.testing.assert_allclose(coco[:, i], bp[:, formats.index("blazepose33", name)])
    op = formats.convert(bp, "blazepose33", "openpose25")
    ls, rs = formats.index("blazepose33", "left_shoulder"), formats.index("blazepose33", "right_shoulder")
    neck = op[:, formats.index("openpose25", "neck")]
    np.testing.assert_allclose(neck[:, :2], 0.5 * (bp[:, ls, :2] + bp[:, rs, :2]))
    np.testing.assert_allclose(neck[:, 2], np.minimum(bp[:, ls, 2], bp[:, rs, 2]))
    # BODY_25's small toe has no BlazePose counterpart: confidence 0, coordinates 0.
    st = op[:, formats.index("openpose25", "left_small_toe")]
    assert np.all(st == 0)
    big = op[:, formats.index("openpose25", "left_big_toe")]
    np.testing.assert_allclose(big, bp[:, formats.index("blazepose33", "left_foot_index")])


def test_convert_coco_to_h36m_derived_joints():
    coco = np.zeros((1, 17, 3))
    coco[0, :, 2] = 1
    coco[0, formats.index("coco17", "left_hip"), :2] = [10, 100]
    coco[0, formats.index("coco17", "right_hip"), :2] = [30, 100]
    coco[0, formats.index("coco17", "left_shoulder"), :2] = [10, 40]
    coco[0, formats.index("coco17", "right_shoulder"), :2] = [30, 40]
    h = formats.convert(coco, "coco17", "h36m17")
    np.testing.assert_allclose(h[0, formats.index("h36m17", "pelvis"), :2], [20, 100])
    np.testing.assert_allclose(h[0, formats.index("h36m17", "neck"), :2], [20, 40])
    np.testing.assert_allclose(h[0, formats.index("h36m17", "spine"), :2], [20, 70])
    coco[0, formats.index("coco17", "left_hip"), 2] = 0.0  # a missing source zeroes the pelvis
    h = formats.convert(coco, "coco17", "h36m17")
    assert h[0, formats.index("h36m17", "pelvis"), 2] == 0


def test_keypoints2d_nan_becomes_zero_confidence(tmp_path):
    data = np.ones((3, 1, 17, 3))
    data[1, 0, 4] = np.nan
    kp = Keypoints2D(data, "coco17", 25, (100, 80))
    assert kp.confidence[1, 0, 4] == 0 and np.isfinite(kp.data).all()
    kp.save(tmp_path / "k.npz")
    back = Keypoints2D.load(tmp_path / "k.npz")
    np.testing.assert_array_equal(back.data, kp.data)
    assert back.fps == 25 and back.image_size == (100, 80) and back.format == "coco17"
    with pytest.raises(ValueError):
        Keypoints2D(np.ones((3, 1, 16, 3)), "coco17", 25, (100, 80))


def test_npz_truncated_gives_load_error(tmp_path):
    kp = Keypoints2D(np.ones((3, 1, 17, 3)), "coco17", 25, (100, 80))
    kp.save(tmp_path / "k.npz")
    raw = (tmp_path / "k.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(LoadError):
        Keypoints2D.load(tmp_path / "t.npz")
    assert not list(tmp_path.glob(".*part*")), "no temporary file left behind"


def test_joints3d_and_bodyfit_round_trip(tmp_path):
    j = Joints3D(np.random.default_rng(0).normal(size=(5, 2, 17, 3)), "coco17", 30, "world")
    j.save(tmp_path / "j.npz")
    back = Joints3D.load(tmp_path / "j.npz")
    np.testing.assert_allclose(back.data, j.data)
    assert back.frame == "world"
    h = j.to_format("h36m17")
    assert h.data.shape == (5, 2, 17, 3)
    fit = BodyFit("anny", np.tile(np.eye(3), (4, 1, 3, 1, 1)), np.zeros((1, 6)), np.zeros((4, 1, 3)), 30,
                  camera=Camera.from_fov(64, 48), quality={"reprojection_px": np.arange(4.0)[:, None]})
    fit.save(tmp_path / "fit.npz")
    back = BodyFit.load(tmp_path / "fit.npz")
    np.testing.assert_allclose(back.pose, fit.pose)
    np.testing.assert_allclose(back.quality["reprojection_px"], fit.quality["reprojection_px"])
    assert back.camera.image_size == (64, 48)


def test_convert_points_keeps_negative_coordinates():
    # convert() reads the last channel as confidence; world positions may be negative there.
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-1, 1, (5, 33, 3))
    coco = formats.convert_points(xyz, "blazepose33", "coco17")
    bp = formats.names("blazepose33")
    assert np.allclose(coco[:, formats.names("coco17").index("left_knee")], xyz[:, bp.index("left_knee")])
    h36 = formats.convert_points(coco, "coco17", "h36m17")
    hips = [formats.names("coco17").index(n) for n in ("left_hip", "right_hip")]
    assert np.allclose(h36[:, formats.names("h36m17").index("pelvis")], coco[:, hips].mean(1))
