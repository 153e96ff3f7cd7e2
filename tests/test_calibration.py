"""Multi-camera calibration: other tools' calibration files, board detection, ChArUco
calibration with bundle adjustment, and refinement of extrinsics from people's keypoints."""
from __future__ import annotations

import json
import textwrap

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lift3d.fusion.calib_io import load_calibration, save_calibration
from lift3d.fusion.calibration import (
    Calibration, CharucoBoard, Checkerboard, calibrate, detect_board, refine_from_keypoints,
    render_board_image,
)
from lift3d.io_utils import LoadError
from lift3d.types import Camera, Keypoints2D


def _random_camera(rng: np.random.Generator, k3: float = 0.0) -> Camera:
    f = rng.uniform(800, 1600)
    K = [[f, 0, rng.uniform(600, 680)], [0, f * 1.001, rng.uniform(340, 380)], [0, 0, 1]]
    dist = [rng.uniform(-0.3, 0), rng.uniform(0, 0.1), rng.uniform(-1e-3, 1e-3), rng.uniform(-1e-3, 1e-3), k3]
    R = Rotation.random(random_state=int(rng.integers(1 << 30))).as_matrix()
    return Camera(K=K, dist=dist, R=R, t=rng.uniform(-3, 3, 3), image_size=(1280, 720))


def _assert_same(a: dict[str, Camera], b: dict[str, Camera], tol: float = 1e-9) -> None:
    assert list(a) == list(b)
    for name in a:
        ca, cb = a[name], b[name]
        n = max(ca.dist.size, cb.dist.size)
        da, db = np.zeros(n), np.zeros(n)
        da[: ca.dist.size], db[: cb.dist.size] = ca.dist, cb.dist
        for what, x, y in (("K", ca.K, cb.K), ("dist", da, db), ("R", ca.R, cb.R), ("t", ca.t, cb.t)):
            np.testing.assert_allclose(x, y, atol=tol, rtol=tol, err_msg=f"{name}.{what}")
        assert ca.image_size == cb.image_size


def _look_at(centre, target, up=(0.0, 1.0, 0.0)):
    """World-to-camera (R, t) of an OpenCV camera at ``centre`` looking at ``target`` (Y-up world)."""
    centre, target, up = (np.asarray(v, float) for v in (centre, target, up))
    z = (target - centre) / np.linalg.norm(target - centre)
    y = -up + np.dot(up, z) * z
    y /= np.linalg.norm(y)
    R = np.stack([np.cross(y, z), y, z])
    return R, -R @ centre


# ------------------------------------------------------------------ file formats


def test_roundtrip_through_every_format(tmp_path):
    rng = np.random.default_rng(0)
    cams = {"cam_1": _random_camera(rng), "cam_2": _random_camera(rng, k3=0.02), "side-3": _random_camera(rng)}
    chain = [("a.toml", None), ("b.yml", None), ("c.xml", None), ("d.json", None),
             ("mocap", "easymocap"), ("e.yaml", "opencv"), ("f.toml", "anipose")]
    current = cams
    for name, fmt in chain:
        path = save_calibration(current, tmp_path / name, fmt)
        current = load_calibration(path)
        _assert_same(cams, current)
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    # Unknown extensions are recognised by their content.
    for src, dst in (("a.toml", "calib.txt"), ("d.json", "cams.calib"), ("b.yml", "cams.cfg")):
        (tmp_path / dst).write_bytes((tmp_path / src).read_bytes())
        _assert_same(cams, load_calibration(tmp_path / dst))
    # anipose files calibrated in millimetres: written and read with units=0.001.
    save_calibration(cams, tmp_path / "mm.toml", "anipose", units=0.001)
    with pytest.warns(UserWarning, match="millimetres"):
        load_calibration(tmp_path / "mm.toml")
    _assert_same(cams, load_calibration(tmp_path / "mm.toml", units=0.001))


def test_pose2sim_toml_sample(tmp_path):
    # The layout Pose2Sim's calibration writes (trailing commas, float sizes, 4 distortions).
    (tmp_path / "Calib_scene.toml").write_text(textwrap.dedent("""\
        [cam_10]
        name = "cam_10"
        size = [ 1920.0, 1080.0,]
        matrix = [ [ 1677.2, 0.0, 959.5,], [ 0.0, 1676.8, 539.5,], [ 0.0, 0.0, 1.0,],]
        distortions = [ -0.051, 0.021, 0.0012, -0.0005,]
        rotation = [ 1.7015, 0.6812, -0.5107,]
        translation = [ 0.4127, 0.9306, 4.5512,]
        fisheye = false

        [cam_02]
        name = "cam_02"
        size = [ 1920.0, 1080.0,]
        matrix = [ [ 1690.0, 0.0, 955.0,], [ 0.0, 1690.0, 541.0,], [ 0.0, 0.0, 1.0,],]
        distortions = [ -0.04, 0.01, 0.0, 0.0,]
        rotation = [ 1.2, -1.1, 1.3,]
        translation = [ -0.2, 1.1, 5.2,]
        fisheye = false

        [metadata]
        adjusted = false
        error = 0.0
        """))
    cams = load_calibration(tmp_path / "Calib_scene.toml")
    assert list(cams) == ["cam_02", "cam_10"]  # natural order of names
    c = cams["cam_10"]
    assert c.image_size == (1920, 1080) and c.dist.tolist() == [-0.051, 0.021, 0.0012, -0.0005]
    np.testing.assert_allclose(c.R, cv2.Rodrigues(np.array([1.7015, 0.6812, -0.5107]))[0], atol=1e-12)
    np.testing.assert_allclose(c.t, [0.4127, 0.9306, 4.5512])
    assert c.K[0, 0] == 1677.2 and c.K[1, 2] == 539.5


def test_easymocap_sample(tmp_path):
    def mat(name, rows, cols, data):
        return (f"{name}: !!opencv-matrix\n   rows: {rows}\n   cols: {cols}\n   dt: d\n"
                f"   data: [ {', '.join(repr(float(v)) for v in data)} ]\n")

    rvec = [0.1, -2.0, 0.3]
    R = cv2.Rodrigues(np.array(rvec))[0]
    head = '%YAML:1.0\n---\nnames:\n   - "01"\n   - "02"\n'
    intri = head + "".join(
        mat(f"K_{n}", 3, 3, [1100 + i, 0, 512, 0, 1100 + i, 384, 0, 0, 1]) + mat(f"dist_{n}", 1, 5, [-0.1, 0.05, 0, 0, 0])
        for i, n in enumerate(["01", "02"]))
    extri = head + "".join(
        mat(f"R_{n}", 3, 1, rvec) + mat(f"Rot_{n}", 3, 3, R.ravel()) + mat(f"T_{n}", 3, 1, [0.5 * i, 1.0, 4.0])
        for i, n in enumerate(["01", "02"]))
    (tmp_path / "intri.yml").write_text(intri)
    (tmp_path / "extri.yml").write_text(extri)
    with pytest.warns(UserWarning, match="image size"):  # EasyMocap files often have no H_/W_
        cams = load_calibration(tmp_path)
    assert list(cams) == ["01", "02"]
    c = cams["02"]
    assert c.image_size == (1024, 768)  # twice the principal point
    np.testing.assert_allclose(c.R, R, atol=1e-12)
    np.testing.assert_allclose(c.t, [0.5, 1.0, 4.0])
    assert c.K[0, 0] == 1101 and c.dist[0] == -0.1
    # Naming one of the two files works too, and so do other names found by their content.
    with pytest.warns(UserWarning):
        _assert_same(cams, load_calibration(tmp_path / "extri.yml"))
    (tmp_path / "scene_intri.yml").write_text(intri)
    (tmp_path / "scene_extri.yml").write_text(extri)
    with pytest.warns(UserWarning):
        _assert_same(cams, load_calibration(tmp_path / "scene_intri.yml"))


def test_opencv_single_camera_samples(tmp_path):
    # As OpenCV's calibration sample writes it (one camera at the top level, no extrinsics).
    (tmp_path / "out_camera_data.yml").write_text(textwrap.dedent("""\
        %YAML:1.0
        ---
        calibration_time: "Mon Nov 24 10:00:00 2026"
        image_width: 640
        image_height: 480
        camera_matrix: !!opencv-matrix
           rows: 3
           cols: 3
           dt: d
           data: [ 6.5e+02, 0., 3.195e+02, 0., 6.5e+02, 2.395e+02, 0., 0., 1. ]
        distortion_coefficients: !!opencv-matrix
           rows: 5
           cols: 1
           dt: d
           data: [ -0.2, 0.1, 0., 0., -0.02 ]
        avg_reprojection_error: 0.3
        """))
    (tmp_path / "cam.xml").write_text(textwrap.dedent("""\
        <?xml version="1.0"?>
        <opencv_storage>
        <cameraMatrix type_id="opencv-matrix"><rows>3</rows><cols>3</cols><dt>d</dt>
          <data>800. 0. 640. 0. 800. 360. 0. 0. 1.</data></cameraMatrix>
        <distCoeffs type_id="opencv-matrix"><rows>1</rows><cols>4</cols><dt>d</dt>
          <data>-0.1 0.01 0. 0.</data></distCoeffs>
        <rvec type_id="opencv-matrix"><rows>3</rows><cols>1</cols><dt>d</dt><data>0. 0.5 0.</data></rvec>
        <tvec type_id="opencv-matrix"><rows>3</rows><cols>1</cols><dt>d</dt><data>0.1 0.2 3.</data></tvec>
        <image_size>1280 720</image_size>
        </opencv_storage>
        """))
    a = load_calibration(tmp_path / "out_camera_data.yml")["out_camera_data"]
    assert a.image_size == (640, 480) and a.K[0, 2] == 319.5 and a.dist[4] == -0.02
    np.testing.assert_allclose(a.R, np.eye(3))
    b = load_calibration(tmp_path / "cam.xml")["cam"]
    assert b.image_size == (1280, 720) and b.dist.size == 4
    np.testing.assert_allclose(b.R, cv2.Rodrigues(np.array([0.0, 0.5, 0.0]))[0])
    np.testing.assert_allclose(b.t, [0.1, 0.2, 3.0])


GOOD_TOML = """[cam_1]
name = "a"
size = [640.0, 480.0]
matrix = [[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]]
distortions = [0.0, 0.0, 0.0, 0.0]
rotation = [0.0, 0.0, 0.0]
translation = [0.0, 0.0, 0.0]
fisheye = false
"""


@pytest.mark.parametrize("name, content, problem", [
    ("trunc.toml", GOOD_TOML[:120], "not valid TOML"),
    ("nomatrix.toml", GOOD_TOML.replace("matrix = [[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]]\n", ""), "lacks matrix"),
    ("shape.toml", GOOD_TOML.replace("[0.0, 0.0, 1.0]]", "[0.0, 0.0]]"), "matrix"),
    ("nan.toml", GOOD_TOML.replace("translation = [0.0, 0.0, 0.0]", "translation = [nan, 0.0, 0.0]"), "NaN"),
    ("fish.toml", GOOD_TOML.replace("fisheye = false", "fisheye = true"), "fisheye"),
    ("size.toml", GOOD_TOML.replace("size = [640.0, 480.0]", "size = [640.5, 480.0]"), "image size"),
    ("nonrot.json", json.dumps({"a": {"K": np.eye(3).tolist(), "R": [[1, 0, 0], [0, 2, 0], [0, 0, 0.5]],
                                      "image_size": [640, 480]}}), "not a rotation"),
    ("nan.json", '[{"K": [[NaN, 0, 1], [0, 1, 1], [0, 0, 1]], "image_size": [4, 4]}]', "NaN"),
    ("nok.json", '{"a": {"image_size": [4, 4]}}', "lacks K"),
    ("empty.yml", "", "FileStorage"),
    ("garbage.xml", "\x00\x01binary", "FileStorage"),
    ("trunc.yml", "%YAML:1.0\n---\ncamera_names:\n   - a\n   - b\ncamera_0:\n   name: a\n   image_width: 640\n"
                  "   image_height: 480\n   camera_matrix: !!opencv-matrix\n      rows: 3\n      cols: 3\n"
                  "      dt: d\n      data: [ 600., 0., 320., 0., 600., 240., 0., 0., 1. ]\n", "missing (truncated"),
    ("badmat.yml", "%YAML:1.0\n---\nK: !!opencv-matrix\n   rows: 3\n   cols: 3\n   dt: d\n   data: [ 1., 0. ]\n"
                   "image_width: 4\nimage_height: 4\n", ""),
])
def test_broken_files_give_one_line_load_error(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LoadError) as info:
        load_calibration(path)
    msg = str(info.value)
    assert "\n" not in msg and name in msg and problem in msg, msg


def test_broken_easymocap_and_missing_files(tmp_path):
    rng = np.random.default_rng(1)
    save_calibration({"a": _random_camera(rng), "b": _random_camera(rng)}, tmp_path / "em", "easymocap")
    extri = tmp_path / "em" / "extri.yml"
    text = extri.read_text()
    extri.write_text(text[: text.index("T_b")])  # truncated before the last camera's translation
    with pytest.raises(LoadError, match="lacks T_b"):
        load_calibration(tmp_path / "em")
    (tmp_path / "em" / "intri.yml").unlink()
    with pytest.raises(LoadError, match="intri.yml"):
        load_calibration(tmp_path / "em")
    with pytest.raises(LoadError, match="intri.yml is missing"):
        load_calibration(tmp_path / "em" / "extri.yml")
    with pytest.raises(LoadError, match="not found"):
        load_calibration(tmp_path / "nothing.toml")
    (tmp_path / "x.bin").write_bytes(b"\x00")
    with pytest.raises(LoadError, match="unknown extension"):
        load_calibration(tmp_path / "x.bin")


def test_calibration_result_saves(tmp_path):
    rng = np.random.default_rng(2)
    calib = Calibration({"left": _random_camera(rng), "right": _random_camera(rng)}, {"left": 0.2, "right": 0.3})
    calib.save(tmp_path / "calib.toml")
    _assert_same(calib.cameras, Calibration.load(tmp_path / "calib.toml").cameras)
    assert "left" in calib.summary()


# ------------------------------------------------------------------ detection and calibration


def test_checkerboard_detection_on_synthetic_image(tmp_path):
    board = Checkerboard(corners=(7, 5), square_size=0.05)
    cam = Camera(K=[[700, 0, 320], [0, 700, 240], [0, 0, 1]], dist=[-0.15, 0.05, 0, 0, 0], image_size=(640, 480))
    R = Rotation.from_rotvec([0.35, -0.25, 0.1]).as_matrix()
    t = np.array([-0.15, -0.1, 0.9])
    image = render_board_image(board, cam, R, t)
    dets = detect_board([image, np.zeros((480, 640), np.uint8)], board, progress=False)
    assert len(dets.ids[0]) == board.num_corners and len(dets.ids[1]) == 0
    truth = cam.project(board.object_points @ R.T + t)
    found = dets.corners[0]
    # findChessboardCorners may list the corners from either end.
    err = min(np.abs(found - truth).max(), np.abs(found[::-1] - truth).max())
    assert err < 0.2, err
    # The same from a folder of frames on disk (lift3d.keypoints.open_frames), every 2nd frame.
    (tmp_path / "frames").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "frames" / f"f{i}.png"), image)
    dets = detect_board(tmp_path / "frames", board, stride=2, progress=False)
    assert dets.num_frames == 2 and dets.stride == 2 and dets.image_size == (640, 480)
    np.testing.assert_allclose(dets.corners[1], found, atol=1e-6)


def _charuco_scene(n_poses: int, rng: np.random.Generator):
    """Two 640x480 cameras 0.8 m apart looking at a ChArUco board 1.4 m away, Y-up world."""
    board = CharucoBoard(squares=(7, 5), square_size=0.08, marker_size=0.06, dictionary="DICT_4X4_50")
    target = np.array([0.0, 1.2, 0.0])
    cams = {}
    for name, x, f in (("left", -0.4, 620.0), ("right", 0.4, 660.0)):
        R, t = _look_at(target + [x, 0.1, -1.4], target)
        cams[name] = Camera(K=[[f, 0, 322], [0, f, 238], [0, 0, 1]], dist=[-0.12, 0.04, 0, 0, 0], R=R, t=t,
                            image_size=(640, 480))
    poses = []
    half = np.array([7 * 0.08, 5 * 0.08, 0]) / 2
    for _ in range(n_poses):
        # printed face (-z of the board) towards the cameras (-z of the world), tilted up to ~35 deg
        tilt = Rotation.from_rotvec(rng.uniform(-0.6, 0.6, 3) * [1, 1, 0.5]).as_matrix()
        Rb = tilt @ np.diag([-1.0, -1.0, 1.0])  # board x left-to-right and y down as seen by the cameras
        centre = target + rng.uniform(-0.15, 0.15, 3)
        poses.append((Rb, centre - Rb @ half))
    return board, cams, poses


def test_charuco_two_camera_calibration():
    rng = np.random.default_rng(3)
    board, truth, poses = _charuco_scene(14, rng)
    dets = {}
    for name, cam in truth.items():
        frames = (render_board_image(board, cam, cam.R @ Rb, cam.R @ tb + cam.t, rng=rng) for Rb, tb in poses)
        dets[name] = detect_board(frames, board, progress=False)
    calib = calibrate(dets, board)
    for name, cam in truth.items():
        est = calib.cameras[name]
        assert abs(est.K[0, 0] / cam.K[0, 0] - 1) < 0.01 and abs(est.K[1, 1] / cam.K[1, 1] - 1) < 0.01
        assert calib.rms_px[name] < 0.5
    base = np.linalg.norm(truth["left"].center - truth["right"].center)
    est_base = np.linalg.norm(calib.cameras["left"].center - calib.cameras["right"].center)
    assert abs(est_base - base) < 0.01
    np.testing.assert_allclose(calib.cameras["left"].R, np.eye(3), atol=1e-12)  # world = camera 1

    # The board as the ground: Y up out of its printed face, so both cameras are above it.
    ground = calibrate(dets, board, world="board", intrinsics=calib.cameras, refine_intrinsics=False)
    assert all(c.center[1] > 0.5 for c in ground.cameras.values())
    est_base = np.linalg.norm(ground.cameras["left"].center - ground.cameras["right"].center)
    assert abs(est_base - base) < 0.01


def _person(T: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 17, 3) points of a 'person' walking in a circle around the origin, Y up."""
    body = rng.normal(0, 1, (17, 3)) * [0.2, 0.45, 0.12] + [0, 0.9, 0]
    a = 2 * np.pi * np.arange(T) / T
    return body[None] + np.stack([0.5 * np.sin(a), np.zeros(T), 0.5 * np.cos(a)], -1)[:, None]


def test_refine_from_keypoints_recovers_perturbed_camera():
    rng = np.random.default_rng(4)
    truth = {}
    for i, angle in enumerate(np.radians([-50, 0, 50])):
        centre = np.array([3 * np.sin(angle), 1.5, -3 * np.cos(angle)])
        R, t = _look_at(centre, [0, 1.0, 0])
        truth[f"cam{i + 1}"] = Camera(K=[[1000, 0, 640], [0, 1000, 360], [0, 0, 1]], dist=[-0.1, 0.02, 0, 0, 0],
                                      R=R, t=t, image_size=(1280, 720))
    X = _person(80, rng)
    kp = np.stack([np.concatenate([c.project(X) + rng.normal(0, 1.5, X.shape[:2] + (2,)),
                                   rng.uniform(0.4, 1.0, X.shape[:2] + (1,))], -1) for c in truth.values()])
    kp[0, :5, :4, 2] = 0.0  # some missing keypoints
    kp[1, 10, 3, :2] += 80.0  # and an outlier
    dR = Rotation.from_rotvec(np.radians(2.0) * np.array([0.6, 0.0, 0.8])).as_matrix()
    bad = truth["cam3"]
    R = dR @ bad.R
    perturbed = dict(truth, cam3=Camera(K=bad.K, dist=bad.dist, R=R, t=-R @ (bad.center + [0.03, -0.03, 0.03]),
                                         image_size=bad.image_size))
    keypoints = {name: Keypoints2D(kp[i], "coco17", 30.0, (1280, 720)) for i, name in enumerate(truth)}
    calib = refine_from_keypoints(perturbed, keypoints)
    est = calib.cameras["cam3"]
    angle = np.degrees(np.arccos(np.clip((np.trace(est.R.T @ bad.R) - 1) / 2, -1, 1)))
    assert angle < 0.3 and np.linalg.norm(est.center - bad.center) < 0.01, (angle, est.center - bad.center)
    _assert_same({"cam1": truth["cam1"]}, {"cam1": calib.cameras["cam1"]}, tol=1e-9)  # held fixed
    base = np.linalg.norm(truth["cam1"].center - truth["cam2"].center)
    assert abs(np.linalg.norm(calib.cameras["cam1"].center - calib.cameras["cam2"].center) - base) < 1e-9
    assert all(v < 3.0 for v in calib.rms_px.values())
