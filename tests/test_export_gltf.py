"""glTF export: independent readers (Khronos validator, Blender, pygltflib) see the fitted body.

Every check reads the written file with code that is not ours: the Khronos validator for the
spec, Blender's importer (in a subprocess, ``tests/blender_read.py``) for what an animation
tool shows, and pygltflib + numpy forward kinematics for the raw numbers.
"""
import base64
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import roma
import torch

pygltflib = pytest.importorskip("pygltflib", reason="the independent glTF parser pygltflib is not installed: pip install '.[test]'")

import body_models
import lift3d
from lift3d.export import export_axes, rig_from_fit
from lift3d.export.gltf import write_gltf

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = ROOT / "tools" / "gltf_validator"
FRAMES = [0, 3, 7]
T = 8


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A random Anny fit, its rig, and the rig written as .glb, .gltf and skeleton-only .glb."""
    rng = np.random.default_rng(3)
    model = body_models.load("anny")
    rotvec = torch.tensor(0.3 * rng.standard_normal((T, 1, model.num_joints, 3)))
    pose = roma.rotvec_to_rotmat(rotvec).numpy()
    fit = lift3d.BodyFit("anny", pose, 0.3 * rng.standard_normal((1, 6)),
                         rng.standard_normal((T, 1, 3)), 30.0)
    rig = rig_from_fit(fit, naming="mixamo", model=model)
    d = tmp_path_factory.mktemp("gltf")
    files = {"glb": d / "body.glb", "gltf": d / "body.gltf", "skeleton": d / "skeleton.glb"}
    write_gltf(rig, files["glb"])
    write_gltf(rig, files["gltf"])
    write_gltf(rig, files["skeleton"], mesh=False)
    # The rig is the fit turned upright (a camera-frame fit); so must the reference mesh be.
    verts = fit.vertices(model=model)[FRAMES] @ export_axes(fit).T
    return dict(rig=rig, files=files, dir=d, verts=verts, joints=rig.joint_positions())


# --- pygltflib + numpy: an independent decoder and forward kinematics ---------------------

_NP = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32,
       5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def _load(path: Path) -> tuple[pygltflib.GLTF2, bytes]:
    g = pygltflib.GLTF2().load(str(path))
    if g.buffers[0].uri:  # .gltf with an embedded data: URI
        return g, base64.b64decode(g.buffers[0].uri.split(",", 1)[1])
    return g, g.binary_blob()


def _accessor(g: pygltflib.GLTF2, blob: bytes, i: int) -> np.ndarray:
    acc = g.accessors[i]
    view = g.bufferViews[acc.bufferView]
    dt, n = np.dtype(_NP[acc.componentType]), _WIDTH[acc.type]
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    if view.byteStride:  # interleaved: one row per element
        out = np.stack([np.frombuffer(blob, dt, n, start + k * view.byteStride)
                        for k in range(acc.count)])
    else:
        out = np.frombuffer(blob, dt, acc.count * n, start).reshape(acc.count, n)
    if acc.normalized:
        out = out / np.iinfo(dt).max
    return out


def _quat_matrix(q: np.ndarray) -> np.ndarray:
    """glTF (x, y, z, w) -> 3x3, written out independently of the writer's inverse."""
    x, y, z, w = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _world_at(g: pygltflib.GLTF2, blob: bytes, time: float) -> dict[str, np.ndarray]:
    """World 4x4 of every named node at ``time`` (animation sampled with LINEAR interpolation)."""
    trs = {i: [np.array(n.translation or [0.0] * 3), np.array(n.rotation or [0, 0, 0, 1.0]),
               np.array(n.scale or [1.0] * 3)] for i, n in enumerate(g.nodes)}
    for ch in g.animations[0].channels:
        s = g.animations[0].samplers[ch.sampler]
        t, v = _accessor(g, blob, s.input)[:, 0], _accessor(g, blob, s.output)
        slot = {"translation": 0, "rotation": 1, "scale": 2}[ch.target.path]
        trs[ch.target.node][slot] = np.array([np.interp(time, t, col) for col in v.T])
    world = {}

    def visit(i: int, parent: np.ndarray) -> None:
        local = np.eye(4)
        if g.nodes[i].matrix:
            local = np.array(g.nodes[i].matrix).reshape(4, 4).T
        else:
            local[:3, :3] = _quat_matrix(trs[i][1]) * trs[i][2]
            local[:3, 3] = trs[i][0]
        world[i] = parent @ local
        for c in g.nodes[i].children or []:
            visit(c, world[i])

    for r in g.scenes[g.scene or 0].nodes:
        visit(r, np.eye(4))
    return {g.nodes[i].name: m for i, m in world.items()}


def _joints_at(g, blob, names: list[str], time: float) -> np.ndarray:
    world = _world_at(g, blob, time)
    return np.array([world[n][:3, 3] for n in names])


@pytest.mark.parametrize("kind", ["glb", "gltf"])
def test_pygltflib_reads_the_rig(case, kind):
    rig = case["rig"]
    g, blob = _load(case["files"][kind])
    J = rig.num_joints
    assert g.asset.generator == "lift3d" and g.asset.extras["fps"] == 30.0
    assert [g.nodes[j].name for j in g.skins[0].joints] == rig.names
    assert len([n for n in g.nodes if n.mesh is None]) == J
    ibm = _accessor(g, blob, g.skins[0].inverseBindMatrices).reshape(J, 4, 4).transpose(0, 2, 1)
    np.testing.assert_allclose(ibm, rig.inverse_bind, atol=1e-6)
    anim = g.animations[0]
    assert len(anim.samplers) == J + 1 and len(anim.channels) == J + 1
    times = _accessor(g, blob, anim.samplers[0].input)[:, 0]
    np.testing.assert_allclose(times, np.arange(T) / 30.0, atol=1e-7)
    acc = g.accessors[anim.samplers[0].input]
    assert acc.min == [0.0] and acc.max[0] == pytest.approx((T - 1) / 30.0)
    for f in FRAMES:
        got = _joints_at(g, blob, rig.names, f / 30.0)
        np.testing.assert_allclose(got, case["joints"][f], atol=1e-3)
    # The mesh: bind vertices, weights summing to one, skinning as the rig defines it.
    prim = g.meshes[0].primitives[0]
    pos = _accessor(g, blob, prim.attributes.POSITION)
    np.testing.assert_allclose(pos, rig.bind_vertices, atol=1e-6)
    w = np.concatenate([_accessor(g, blob, prim.attributes.WEIGHTS_0),
                        _accessor(g, blob, prim.attributes.WEIGHTS_1)], axis=1)
    np.testing.assert_allclose(w.astype(np.float64).sum(axis=1), 1.0, atol=1e-6)
    faces = _accessor(g, blob, prim.indices).reshape(-1, 3)
    np.testing.assert_array_equal(faces, rig.faces)
    normals = _accessor(g, blob, prim.attributes.NORMAL)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)


def test_skeleton_only_file(case):
    """Without a mesh the skin (kept so importers build an armature) binds the rest pose."""
    rig = case["rig"]
    g, blob = _load(case["files"]["skeleton"])
    assert not g.meshes and len(g.nodes) == rig.num_joints
    ibm = _accessor(g, blob, g.skins[0].inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    np.testing.assert_allclose(ibm[:, :3, :3], np.broadcast_to(np.eye(3), ibm[:, :3, :3].shape))
    np.testing.assert_allclose(ibm[:, :3, 3], -rig.rest_joints, atol=1e-6)
    for f in FRAMES:
        np.testing.assert_allclose(_joints_at(g, blob, rig.names, f / 30.0), case["joints"][f],
                                   atol=1e-3)


def test_quaternions_stay_on_one_hemisphere(case):
    """Neighbouring keys never flip sign, so LINEAR slerp never takes the long way round."""
    g, blob = _load(case["files"]["glb"])
    for s in g.animations[0].samplers[:-1]:
        q = _accessor(g, blob, s.output)
        assert np.all(np.sum(q[1:] * q[:-1], axis=1) > 0)
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-6)


def test_quaternion_conversion_is_continuous():
    """Matrices spinning twice round an axis, plus random ones: same rotations as roma's
    conversion (up to sign), and no sign flip between neighbouring keys."""
    from lift3d.export.gltf import _quaternions

    angles = np.linspace(0.0, 4 * np.pi, 97)
    axis = np.array([0.3, -0.8, 0.52]) / np.linalg.norm([0.3, -0.8, 0.52])
    R = roma.rotvec_to_rotmat(torch.tensor(angles[:, None] * axis)).numpy()
    R = np.concatenate([R, roma.random_rotmat(50, dtype=torch.float64).numpy()])[:, None]
    q = _quaternions(R)[:, 0]
    ref = roma.rotmat_to_unitquat(torch.tensor(R[:, 0])).numpy()  # also (x, y, z, w)
    np.testing.assert_allclose(np.abs(np.sum(q * ref, axis=1)), 1.0, atol=1e-9)
    assert np.all(np.sum(q[1:97] * q[:96], axis=1) > 0)


# --- Khronos validator -------------------------------------------------------------------

def _validate(path: Path) -> dict:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the Khronos glTF validator needs it")
    if not (VALIDATOR / "node_modules" / "gltf-validator").is_dir():
        pytest.skip("tools/gltf_validator/node_modules is absent: run "
                    "'npm ci --prefix tools/gltf_validator'")
    out = subprocess.run(["node", str(VALIDATOR / "validate.js"), str(path)], capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("kind", ["glb", "gltf", "skeleton"])
def test_khronos_validator(case, kind):
    report = _validate(case["files"][kind])
    issues = report["issues"]
    messages = json.dumps(issues["messages"], indent=1)
    assert issues["numErrors"] == 0, messages
    assert issues["numWarnings"] == 0, messages
    # The skeleton-only file keeps its skin (importers build the armature from it), which the
    # validator reports as possibly unused; nothing else is expected.
    infos = {m["code"] for m in issues["messages"] if m["severity"] == 2}
    assert infos <= ({"UNUSED_OBJECT"} if kind == "skeleton" else set()), messages


# --- Blender -----------------------------------------------------------------------------

def _blender(path: Path, out: Path, *args: str) -> dict:
    if importlib.util.find_spec("bpy") is None:  # not imported here: Blender runs in a subprocess
        pytest.skip("Blender's Python module (bpy) is not installed: pip install '.[test]'")
    cmd = [sys.executable, str(ROOT / "tests" / "blender_read.py"), str(path), str(out),
           "--frames", ",".join(map(str, FRAMES)), *args]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def blender(case):
    d = case["dir"]
    return _blender(case["files"]["glb"], d / "blender.npz", "--vertices",
                    "--reexport", str(d / "blender.glb"))


def test_blender_import(case, blender):
    rig = case["rig"]
    assert list(blender["names"]) == rig.names
    assert (int(blender["frame_start"]), int(blender["frame_end"])) == (0, T - 1)
    assert float(blender["fps"]) == 30.0
    np.testing.assert_allclose(blender["heads"], case["joints"][FRAMES], atol=1e-3)
    assert int(blender["vertex_count"]) == len(rig.bind_vertices)
    # Blender's skinning of the file's mesh vs the body model's own mesh (the rig keeps 8 of
    # Anny's up to 9 influences per vertex: ~0.2 mm) and vs the rig's skinning (float32 only).
    err = np.linalg.norm(blender["vertices"] - case["verts"], axis=-1)
    assert err.max() < 1e-3, err.max()
    err = np.linalg.norm(blender["vertices"] - rig.skinned_vertices(FRAMES), axis=-1)
    assert err.max() < 1e-4, err.max()


def test_blender_reads_skeleton_only(case):
    got = _blender(case["files"]["skeleton"], case["dir"] / "skeleton.npz")
    assert int(got["vertex_count"]) == 0
    np.testing.assert_allclose(got["heads"], case["joints"][FRAMES], atol=1e-3)


def test_blender_round_trip(case, blender):
    """Blender's own GLB export of what it imported still puts every joint in place."""
    rig, path = case["rig"], case["dir"] / "blender.glb"
    g, blob = _load(path)
    times = _accessor(g, blob, g.animations[0].samplers[0].input)[:, 0]
    assert times.max() == pytest.approx((T - 1) / 30.0, abs=1e-4)
    for f in FRAMES:
        got = _joints_at(g, blob, rig.names, f / 30.0)
        np.testing.assert_allclose(got, case["joints"][f], atol=1e-3)
    again = _blender(path, case["dir"] / "again.npz", "--fps", "30")
    assert list(again["names"]) == rig.names
    np.testing.assert_allclose(again["heads"], case["joints"][FRAMES], atol=1e-3)


# --- atomic write ------------------------------------------------------------------------

def _crash_mid_write(monkeypatch) -> None:
    """Make the next file write put half its bytes on disk, then die like a Ctrl-C would."""
    def crash(self, data):
        with open(self, "wb") as f:
            f.write(data[:len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", crash)


@pytest.mark.parametrize("name", ["body.glb", "body.gltf"])
def test_interrupted_write_leaves_no_file(case, tmp_path, monkeypatch, name):
    target = tmp_path / name
    with monkeypatch.context() as m:
        _crash_mid_write(m)
        with pytest.raises(KeyboardInterrupt):
            write_gltf(case["rig"], target)
    assert list(tmp_path.iterdir()) == []
    # An existing file survives a failed overwrite untouched.
    write_gltf(case["rig"], target)
    before = target.read_bytes()
    with monkeypatch.context() as m:
        _crash_mid_write(m)
        with pytest.raises(KeyboardInterrupt):
            write_gltf(case["rig"], target, mesh=False)
    assert target.read_bytes() == before and list(tmp_path.iterdir()) == [target]


def test_invalid_rig_is_refused_before_writing(case, tmp_path):
    rig = case["rig"]
    bad = [type(rig)(**{**rig.__dict__, "fps": 0.0}),
           type(rig)(**{**rig.__dict__, "root_positions": rig.root_positions * np.nan}),
           type(rig)(**{**rig.__dict__, "faces": rig.faces + len(rig.bind_vertices)})]
    for b in bad:
        with pytest.raises(ValueError):
            write_gltf(b, tmp_path / "bad.glb")
    assert list(tmp_path.iterdir()) == []
