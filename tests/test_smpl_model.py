"""SMPL-family body models on tiny synthetic model files (the real ones are licensed).

The synthetic files follow the real layout (smplx folder names, array keys and shapes, SMPL's
6,890 / SMPL-X's 10,475 vertex topology sizes, chumpy objects and a scipy CSC J_regressor in the
pkl) so that loading, the restricted unpickler and the kinematics are exercised end to end.
"""
from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
import roma
import scipy.sparse
import torch

import body_models
from body_models.base import BodyModelError
from body_models.smpl import KINDS, SMPLFamily, load_model_arrays, load_smpl

NUM_VERTS = {"smpl": 6890, "smplh": 6890, "smplx": 10475}

# Rough SMPL rest joints (metres; Y up, facing +Z, the body's left towards +X).
BODY_JOINTS = {
    "pelvis": (0.0, 0.93, 0.0), "left_hip": (0.06, 0.84, 0.0), "right_hip": (-0.06, 0.84, 0.0),
    "spine1": (0.0, 1.04, 0.0), "left_knee": (0.10, 0.47, 0.0), "right_knee": (-0.10, 0.47, 0.0),
    "spine2": (0.0, 1.17, 0.0),
    "left_ankle": (0.09, 0.08, -0.02), "right_ankle": (-0.09, 0.08, -0.02),
    "spine3": (0.0, 1.22, 0.0), "left_foot": (0.11, 0.02, 0.10), "right_foot": (-0.11, 0.02, 0.10),
    "neck": (0.0, 1.45, 0.0), "left_collar": (0.07, 1.38, 0.0), "right_collar": (-0.07, 1.38, 0.0),
    "head": (0.0, 1.52, 0.02),
    "left_shoulder": (0.17, 1.40, 0.0), "right_shoulder": (-0.17, 1.40, 0.0),
    "left_elbow": (0.43, 1.40, 0.0), "right_elbow": (-0.43, 1.40, 0.0),
    "left_wrist": (0.68, 1.40, 0.0), "right_wrist": (-0.68, 1.40, 0.0),
}
BODY_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]


def _skeleton(kind: str) -> tuple[list[str], list[int], np.ndarray]:
    """Joint names, parents and rest positions (J, 3) with the real SMPL-family tree."""
    names = list(KINDS[kind].joint_names)
    parents, pos = [], []
    for i, n in enumerate(names):
        if n in BODY_JOINTS:
            parents.append(BODY_PARENTS[i])
            pos.append(BODY_JOINTS[n])
            continue
        side = 1.0 if n.startswith("left") else -1.0
        wrist = names.index("left_wrist" if side > 0 else "right_wrist")
        if n in ("left_hand", "right_hand"):
            parents.append(wrist)
            pos.append((side * 0.76, 1.40, 0.0))
        elif n == "jaw" or n.endswith("_smplhf"):
            parents.append(names.index("head"))
            pos.append((0.0 if n == "jaw" else side * 0.03, 1.55 if n != "jaw" else 1.48, 0.08))
        else:  # finger segment, e.g. left_index2: chain from the wrist
            finger, seg = n.split("_")[1][:-1], int(n[-1])
            parents.append(wrist if seg == 1 else names.index(n[:-1] + str(seg - 1)))
            k = ["thumb", "index", "middle", "ring", "pinky"].index(finger)
            pos.append((side * (0.72 + 0.025 * seg), 1.40, 0.04 - 0.02 * k))
    return names, parents, np.asarray(pos)


def make_model_data(kind: str = "smpl", seed: int = 0) -> dict[str, np.ndarray]:
    """A synthetic model in the smplx file layout; the face/foot keypoint vertices are put
    where the real ones are (nose in front of the head, left ear at +X, heel behind ankle)."""
    rng = np.random.default_rng(seed)
    names, parents, joints = _skeleton(kind)
    V, J = NUM_VERTS[kind], len(names)
    owner = np.arange(V) % J
    v = joints[owner] + 0.03 * rng.standard_normal((V, 3))
    ids = KINDS[kind].vertex_ids
    j = {n: joints[names.index(n)] for n in names}
    placed = {
        "nose": ("head", (0.0, 0.0, 0.10)), "leye": ("head", (0.03, 0.03, 0.08)),
        "reye": ("head", (-0.03, 0.03, 0.08)), "lear": ("head", (0.07, 0.0, 0.0)),
        "rear": ("head", (-0.07, 0.0, 0.0)),
        "LBigToe": ("left_foot", (0.02, -0.02, 0.08)),
        "LSmallToe": ("left_foot", (0.06, -0.02, 0.05)),
        "LHeel": ("left_ankle", (0.0, -0.06, -0.06)),
        "RBigToe": ("right_foot", (-0.02, -0.02, 0.08)),
        "RSmallToe": ("right_foot", (-0.06, -0.02, 0.05)),
        "RHeel": ("right_ankle", (0.0, -0.06, -0.06)),
    }
    for key, (joint, offset) in placed.items():
        v[ids[key]] = j[joint] + np.asarray(offset)
        owner[ids[key]] = names.index(joint)
    weights = np.zeros((V, J))
    weights[np.arange(V), owner] = 0.8
    par = np.asarray(parents)[owner]
    weights[np.arange(V), np.where(par < 0, owner, par)] += 0.2
    J_regressor = np.zeros((J, V))
    J_regressor[owner, np.arange(V)] = 1.0
    J_regressor /= J_regressor.sum(1, keepdims=True)
    data = {
        "v_template": v,
        "shapedirs": 0.01 * rng.standard_normal((V, 3, 20 if kind == "smplx" else 10)),
        "posedirs": (1e-3 * rng.standard_normal((V, 3, 9 * (J - 1)))).astype(np.float32),
        "J_regressor": J_regressor,
        "weights": weights,
        "kintree_table": np.stack([np.asarray(parents) % (2**32), np.arange(J)]).astype(np.int64),
        "f": rng.integers(0, V, (2000, 3)).astype(np.uint32),
    }
    if kind in ("smplh", "smplx"):  # read by smplx's classes (the cross-check), not by lift3d
        for s in "lr":
            data[f"hands_components{s}"] = np.eye(45)
            data[f"hands_mean{s}"] = np.zeros(45)
    if kind == "smplx":
        data["lmk_faces_idx"] = np.arange(51)
        data["lmk_bary_coords"] = np.full((51, 3), 1 / 3)
    return data


class _FakeCh:
    """Pickles like chumpy.ch.Ch: class chumpy.ch.Ch, state = __dict__ with the value in 'x'."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self._dirty_vars = {"x"}
        self._depends_on_deps = {}


class _FakeOp(_FakeCh):
    """A chumpy expression (no 'x'), as under chumpy.ch_ops."""

    def __init__(self, a: _FakeCh) -> None:
        self.a = a


def dump_chumpy_pickle(obj: object, path, protocol: int = 2) -> None:
    """Pickle ``obj`` with _FakeCh/_FakeOp masquerading as chumpy classes, then remove the fake
    modules so that the loader has to resolve them on its own."""
    saved = {n: sys.modules.get(n) for n in ("chumpy", "chumpy.ch", "chumpy.ch_ops")}
    pkg, ch, ops = (types.ModuleType(n) for n in ("chumpy", "chumpy.ch", "chumpy.ch_ops"))
    ch.Ch, ops.add = _FakeCh, _FakeOp
    renames = {_FakeCh: ("chumpy.ch", "Ch"), _FakeOp: ("chumpy.ch_ops", "add")}
    old = {c: (c.__module__, c.__qualname__) for c in renames}
    try:
        sys.modules.update({"chumpy": pkg, "chumpy.ch": ch, "chumpy.ch_ops": ops})
        for c, (m, q) in renames.items():
            c.__module__, c.__qualname__ = m, q
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=protocol)
    finally:
        for c, (m, q) in old.items():
            c.__module__, c.__qualname__ = m, q
        for n, mod in saved.items():
            if mod is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = mod


def write_pkl(data: dict, path) -> None:
    """Mimic a real SMPL pkl: chumpy arrays, a sparse CSC J_regressor, extra keys."""
    d = dict(data)
    for k in ("v_template", "shapedirs", "posedirs", "weights"):
        d[k] = _FakeCh(d[k])
    d["J_regressor"] = scipy.sparse.csc_matrix(d["J_regressor"])
    d["J_regressor_prior"] = scipy.sparse.csr_matrix(data["J_regressor"])
    d["bs_style"], d["bs_type"] = "lbs", "lrotmin"
    d["unused_expression"] = _FakeOp(_FakeCh(np.zeros(3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    dump_chumpy_pickle(d, path)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A models folder in the smplx layout: smpl/SMPL_NEUTRAL.{npz,pkl}, smplh/..., smplx/..."""
    root = tmp_path_factory.mktemp("models")
    for kind in ("smpl", "smplh", "smplx"):
        data = make_model_data(kind)
        (root / kind).mkdir()
        np.savez(root / kind / f"{KINDS[kind].prefix}_NEUTRAL.npz", **data)
    write_pkl(make_model_data("smpl"), root / "pkl" / "smpl" / "SMPL_NEUTRAL.pkl")
    return root


@pytest.fixture(scope="module")
def smpl(models_dir):
    return SMPLFamily("smpl", model_path=models_dir)


def random_pose(model, B: int, scale: float = 0.4, seed: int = 0, requires_grad: bool = False):
    g = torch.Generator().manual_seed(seed)
    rotvec = scale * torch.randn(B, model.num_joints, 3, generator=g)
    rotvec.requires_grad_(requires_grad)
    return rotvec, roma.rotvec_to_rotmat(rotvec)


def test_attributes_and_shapes(smpl):
    assert smpl.name == "smpl" and smpl.num_joints == 24 and smpl.num_shape == 10
    assert smpl.joint_names[:3] == ["pelvis", "left_hip", "right_hip"]
    assert smpl.joint_names[-2:] == ["left_hand", "right_hand"]
    assert smpl.parents[0] == -1 and smpl.parents[18] == 16  # left_elbow <- left_shoulder
    assert smpl.body_joints == list(range(22))
    assert smpl.faces.dtype == torch.long and smpl.faces.shape == (2000, 3)
    assert smpl.skin_weights().shape == (6890, 24)
    assert len(smpl.keypoint_names) == 23 and "left_heel" in smpl.keypoint_names
    assert smpl.state_dict() == {}  # licensed arrays never end up in a checkpoint
    _, pose = random_pose(smpl, 3)
    out = smpl(pose, torch.zeros(3, 10), torch.zeros(3, 3))
    assert out.vertices.shape == (3, 6890, 3)
    assert out.joints.shape == (3, 24, 3)
    assert out.keypoints.shape == (3, 23, 3)


def test_rest_pose_is_template(smpl, models_dir):
    data = make_model_data("smpl")
    out = smpl(smpl.rest_pose(2))
    v = torch.as_tensor(data["v_template"], dtype=torch.float32)
    assert torch.allclose(out.vertices, v.expand(2, -1, -1), atol=1e-6)
    J = torch.as_tensor(data["J_regressor"] @ data["v_template"], dtype=torch.float32)
    assert torch.allclose(out.joints, J.expand(2, -1, -1), atol=1e-6)


def test_keypoint_names_follow_the_vertex_table(smpl):
    """The synthetic file puts the face/foot vertices where SMPL's are: the names must match."""
    kp = smpl(smpl.rest_pose(1)).keypoints[0]
    at = {n: kp[i] for i, n in enumerate(smpl.keypoint_names)}
    head = smpl(smpl.rest_pose(1)).joints[0, smpl.joint_names.index("head")]
    assert at["nose"][2] > head[2] + 0.05                   # nose in front of the head (+Z)
    assert at["left_ear"][0] > 0 > at["right_ear"][0]        # the body's left is +X
    assert at["left_eye"][0] > 0 > at["right_eye"][0]
    assert at["left_heel"][2] < at["left_ankle"][2] < at["left_big_toe"][2]
    assert at["right_heel"][2] < at["right_big_toe"][2] and at["right_big_toe"][0] < 0


def test_elbow_rotation_swings_the_wrist(smpl):
    i_elbow, i_wrist = smpl.joint_names.index("left_elbow"), smpl.joint_names.index("left_wrist")
    R = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.0, 0.9]))
    pose = smpl.rest_pose(1)
    pose[0, i_elbow] = R
    rest, bent = smpl(smpl.rest_pose(1)).joints[0], smpl(pose).joints[0]
    expected = rest[i_elbow] + R @ (rest[i_wrist] - rest[i_elbow])
    assert torch.allclose(bent[i_wrist], expected, atol=1e-6)
    assert torch.allclose(bent[:i_wrist], rest[:i_wrist])  # nothing upstream moves
    assert torch.allclose(bent[i_elbow], rest[i_elbow])


def test_global_orientation_about_root_then_translation(smpl):
    R = roma.rotvec_to_rotmat(torch.tensor([0.3, -1.2, 0.5]))
    t = torch.tensor([[0.5, -0.2, 3.0]])
    pose = smpl.rest_pose(1)
    pose[0, 0] = R
    rest = smpl(smpl.rest_pose(1))
    out = smpl(pose, transl=t)
    root = rest.joints[:, :1]
    for name in ("vertices", "joints", "keypoints"):
        expected = (getattr(rest, name) - root) @ R.T + root + t[:, None]
        assert torch.allclose(getattr(out, name), expected, atol=1e-5), name


def test_translation_adds(smpl):
    _, pose = random_pose(smpl, 2)
    shape = 0.5 * torch.randn(1, 10)
    t = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 0.5]])
    a, b = smpl(pose, shape), smpl(pose, shape, t)
    assert torch.allclose(b.vertices, a.vertices + t[:, None], atol=1e-6)
    assert torch.allclose(b.joints, a.joints + t[:, None], atol=1e-6)
    assert torch.allclose(b.keypoints, a.keypoints + t[:, None], atol=1e-6)


def test_joints_only_path_matches_full_skinning(smpl):
    _, pose = random_pose(smpl, 3, scale=0.8)
    shape, t = torch.randn(3, 10), torch.randn(3, 3)
    full, fast = smpl(pose, shape, t), smpl(pose, shape, t, vertices=False)
    assert fast.vertices is None
    assert torch.allclose(fast.joints, full.joints, atol=1e-5)
    assert torch.allclose(fast.keypoints, full.keypoints, atol=1e-5)


def test_gradients_reach_pose_and_shape(smpl):
    for vertices in (True, False):
        rotvec, pose = random_pose(smpl, 2, requires_grad=True)
        shape = torch.zeros(2, 10, requires_grad=True)
        out = smpl(pose, shape, vertices=vertices)
        loss = out.keypoints.square().sum() + (out.vertices.square().sum() if vertices else 0)
        g_pose, g_shape = torch.autograd.grad(loss, (rotvec, shape))
        assert torch.isfinite(g_pose).all() and g_pose[:, 1:22].abs().sum() > 0
        assert torch.isfinite(g_shape).all() and g_shape.abs().sum() > 0


def test_matches_smplx_reference(models_dir):
    """Same vertices and joints as smplx's own SMPL class fed the same arrays (axis-angle)."""
    import smplx
    from smplx.utils import Struct

    data = make_model_data("smpl")
    ref = smplx.SMPL(model_path=str(models_dir), data_struct=Struct(**data), batch_size=2)
    ours = SMPLFamily("smpl", model_path=models_dir / "smpl" / "SMPL_NEUTRAL.npz")
    rotvec, pose = random_pose(ours, 2, scale=0.6)
    betas, transl = torch.randn(2, 10), torch.randn(2, 3)
    with torch.no_grad():
        r = ref(betas=betas, global_orient=rotvec[:, 0], body_pose=rotvec[:, 1:].reshape(2, -1),
                transl=transl)
        o = ours(pose, betas, transl)
    assert torch.allclose(o.vertices, r.vertices, atol=1e-5)
    assert torch.allclose(o.joints, r.joints[:, :24], atol=1e-5)


@pytest.mark.parametrize("kind", ["smplh", "smplx"])
def test_smplh_smplx_match_smplx_reference(models_dir, kind):
    import smplx
    from smplx.utils import Struct

    model = SMPLFamily(kind, model_path=models_dir)
    J = {"smplh": 52, "smplx": 55}[kind]
    assert model.num_joints == J and len(model.parents) == J and model.num_shape == 10
    after_body = {"smplx": ["jaw", "left_eye_smplhf", "right_eye_smplhf"],
                  "smplh": ["left_index1", "left_index2", "left_index3"]}[kind]
    assert model.joint_names[22:25] == after_body
    B = 2
    rotvec, pose = random_pose(model, B, scale=0.4)
    betas = torch.randn(B, 10)
    common = dict(num_betas=10, use_pca=False, flat_hand_mean=True, batch_size=B)
    if kind == "smplh":
        ref = smplx.SMPLH(model_path=str(models_dir), data_struct=Struct(**make_model_data(kind)),
                          **common)
        body, hands = rotvec[:, 1:22], rotvec[:, 22:]
        extra = {}
    else:
        ref = smplx.SMPLX(model_path=str(models_dir / "smplx" / "SMPLX_NEUTRAL.npz"), ext="npz",
                          num_expression_coeffs=10, **common)
        body, hands = rotvec[:, 1:22], rotvec[:, 25:]
        extra = dict(jaw_pose=rotvec[:, 22], leye_pose=rotvec[:, 23], reye_pose=rotvec[:, 24],
                     expression=torch.zeros(B, 10))
    with torch.no_grad():
        r = ref(betas=betas, global_orient=rotvec[:, 0], body_pose=body.reshape(B, -1),
                left_hand_pose=hands[:, :15].reshape(B, -1),
                right_hand_pose=hands[:, 15:].reshape(B, -1), transl=torch.zeros(B, 3), **extra)
        o = model(pose, betas)
    assert torch.allclose(o.vertices, r.vertices, atol=1e-5)
    assert torch.allclose(o.joints, r.joints[:, :J], atol=1e-5)
    assert model.keypoints(o, "openpose25")[..., 3].eq(1).all()


def test_pkl_loads_without_chumpy(models_dir, smpl):
    assert "chumpy" not in sys.modules
    model = load_smpl("smpl", models_dir / "pkl")
    assert model.model_file.suffix == ".pkl"
    assert "chumpy" not in sys.modules
    npz = load_model_arrays(models_dir / "smpl" / "SMPL_NEUTRAL.npz")
    pkl = load_model_arrays(model.model_file)
    for k in npz:
        np.testing.assert_allclose(pkl[k], npz[k], err_msg=k)
    _, pose = random_pose(smpl, 2)
    assert torch.allclose(model(pose).vertices, smpl(pose).vertices, atol=1e-6)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_chumpy_stub_for_every_pickle_protocol(tmp_path, protocol):
    """Protocol 0 goes through copyreg._reconstructor and __builtin__.object, 2 through
    _codecs.encode for bytes: the allow-list covers the forms Python 2 and 3 write."""
    x = np.arange(12.0).reshape(4, 3)
    path = tmp_path / "m.pkl"
    data = {k: _FakeCh(x) for k in ("v_template", "shapedirs", "posedirs", "weights")}
    data |= {"J_regressor": scipy.sparse.csc_matrix(x.T), "kintree_table": np.zeros((2, 4)),
             "f": np.zeros((1, 3), np.int64)}
    dump_chumpy_pickle(data, path, protocol=protocol)
    arrays = load_model_arrays(path)
    np.testing.assert_array_equal(arrays["v_template"], x)
    np.testing.assert_array_equal(arrays["J_regressor"], x.T)


class _Evil:
    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvilEval:
    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w')",))


@pytest.mark.parametrize("payload", [_Evil, _EvilEval])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, payload):
    marker = tmp_path / "pwned"
    folder = tmp_path / "models" / "smpl"
    folder.mkdir(parents=True)
    data = make_model_data("smpl")
    data["v_template"] = payload(marker)
    with open(folder / "SMPL_NEUTRAL.pkl", "wb") as f:
        pickle.dump(data, f, protocol=2)
    with pytest.raises(BodyModelError, match="refusing to load"):
        SMPLFamily("smpl", model_path=tmp_path / "models")
    assert not marker.exists()


@pytest.mark.parametrize("raw", [
    b"c_codecs\nencode\n(dS'__defaults__'\n(S'rot13'\ntsb.",  # BUILD on an allowed function
    b"c_codecs\nencode\n(S'x'\nS'rot13'\ntR.",                 # allowed function, bad arguments
    b"cbuiltins\ngetattr\n.",
    b"cnumpy\nload\n.",
])
def test_restricted_unpickler_edge_cases(tmp_path, raw):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(raw)
    with pytest.raises(BodyModelError, match="refusing to load"):
        load_model_arrays(path)


def test_chumpy_expression_without_value_is_refused_clearly(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    data = make_model_data("smpl")
    data["v_template"] = _FakeOp(_FakeCh(data["v_template"]))
    dump_chumpy_pickle(data, path)
    with pytest.raises(BodyModelError, match="chumpy expression"):
        SMPLFamily("smpl", model_path=path)


def test_missing_file_says_where_to_get_and_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LIFT3D_MODELS", str(tmp_path / "nowhere"))
    with pytest.raises(BodyModelError) as e:
        SMPLFamily("smplx")
    msg = str(e.value)
    assert "https://smpl-x.is.tue.mpg.de" in msg
    assert str(tmp_path / "nowhere" / "smplx" / "SMPLX_NEUTRAL.npz") in msg
    assert "LIFT3D_MODELS" in msg and "model_path" in msg

    with pytest.raises(BodyModelError) as e:
        SMPLFamily("smpl", model_path=tmp_path / "models", gender="female")
    assert "https://smpl.is.tue.mpg.de" in str(e.value)
    assert str(tmp_path / "models" / "smpl" / "SMPL_FEMALE.pkl") in str(e.value)

    with pytest.raises(BodyModelError, match="mano.is.tue.mpg.de") as e:
        SMPLFamily("smplh", model_path=tmp_path / "x" / "SMPLH_MALE.pkl")
    assert str(tmp_path / "x" / "SMPLH_MALE.pkl") in str(e.value)


def test_default_folder_and_downloaded_names(tmp_path, monkeypatch, models_dir):
    """Found through $LIFT3D_MODELS, under the file name the SMPL website gives it."""
    (tmp_path / "smpl").mkdir()
    src = models_dir / "pkl" / "smpl" / "SMPL_NEUTRAL.pkl"
    (tmp_path / "smpl" / "basicModel_f_lbs_10_207_0_v1.0.0.pkl").write_bytes(src.read_bytes())
    monkeypatch.setenv("LIFT3D_MODELS", str(tmp_path))
    found = SMPLFamily("smpl", gender="female").model_file
    assert found.name == "basicModel_f_lbs_10_207_0_v1.0.0.pkl"


def test_unreadable_or_wrong_file(tmp_path, models_dir):
    bad = tmp_path / "SMPL_NEUTRAL.pkl"
    bad.write_bytes(b"not a pickle at all")
    with pytest.raises(BodyModelError, match="cannot read SMPL model file"):
        SMPLFamily("smpl", model_path=bad)
    with pytest.raises(BodyModelError, match="SMPL-X model with 55 joints"):
        SMPLFamily("smplx", model_path=models_dir / "smpl" / "SMPL_NEUTRAL.npz")
    with pytest.raises(BodyModelError, match="unknown"):
        SMPLFamily("smpl-y")


def test_coco17_keypoints_all_available(smpl):
    _, pose = random_pose(smpl, 4)
    out = smpl(pose)
    kp = smpl.keypoints(out, "coco17")
    assert kp.shape == (4, 17, 4)
    assert torch.all(kp[..., 3] == 1)
    i = smpl.keypoint_names.index("left_wrist")
    assert torch.allclose(kp[:, 9, :3], out.keypoints[:, i])
    assert torch.allclose(out.keypoints[:, i], out.joints[:, smpl.joint_names.index("left_wrist")])


def test_body_models_load(models_dir):
    model = body_models.load("smpl", model_path=str(models_dir), dtype=torch.float64)
    assert isinstance(model, SMPLFamily) and model.dtype == torch.float64
    out = model(model.rest_pose(1).double(), vertices=False)
    assert out.joints.dtype == torch.float64 and out.vertices is None
