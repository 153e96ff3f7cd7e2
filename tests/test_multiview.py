"""`lift3d multiview` end to end on a small rendered multi-camera scene, every output re-read."""
import numpy as np
import pytest

from lift3d import formats
from lift3d.cli import main
from lift3d.fusion.calib_io import load_calibration
from lift3d.metrics import joint_errors
from lift3d.types import BodyFit, Joints3D, Keypoints2D


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from lift3d.demo import make_multiview_clip

    return make_multiview_clip(tmp_path_factory.mktemp("mv"), num_cameras=3, seconds=0.5, progress=False)


@pytest.fixture(scope="module")
def run(scene, tmp_path_factory):
    out = tmp_path_factory.mktemp("mv_out")
    code = main(["multiview", "--calib", str(scene.calibration), "--videos", *map(str, scene.videos),
                 "-o", str(out), "--sync", "--max-offset", "3", "-q"])
    return code, out


def test_outputs_reread(scene, run):
    code, out = run
    assert code == 0
    T = len(scene.keypoints3d)
    for name in scene.cameras:
        kp = Keypoints2D.load(out / f"keypoints_{name}.npz")
        assert kp.num_frames == T and kp.confidence.mean() > 0.5
    # Triangulated joints against the rendered truth (calibration world).
    j = Joints3D.load(out / "joints3d.npz")
    assert j.frame == "world" and j.data.shape[:2] == (T, 1)
    tri = formats.convert_points(j.data[:, 0], j.format, "coco17")
    err = joint_errors(tri, scene.keypoints3d)
    assert err["mpjpe_mm"] < 60, err
    # The fit lives in the floor's world; the cameras written beside it take it back to the
    # calibration's world, where it matches the truth.
    fit = BodyFit.load(out / "fit.npz")
    assert fit.frame == "world" and fit.num_frames == T
    kp_new = fit.keypoints3d("coco17")
    new_cams = load_calibration(out / "cameras.json")
    old_cams = load_calibration(scene.calibration)
    a, b = new_cams["cam1"], old_cams["cam1"]
    back = b.camera_to_world(a.world_to_camera(kp_new))
    err = joint_errors(back, scene.keypoints3d)
    assert err["mpjpe_mm"] < 70, err
    # Standing on the floor: the lowest foot point is near y = 0 and the head above it.
    names = formats.names("coco17")
    feet = kp_new[:, [names.index("left_ankle"), names.index("right_ankle")], 1]
    assert abs(feet.min()) < 0.15 and (kp_new[:, names.index("nose"), 1] > 1.2).all()
    for fmt in ("bvh", "fbx", "glb"):
        assert (out / f"animation.{fmt}").stat().st_size > 1000
    # Each video's detections were kept as soon as it was done (a rerun resumes from them).
    assert sorted(p.name for p in (out / "detections").iterdir()) == ["cam1.npz", "cam2.npz", "cam3.npz"]
    bvhio = pytest.importorskip("bvhio")
    assert len(bvhio.readAsHierarchy(str(out / "animation.bvh")).layout()) == 104


def test_bad_input_one_line(scene, tmp_path, capsys):
    capsys.readouterr()
    code = main(["multiview", "--calib", str(scene.calibration), "--videos", str(scene.videos[0]),
                 str(scene.videos[1]), str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("lift3d: error:")
    (tmp_path / "bad.toml").write_text("[cam_1]\nname = 'cam1'\nsize = [480, 360]\n")
    code = main(["multiview", "--calib", str(tmp_path / "bad.toml"), "--videos", *map(str, scene.videos),
                 "-o", str(tmp_path / "o2"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("lift3d: error:") and "bad.toml" in err[-1]


def test_imported_multi_person_keypoints(scene, run, tmp_path):
    """Keypoint files instead of videos, two people in a different order in every view: the
    people are associated across views and both triangulated."""
    _, out = run
    other = scene.keypoints3d + np.array([1.2, 0.0, -0.8])  # a second person beside the first
    rng = np.random.default_rng(0)
    files = []
    for i, (name, cam) in enumerate(scene.cameras.items()):
        kp = Keypoints2D.load(out / f"keypoints_{name}.npz").to_format("coco17")
        uv = cam.project(other) + rng.normal(0, 1.0, other.shape[:-1] + (2,))
        second = np.concatenate([uv, np.full(uv.shape[:-1] + (1,), 0.9)], -1)
        people = [kp.data[:, 0], second][:: 1 if i % 2 == 0 else -1]
        path = tmp_path / f"view{i}.npz"
        Keypoints2D(np.stack(people, 1), "coco17", kp.fps, kp.image_size).save(path)
        files.append(path)
    assert main(["multiview", "--calib", str(scene.calibration), "--videos", *map(str, files),
                 "-o", str(tmp_path / "o"), "--export", "bvh", "-q"]) == 0
    j = Joints3D.load(tmp_path / "o" / "joints3d.npz")
    assert j.data.shape[1] == 2 and j.format == "coco17"
    errs = sorted(min(joint_errors(j.data[:, p], truth)["mpjpe_mm"] for truth in (scene.keypoints3d, other))
                  for p in range(2))
    assert errs[1] < 60, errs
