"""FBX export, read back by independent readers: Blender's FBX importer (bpy, run in a
subprocess by tests/blender_read.py) and assimp (the `assimp` command line tool)."""
import importlib.util
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import roma
import torch
from scipy.spatial.transform import Rotation

import lift3d
from lift3d.export import export_axes, rig_from_fit
from lift3d.export.fbx import euler_xyz, write_fbx

ROOT = Path(__file__).resolve().parents[1]
T = 10
FPS = 30.0
# FBX time 0 lands on Blender frame 1 (the importer's default animation offset), so Blender
# frames 1, 4, 10 are the rig's frames 0, 3, 9.
BLENDER_FRAMES = "1,4,10"
RIG_FRAMES = [0, 3, 9]
MM = 1e-3


def smooth_fit(model, seed: int = 0) -> lift3d.BodyFit:
    """A world-frame fit in which every joint (fingers and toes too) swings smoothly, with a
    random body shape and a wandering, turning root."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None, None, None] / FPS
    freq = rng.uniform(0.5, 2.0, (1, 1, model.num_joints, 3))
    phase = rng.uniform(0.0, 2 * np.pi, (1, 1, model.num_joints, 3))
    rotvec = 0.6 * np.sin(2 * np.pi * freq * t + phase)
    rotvec[:, :, 0, 1] += np.linspace(0.0, 3.0, T)[:, None]  # the whole body turns ~170 degrees
    transl = np.cumsum(0.05 * rng.standard_normal((T, 1, 3)), axis=0)
    return lift3d.BodyFit("anny", roma.rotvec_to_rotmat(torch.tensor(rotvec)).numpy(),
                          0.3 * rng.standard_normal((1, model.num_shape)), transl, FPS, frame="world")


@pytest.fixture(scope="module")
def scene(anny, tmp_path_factory):
    fit = smooth_fit(anny)
    rig = rig_from_fit(fit, model=anny)
    folder = tmp_path_factory.mktemp("fbx")
    write_fbx(rig, folder / "body.fbx")
    return SimpleNamespace(fit=fit, rig=rig, folder=folder, path=folder / "body.fbx",
                           vertices=fit.vertices(model=anny) @ export_axes(fit).T)


def blender_read(path: Path, out: Path, *extra: str) -> dict:
    if importlib.util.find_spec("bpy") is None:
        pytest.skip("Blender's Python module (bpy) is not installed: pip install '.[test]'")
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "blender_read.py"), str(path), str(out),
                        "--frames", BLENDER_FRAMES, *extra], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"Blender could not read {path.name}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return dict(np.load(out))


def assimp(*args: str) -> str:
    exe = shutil.which("assimp")
    if exe is None:
        pytest.skip("the assimp command line tool is absent (Debian/Ubuntu: apt install assimp-utils)")
    r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout


def assimp_info(path: Path) -> dict[str, int]:
    """The counts `assimp info` prints ("Meshes: 1", "Bones: 103", ...)."""
    out = assimp("info", str(path))
    return {k: int(v) for k, v in re.findall(r"^([A-Za-z ]+):\s+(\d+)\s*$", out, re.M)}


def assert_close(a: np.ndarray, b: np.ndarray, tol: float, what: str) -> None:
    err = np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1)
    assert err.max() < tol, f"{what}: max error {err.max() * 1000:.2f} mm"


def test_blender_reads_the_skinned_animation(scene, tmp_path):
    rig = scene.rig
    z = blender_read(scene.path, tmp_path / "b.npz", "--vertices")
    assert list(z["names"]) == rig.names
    assert (z["frame_start"], z["frame_end"]) == (1, T) and z["fps"] == pytest.approx(FPS)
    # Blender's bone heads are the joints, its evaluated mesh the body model's own mesh.
    assert_close(z["heads"], rig.joint_positions()[RIG_FRAMES], MM, "bone heads")
    assert z["vertex_count"] == len(rig.bind_vertices)
    assert_close(z["vertices"], scene.vertices[RIG_FRAMES], 2 * MM, "skinned mesh")
    assert_close(z["vertices"], rig.skinned_vertices(RIG_FRAMES), 0.1 * MM, "skinned mesh vs rig")


def test_assimp_reads_mesh_skin_and_animation(scene, tmp_path):
    rig = scene.rig
    info = assimp_info(scene.path)
    influencing = np.unique(rig.skin_joints[rig.skin_weights > 0])
    assert info["Meshes"] == 1 and info["Vertices"] == len(rig.bind_vertices)
    assert info["Faces"] == len(rig.faces)
    assert info["Bones"] == len(influencing)  # one cluster per bone that moves vertices
    assert info["Animations"] == 1 and info["Animation Channels"] == rig.num_joints

    # The animation itself, from assimp's XML dump: duration, and every bone's keys (assimp
    # turns FBX's Euler curves into quaternions itself, so this checks the angle convention).
    assimp("dump", str(scene.path), str(tmp_path / "dump.xml"))
    text = (tmp_path / "dump.xml").read_text()
    anim = ET.fromstring(text[text.index("<AnimationList"):text.index("</AnimationList>") + 16])[0]
    assert float(anim.get("duration")) / float(anim.get("tick_cnt")) == pytest.approx((T - 1) / FPS)
    channels = {c.get("node"): c for c in anim.iter("NodeAnim")}
    assert sorted(channels) == sorted(rig.names)
    for j, name in enumerate(rig.names):
        quats = np.array([k.text.split() for k in channels[name].iter("RotationKey")], float)  # x y z w
        assert len(quats) == T
        want = Rotation.from_matrix(rig.rotations[:, j]).as_quat()
        assert np.abs(np.abs((quats * want).sum(-1)) - 1).max() < 1e-4, name
    root = channels[rig.names[0]]
    positions = np.array([k.text.split() for k in root.iter("PositionKey")], float) / 100.0  # cm
    assert_close(positions, rig.root_positions, 0.1 * MM, "root positions")


def test_blender_round_trip(scene, tmp_path):
    # lift3d FBX -> Blender -> Blender's own FBX exporter -> Blender again: the same motion.
    again = tmp_path / "blender.fbx"
    blender_read(scene.path, tmp_path / "first.npz", "--reexport", str(again))
    z = blender_read(again, tmp_path / "second.npz", "--vertices")
    assert list(z["names"]) == scene.rig.names
    assert (z["frame_start"], z["frame_end"]) == (1, T)
    assert_close(z["heads"], scene.rig.joint_positions()[RIG_FRAMES], MM, "bone heads after round trip")
    assert_close(z["vertices"], scene.vertices[RIG_FRAMES], 2 * MM, "mesh after round trip")


def test_metres_and_centimetres_agree(scene, tmp_path):
    path = tmp_path / "metres.fbx"
    write_fbx(scene.rig, path, units="m")
    assert path.stat().st_size > 0
    z = blender_read(path, tmp_path / "m.npz", "--vertices")
    assert_close(z["heads"], scene.rig.joint_positions()[RIG_FRAMES], MM, "bone heads (metres)")
    assert_close(z["vertices"], scene.vertices[RIG_FRAMES], 2 * MM, "mesh (metres)")


def test_skeleton_only_at_a_custom_frame_rate(scene, anny, tmp_path):
    # No mesh, Mixamo names ("mixamorig:Hips"), and a rate FBX has no TimeMode for (15 fps:
    # stored as CustomFrameRate). Blender's importer places keys at its scene's integer rate,
    # so a fractional rate such as 12.5 would put them between frames in Blender.
    rig = replace(rig_from_fit(scene.fit, naming="mixamo", mesh=False, model=anny), fps=15.0)
    path = tmp_path / "skeleton.fbx"
    write_fbx(rig, path, mesh=False)
    z = blender_read(path, tmp_path / "s.npz")
    assert list(z["names"]) == rig.names and "mixamorig:Hips" in rig.names
    assert z["vertex_count"] == 0 and z["fps"] == pytest.approx(15.0)
    assert (z["frame_start"], z["frame_end"]) == (1, T)
    assert_close(z["heads"], rig.joint_positions()[RIG_FRAMES], MM, "bone heads (skeleton only)")
    info = assimp_info(path)
    assert info["Meshes"] == 0 and info["Animations"] == 1 and info["Animation Channels"] == rig.num_joints


def test_invalid_requests_write_nothing(scene, anny, tmp_path):
    path = tmp_path / "x.fbx"
    with pytest.raises(ValueError, match="units"):
        write_fbx(scene.rig, path, units="mm")
    with pytest.raises(ValueError, match="no mesh"):
        write_fbx(rig_from_fit(scene.fit, mesh=False, model=anny), path)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_the_previous_file(scene, tmp_path, monkeypatch):
    path = tmp_path / "body.fbx"
    path.write_bytes(b"previous")

    def half_then_fail(self, data):  # the disk fills up half way through
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        write_fbx(scene.rig, path)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["body.fbx"]  # no temporary file left


def _axis_rotation(axis: int, degrees: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations about x (0), y (1) or z (2), written out by hand."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, k = (axis + 1) % 3, (axis + 2) % 3  # the plane turned: y-z, z-x or x-y
    R = np.zeros((len(degrees), 3, 3))
    R[:, axis, axis] = 1.0
    R[:, i, i], R[:, k, k] = c, c
    R[:, i, k], R[:, k, i] = -s, s
    return R


def test_euler_angles_follow_fbx_xyz_order_continuously():
    # Two turns about z, a tilt about y that passes 90 degrees (where the canonical angles
    # jump to their twin triple), a wobble about x.
    t = np.linspace(0.0, 1.0, 200)
    R = _axis_rotation(2, 720 * t) @ _axis_rotation(1, 160 * t) @ _axis_rotation(0, 30 * np.sin(6 * t))
    e = euler_xyz(R[:, None])[:, 0]
    rebuilt = _axis_rotation(2, e[:, 2]) @ _axis_rotation(1, e[:, 1]) @ _axis_rotation(0, e[:, 0])
    assert np.abs(rebuilt - R).max() < 1e-9  # eEulerXYZ: R = Rz @ Ry @ Rx
    assert np.abs(np.diff(e, axis=0)).max() < 10.0  # no jumps between neighbouring keys
    assert e[-1, 2] - e[0, 2] == pytest.approx(720.0, abs=1e-6)  # turns are kept, not wrapped
