"""Export: the rig behind every animation file, BVH (re-read by bvhio and Blender), mesh
sequences (re-read by open3d), the `lift3d export` command."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import roma
import torch

import lift3d
from lift3d.export import bone_names, export_fit, rig_from_fit
from lift3d.export.bvh import write_bvh
from lift3d.export.skeleton import continuous_euler
from lift3d.export.meshes import load_mesh_npz
from lift3d.export.skeleton import Rig

ROOT = Path(__file__).resolve().parents[1]
T = 8


def moving_fit(model, T: int = T, scale: float = 0.5, seed: int = 0, frame: str = "world",
               **kw) -> lift3d.BodyFit:
    """A fit in which every joint turns (a harder test of conventions than a real fit, whose
    fingers and toes stay at rest), with a random body shape and root motion."""
    rng = np.random.default_rng(seed)
    rotvec = torch.tensor(scale * rng.standard_normal((T, 1, model.num_joints, 3)))
    return lift3d.BodyFit(model.name, roma.rotvec_to_rotmat(rotvec).numpy(),
                          0.3 * rng.standard_normal((1, model.num_shape)),
                          rng.standard_normal((T, 1, 3)), 30.0, frame=frame, **kw)


@pytest.fixture(scope="module")
def fit(anny):
    return moving_fit(anny)


@pytest.fixture(scope="module")
def rig(fit, anny):
    return rig_from_fit(fit, naming="mixamo", model=anny)


def blender_read(path: Path, out: Path, frames: str, *extra: str) -> dict:
    if importlib.util.find_spec("bpy") is None:  # not imported here: Blender runs in a subprocess
        pytest.skip("Blender's Python module (bpy) is not installed: pip install '.[test]'")
    subprocess.run([sys.executable, str(ROOT / "tests" / "blender_read.py"), str(path), str(out),
                    "--frames", frames, *extra], check=True, capture_output=True, timeout=300)
    return dict(np.load(out))


def test_rig_reproduces_the_body_model(fit, rig, anny):
    # Joints by forward kinematics over the file-ready offsets and local rotations, and the
    # mesh by plain linear blend skinning, equal the body model's own output.
    assert np.abs(rig.joint_positions() - fit.joints(model=anny)).max() < 1e-5
    err = np.linalg.norm(rig.skinned_vertices() - fit.vertices(model=anny), axis=-1)
    assert err.max() < 5e-4 and err.mean() < 1e-5
    # Bone lengths come from the fitted shape: a taller body has longer offsets.
    tall = lift3d.BodyFit("anny", fit.pose, fit.shape + np.array([[0, 0, 0, 0, 0.4, 0]]), fit.transl, 30.0)
    assert np.linalg.norm(rig_from_fit(tall, mesh=False, model=anny).offsets, axis=1).sum() > \
        1.05 * np.linalg.norm(rig.offsets, axis=1).sum()


def test_rig_for_the_smpl_family(tmp_path):
    from tests.test_smpl_model import make_model_data
    import body_models

    data = make_model_data("smpl")
    data["posedirs"] = np.zeros_like(data["posedirs"])  # pose correctives cannot be skinned in a file
    (tmp_path / "smpl").mkdir()
    np.savez(tmp_path / "smpl" / "SMPL_NEUTRAL.npz", **data)
    model = body_models.load("smpl", model_path=str(tmp_path))
    fit = moving_fit(model, T=3, model_kwargs={"model_path": str(tmp_path)})
    rig = rig_from_fit(fit, model=model)
    assert np.abs(rig.joint_positions() - fit.joints(model=model)).max() < 1e-5
    assert np.abs(rig.skinned_vertices() - fit.vertices(model=model)).max() < 1e-4


@pytest.mark.parametrize("naming", ["mixamo", "unity", "ue"])
def test_humanoid_namings(anny, naming):
    names = bone_names(anny.joint_names, naming)
    assert len(set(names)) == len(names) == anny.num_joints
    required = {
        "mixamo": ["Hips", "Spine", "Spine2", "Neck", "Head", "LeftUpLeg", "LeftLeg", "LeftFoot",
                   "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "RightHand", "LeftHandIndex1"],
        "unity": ["Hips", "Spine", "Chest", "Head", "LeftUpperLeg", "LeftLowerLeg", "LeftFoot",
                  "LeftUpperArm", "LeftLowerArm", "LeftHand", "RightUpperLeg", "LeftIndexProximal"],
        "ue": ["pelvis", "spine_01", "spine_05", "neck_01", "head", "thigh_l", "calf_l", "foot_l",
               "clavicle_l", "upperarm_l", "lowerarm_l", "hand_l", "hand_r", "index_01_l"],
    }[naming]
    prefix = "mixamorig:" if naming == "mixamo" else ""
    idx = {n: names.index(prefix + n) for n in required}
    rest = anny(anny.rest_pose(1)).joints[0].numpy()

    def ancestors(j):
        while j >= 0:
            yield j
            j = anny.parents[j]

    # Left is the body's left (+X when facing +Z), and each limb chain runs parent to child.
    for n, j in idx.items():
        if n.startswith("Left") or n.endswith("_l"):
            assert rest[j, 0] > 0.02, n
    chain = {"mixamo": ["LeftUpLeg", "LeftLeg", "LeftFoot"], "unity": ["LeftUpperArm", "LeftLowerArm", "LeftHand"],
             "ue": ["upperarm_l", "lowerarm_l", "hand_l"]}[naming]
    assert idx[chain[0]] in ancestors(idx[chain[1]]) and idx[chain[1]] in ancestors(idx[chain[2]])


def test_camera_frame_fit_is_exported_upright(anny):
    # An upright person seen by an OpenCV camera has the head at smaller y (y points down).
    pose = np.tile(np.eye(3), (2, 1, anny.num_joints, 1, 1))
    pose[:, 0, 0] = np.diag([1.0, -1.0, -1.0])
    fit = lift3d.BodyFit("anny", pose, np.zeros((1, 6)), np.array([[[0.0, 0.0, 3.0]]] * 2), 30.0,
                         frame="camera")
    rig = rig_from_fit(fit, mesh=False, model=anny)
    j = rig.joint_positions()[0]
    head, foot = anny.joint_names.index("head"), anny.joint_names.index("foot.L")
    assert j[head, 1] - j[foot, 1] > 1.2  # upright in the Y-up file


def test_continuous_euler_has_no_jumps():
    # A steady spin through the Euler singularity and past 180 degrees.
    t = np.linspace(0, 1, 200)
    R = roma.rotvec_to_rotmat(torch.tensor(np.stack([4 * t, 3 * t, 0 * t + 1.57], -1))).numpy()
    angles = continuous_euler(R, "ZXY")
    assert np.abs(np.diff(angles, axis=0)).max() < 10.0
    from scipy.spatial.transform import Rotation

    back = Rotation.from_euler("ZXY", angles.reshape(-1, 3), degrees=True).as_matrix()
    assert np.abs(back - R).max() < 1e-9


def test_bvh_reread_by_bvhio_every_frame(tmp_path, rig):
    bvhio = pytest.importorskip("bvhio", reason="the independent BVH parser bvhio is not installed: pip install '.[test]'")
    path = tmp_path / "a.bvh"
    write_bvh(rig, path)
    ref = rig.joint_positions()
    root = bvhio.readAsHierarchy(str(path))
    for f in range(T):
        root.loadPose(f)
        pos = {j.Name: np.array(j.PositionWorld) for j, _, _ in root.layout()}
        got = np.array([pos[n] for n in rig.names]) / 100.0  # centimetres
        assert np.abs(got - ref[f]).max() < 1e-3, f
    text = path.read_text()
    assert "CHANNELS 3 Zrotation Xrotation Yrotation" in text and f"Frames: {T}" in text
    # Metres give the same motion at 1/100 the numbers.
    write_bvh(rig, tmp_path / "m.bvh", units="m")
    root_m = bvhio.readAsHierarchy(str(tmp_path / "m.bvh"))
    root_m.loadPose(3)
    pos = {j.Name: np.array(j.PositionWorld) for j, _, _ in root_m.layout()}
    assert np.abs(np.array([pos[n] for n in rig.names]) - ref[3]).max() < 1e-5


def test_bvh_in_blender_and_back(tmp_path, rig):
    path = tmp_path / "a.bvh"
    write_bvh(rig, path)
    z = blender_read(path, tmp_path / "b.npz", "1,4,8", "--reexport", str(tmp_path / "blender.bvh"))
    assert int(z["frame_start"]) == 1 and int(z["frame_end"]) == T  # Blender counts from 1
    assert abs(float(z["fps"]) - 30.0) < 1e-3
    names = list(z["names"])
    assert sorted(names) == sorted(rig.names)
    idx = [names.index(n) for n in rig.names]
    ref = rig.joint_positions()
    for i, f in enumerate([0, 3, 7]):
        assert np.abs(z["heads"][i][idx] - ref[f]).max() < 2e-3
    # Blender's own BVH export (in Blender's Z-up axes), read by the independent parser, still
    # has our motion.
    bvhio = pytest.importorskip("bvhio")
    back = bvhio.readAsHierarchy(str(tmp_path / "blender.bvh"))
    for f in (0, 5):
        back.loadPose(f)
        pos = {j.Name: np.array(j.PositionWorld) for j, _, _ in back.layout()}
        got = np.array([pos[n] for n in rig.names]) / 100.0 @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])
        assert np.abs(got - ref[f]).max() < 2e-3


def test_bvh_reread_by_lift3d_mocap_reader(tmp_path, rig):
    """Our own BVH reader (lift3d.mocap, written for CMU files) reads the files we write and
    the one Blender writes back from them."""
    from lift3d.mocap.bvh import read_bvh

    path = tmp_path / "a.bvh"
    write_bvh(rig, path)
    m = read_bvh(path, scale=0.01, up="y")
    assert m.fps == pytest.approx(30.0) and m.num_frames == T
    got = np.stack([m.joint(n) for n in rig.names], 1)
    assert np.abs(got - rig.joint_positions()).max() < 1e-5
    blender_read(path, tmp_path / "b.npz", "1", "--reexport", str(tmp_path / "blender.bvh"))
    back = read_bvh(tmp_path / "blender.bvh", scale=0.01, up="z")  # Blender writes Z up
    got = np.stack([back.joint(n) for n in rig.names], 1)
    assert back.num_frames == T and np.abs(got - rig.joint_positions()).max() < 2e-3


def test_bvh_write_is_atomic(tmp_path, rig):
    bad = Rig(names=["bön"] + rig.names[1:], parents=rig.parents, rest_joints=rig.rest_joints,
              rotations=rig.rotations, root_positions=rig.root_positions, fps=30.0)
    with pytest.raises(UnicodeEncodeError):
        write_bvh(bad, tmp_path / "x.bvh")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["ply", "obj"])
def test_mesh_files_reread_by_open3d(tmp_path, fit, anny, fmt):
    import open3d as o3d

    folder = export_fit(fit, tmp_path / "meshes", fmt, stride=3)
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"frame_{t:06d}.{fmt}" for t in (0, 3, 6)]
    verts = fit.vertices(model=anny)
    m = o3d.io.read_triangle_mesh(str(files[1]))
    tris = np.asarray(m.triangles)
    assert len(np.asarray(m.vertices)) == verts.shape[1] and tris.shape == tuple(anny.faces.shape)
    # open3d renumbers OBJ vertices in order of first use, so compare the triangles' corners.
    corners = np.asarray(m.vertices)[tris]
    assert np.abs(corners - verts[3][anny.faces.numpy()]).max() < 1e-5


def test_mesh_npz_round_trip(tmp_path, fit, anny):
    export_fit(fit, tmp_path / "seq.npz")
    verts, faces, fps = load_mesh_npz(tmp_path / "seq.npz")
    assert fps == 30.0 and np.array_equal(faces, anny.faces.numpy())
    assert np.abs(verts - fit.vertices(model=anny)).max() < 6e-5  # 0.1 mm steps


def test_export_command(tmp_path, fit, capsys):
    from lift3d.cli import main

    fit.save(tmp_path / "fit.npz")
    assert main(["export", str(tmp_path / "fit.npz"), "--format", "bvh", "--naming", "unity", "-q"]) == 0
    assert "JOINT LeftUpperArm" in (tmp_path / "fit.bvh").read_text()
    assert main(["export", str(tmp_path / "fit.npz"), "-o", str(tmp_path / "walk.bvh"), "--units", "m"]) == 0
    assert (tmp_path / "walk.bvh").is_file()
    # Bad input: one line on stderr, status 1, no output file.
    (tmp_path / "broken.npz").write_bytes((tmp_path / "fit.npz").read_bytes()[:200])
    capsys.readouterr()
    assert main(["export", str(tmp_path / "broken.npz"), "--format", "bvh"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lift3d: error:")
    assert not (tmp_path / "broken.bvh").exists()
    assert main(["export", str(tmp_path / "fit.npz"), "--person", "3", "--format", "bvh"]) == 1
    assert main(["export", str(tmp_path / "fit.npz")]) == 1  # no format, no -o


def test_export_refuses_non_finite_fits(tmp_path, fit):
    bad = fit.subset(slice(None))
    bad.transl = bad.transl.copy()
    bad.transl[2, 0, 1] = np.nan
    with pytest.raises(lift3d.io_utils.Lift3DError, match="not finite"):
        bad.export(tmp_path / "x.bvh")
    assert not (tmp_path / "x.bvh").exists()
