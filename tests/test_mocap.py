"""Motion-capture readers (lift3d.mocap): exact FK on hand-written files, and the real CMU data.

The real-data tests read ../shared/data/cmu-mocap (skipped with a reason when absent): CMU take
01_01 as ASF/AMC (120 fps) and as the Character Creator BVH conversion 001_01.
"""
from __future__ import annotations

import numpy as np
import pytest

from lift3d import formats
from lift3d.io_utils import LoadError
from lift3d.metrics import procrustes_align
from lift3d.mocap import (CC_BVH, CMU_ASF, FACE_OFFSETS, Motion, detect, face_points, find_asf,
                          load_motion, read_amc, read_asf, read_bvh)
from lift3d.types import Joints3D

# ---------------------------------------------------------------- hand-written files

TINY_BVH = """HIERARCHY
ROOT hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 0 5
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.5
0 100 0  0 0 0   0 0 0
1 100 2  90 0 0  0 90 0
0 100 0  90 90 0  0 0 0
"""

TINY_ASF = """:version 1.10
:name tiny
:units
  mass 1.0
  length {length}
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name upper
     direction 1 0 0
     length 1
     axis 0 0 90 XYZ
    dof rx
    limits (-180.0 180.0)
  end
  begin
     id 2
     name lower
     direction 1 0 0
     length 2
     axis 0 0 0 XYZ
  end
:hierarchy
  begin
    root upper
    upper lower
  end
"""

TINY_AMC = """:FULLY-SPECIFIED
:DEGREES
1
root 0 0 0 0 0 0
upper 0
2
root 1 2 3 0 0 0
upper 90
"""


def _write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_bvh_fk_exact(tmp_path):
    """90-degree rotations, intrinsic channel order (Zrotation Xrotation Yrotation = Rz @ Rx @ Ry)."""
    m = read_bvh(_write(tmp_path, "tiny.bvh", TINY_BVH), scale=0.01, up="y")
    assert m.joint_names == ["hips", "chest", "chest_end"]
    assert list(m.parents) == [-1, 0, 1] and m.fps == 2.0 and m.kind == "bvh"
    expected = np.array([
        [[0, 1.0, 0], [0, 1.1, 0], [0, 1.1, 0.05]],
        # root Rz(90) turns the chest offset +Y to -X; the chest's Rx(90) turns the end's +Z to
        # -Y, and the root's Rz(90) that to +X.
        [[0.01, 1.0, 0.02], [-0.09, 1.0, 0.02], [-0.04, 1.0, 0.02]],
        # root Rz(90) @ Rx(90): +Y -> +Z (Rx @ Rz would give -X); +Z -> -Y -> +X
        [[0, 1.0, 0], [0, 1.0, 0.1], [0.05, 1.0, 0.1]],
    ])
    np.testing.assert_allclose(m.positions, expected, atol=1e-9)
    Rz90 = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    Rx90 = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]])
    np.testing.assert_allclose(m.rotations[2, 0], Rz90 @ Rx90, atol=1e-12)
    np.testing.assert_allclose(m.rotations[1, 1], Rz90 @ Rx90, atol=1e-12)


def test_bvh_options(tmp_path):
    p = _write(tmp_path, "tiny.bvh", TINY_BVH)
    assert read_bvh(p, scale=0.01, fps=120).fps == 120.0
    assert read_bvh(p, scale=0.01, max_frames=2).num_frames == 2
    assert read_bvh(p, scale=0.01, keep_end_sites=False).joint_names == ["hips", "chest"]
    # Z-up file: (x, y, z) -> (x, z, -y)
    mz = read_bvh(p, scale=0.01, up="z")
    np.testing.assert_allclose(mz.positions[0, 1], [0, 0, -1.1], atol=1e-12)
    # Root OFFSET with position channels holding displacements from it (iClone style): added.
    text = TINY_BVH.replace("OFFSET 0 0 0\n  CHANNELS 6", "OFFSET 0 100 0\n  CHANNELS 6").replace(
        "0 100 0  0 0 0", "0 5 0  0 0 0")
    p2 = _write(tmp_path, "offset.bvh", text)
    assert read_bvh(p2, scale=0.01, max_frames=1).positions[0, 0, 1] == pytest.approx(1.05)
    assert read_bvh(p2, scale=0.01, max_frames=1, root_offset="replace").positions[0, 0, 1] == pytest.approx(0.05)


def test_asf_amc_fk_exact(tmp_path):
    """L = C @ M @ C^-1: rx of a bone whose axis is Rz(90) turns about world Y."""
    skel = read_asf(_write(tmp_path, "tiny.asf", TINY_ASF.format(length=1.0)), scale=1.0)
    m = read_amc(_write(tmp_path, "tiny_01.amc", TINY_AMC), skel, fps=60)
    assert m.joint_names == ["root", "upper", "lower"] and m.fps == 60.0 and m.kind == "cmu_asf"
    expected = np.array([
        [[0, 0, 0], [1, 0, 0], [3, 0, 0]],
        [[1, 2, 3], [1, 2, 2], [1, 2, 0]],
    ], dtype=float)
    np.testing.assert_allclose(m.positions, expected, atol=1e-12)
    # Default units: ':units length L' means file units / L = inches.
    s = read_asf(_write(tmp_path, "cmu.asf", TINY_ASF.format(length=0.45)))
    assert s.length_scale == pytest.approx(0.0254 / 0.45)
    assert s.bones[1].length == pytest.approx(2 * 0.0254 / 0.45)


def test_resample_120_to_30(tmp_path):
    skel = read_asf(_write(tmp_path, "tiny.asf", TINY_ASF.format(length=1.0)), scale=1.0)
    lines = [":DEGREES"]
    for k in range(9):
        lines += [str(k + 1), f"root {k} 0 0 0 {10 * k} 0", f"upper {5 * k}"]
    m = read_amc(_write(tmp_path, "ramp.amc", "\n".join(lines) + "\n"), skel, fps=120)
    m30 = m.resample(30)
    assert m30.fps == 30 and m30.num_frames == 3
    np.testing.assert_allclose(m30.positions, m.positions[::4], atol=1e-9)
    np.testing.assert_allclose(m30.rotations, m.rotations[::4], atol=1e-9)
    mid = m.resample(240)  # in-between frames: linear positions, slerped rotations
    np.testing.assert_allclose(mid.positions[1, 0], [0.5, 0, 0], atol=1e-12)
    ang = np.degrees(np.arccos((np.trace(mid.rotations[1, 0]) - 1) / 2))
    assert ang == pytest.approx(5.0)


@pytest.mark.parametrize("text, words", [
    ("", "HIERARCHY"),
    ("HIERARCHY\nROOT hips\n{\n  OFFSET 0 0 0\n  CHANNELS 3 Xposition", "MOTION"),
    (TINY_BVH.replace("CHANNELS 3 Zrotation", "CHANNELS 3 Wrotation"), "Wrotation"),
    (TINY_BVH.replace("OFFSET 0 10 0", "OFFSET 0 ten 0"), "OFFSET"),
    (TINY_BVH.replace("}\n}\nMOTION", "}\nMOTION"), "not closed"),
    (TINY_BVH[:-12], "frame 2 has"),  # cut inside the last frame
    (TINY_BVH.replace("Frames: 3", "Frames: 5"), "5 frames"),
    (TINY_BVH.replace("0 100 0  90 90 0", "0 100 0  90 x 0"), "non-numeric"),
])
def test_bvh_corrupt(tmp_path, text, words):
    with pytest.raises(LoadError, match=words) as e:
        read_bvh(_write(tmp_path, "bad.bvh", text), scale=0.01)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("amc, words", [
    (TINY_AMC[:-10], "missing from frame 2"),  # the last frame lost a bone line
    (TINY_AMC.replace("upper 90", "upper"), "has 0 values in frame 2"),
    (TINY_AMC.replace("upper 90", "upper 9O"), "non-numeric"),
    (TINY_AMC.replace("upper 90", "lfemur 1 2 3"), "not in the skeleton"),
    (":DEGREES\n", "no frames"),
    ("root 0 0 0 0 0 0\n", "before the first frame"),
])
def test_amc_corrupt(tmp_path, amc, words):
    skel = read_asf(_write(tmp_path, "tiny.asf", TINY_ASF.format(length=1.0)))
    with pytest.raises(LoadError, match=words) as e:
        read_amc(_write(tmp_path, "bad.amc", amc), skel)
    assert "\n" not in str(e.value)


def test_asf_and_dispatch_errors(tmp_path):
    with pytest.raises(LoadError, match="lacks its :bonedata"):
        read_asf(_write(tmp_path, "bad.asf", TINY_ASF.format(length=1.0).split(":bonedata")[0]))
    with pytest.raises(LoadError, match="not found"):
        read_asf(tmp_path / "missing.asf")
    with pytest.raises(LoadError, match="expected .bvh or .amc"):
        load_motion(_write(tmp_path, "x.c3d", ""))
    with pytest.raises(LoadError, match="not found"):
        load_motion(tmp_path / "nothere.bvh")
    _write(tmp_path, "07.asf", TINY_ASF.format(length=1.0))
    _write(tmp_path, "08.asf", TINY_ASF.format(length=1.0))
    amc = _write(tmp_path, "07_01.amc", TINY_AMC)
    assert find_asf(amc).name == "07.asf"
    assert load_motion(amc).num_frames == 2


def test_face_points_offsets():
    R = np.stack([np.eye(3), np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0.0]])])  # facing +Z; turned to +X
    pts = face_points(np.zeros((2, 3)), R)
    np.testing.assert_allclose(pts["nose"][0], FACE_OFFSETS["nose"])
    assert pts["nose"][1][0] > 0.1 and pts["left_ear"][1][2] < -0.07  # turned left: left ear now at -Z


# ---------------------------------------------------------------- real CMU data

@pytest.fixture(scope="module")
def cmu(shared_data):
    root = shared_data / "cmu-mocap"
    if not root.is_dir():
        pytest.skip(f"needs {root} (real CMU mocap), which is absent")
    return root


@pytest.fixture(scope="module")
def amc_0101(cmu) -> Motion:
    return load_motion(cmu / "asfamc/01/01_01.amc", max_frames=1440)  # 12 s at 120 fps


@pytest.fixture(scope="module")
def bvh_0101(cmu) -> Motion:
    return load_motion(cmu / "bvh/001/001_01.bvh", max_frames=720)  # the same 12 s at 60 fps


def test_real_files_read(amc_0101, bvh_0101):
    a, b = amc_0101, bvh_0101
    assert a.kind == "cmu_asf" and a.fps == 120 and a.positions.shape == (1440, 31, 3)
    assert b.kind == "bvh" and b.fps == 60 and b.positions.shape == (720, 100, 3)
    assert b.meta["scale"] == 0.01 and b.meta["up"] == "y"  # centimetres, Y up
    assert detect(a) is CMU_ASF and detect(b) is CC_BVH
    for m in (a, b):
        assert np.isfinite(m.positions).all()
        R = m.rotations[::50]
        np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)


@pytest.mark.parametrize("which", ["amc_0101", "bvh_0101"])
def test_bone_lengths_constant(which, request):
    m: Motion = request.getfixturevalue(which)
    assert m.bone_lengths().std(axis=0).max() < 1e-3
    j = m.to_joints3d("h36m17").data[:, 0]
    for a, c in [("left_hip", "left_knee"), ("right_knee", "right_ankle"), ("left_shoulder", "left_elbow"),
                 ("right_elbow", "right_wrist"), ("head", "head_top")]:
        d = np.linalg.norm(j[:, formats.index("h36m17", a)] - j[:, formats.index("h36m17", c)], axis=-1)
        assert d.std() < 1e-3 and 0.05 < d.mean() < 0.6


@pytest.mark.parametrize("which, lo, hi", [("amc_0101", 1.6, 1.8), ("bvh_0101", 1.7, 1.95)])
def test_standing_height(which, lo, hi, request):
    """Top of the head above the lowest joint: CMU subject 01 ~1.7 m with the /0.45 inch units
    (the brief's 0.45 * 2.54 / 100 would make him 0.33 m); the BVH retargets onto a taller
    Character Creator figure (~1.8 m)."""
    m: Motion = request.getfixturevalue(which)
    top = m.to_joints3d("h36m17").data[:, 0, formats.index("h36m17", "head_top"), 1]
    height = np.percentile(top - m.positions[..., 1].min(axis=1), 90)
    assert 1.5 <= height <= 1.95 and lo <= height <= hi


@pytest.mark.parametrize("which, toe, ankle", [
    ("amc_0101", "ltoes", "ltibia"), ("bvh_0101", "CC_Base_L_ToeBase", "CC_Base_L_Foot")])
def test_left_right_and_face(which, toe, ankle, request):
    """Left joints lie on the subject's left (up x forward, forward from the left foot) and the
    nose in front of the head; the pelvis is the hip midpoint."""
    m: Motion = request.getfixturevalue(which)
    ix = lambda n: formats.index("coco17", n)  # noqa: E731
    c = m.to_joints3d("coco17").data[:, 0]
    fwd = m.joint(toe) - m.joint(ankle)
    fwd[:, 1] = 0
    fwd /= np.linalg.norm(fwd, axis=-1, keepdims=True)
    left = np.cross([0.0, 1.0, 0.0], fwd)
    for a in ("hip", "shoulder", "ear"):
        side = np.einsum("ti,ti->t", c[:, ix(f"left_{a}")] - c[:, ix(f"right_{a}")], left)
        assert np.mean(side > 0) > 0.9, a
    head = m.to_joints3d("h36m17").data[:, 0, formats.index("h36m17", "head")]
    assert np.mean(np.einsum("ti,ti->t", c[:, ix("nose")] - head, fwd) > 0) > 0.9
    h = m.to_joints3d("h36m17").data[:, 0]
    np.testing.assert_allclose(h[:, 0], (h[:, formats.index("h36m17", "left_hip")]
                                         + h[:, formats.index("h36m17", "right_hip")]) / 2, atol=1e-12)


def test_to_joints3d(amc_0101):
    j = amc_0101.to_joints3d("h36m17")
    assert isinstance(j, Joints3D) and j.data.shape == (1440, 1, 17, 3)
    assert j.frame == "world" and j.fps == 120 and (j.confidence == 1).all()
    assert (amc_0101.to_joints3d("coco17").confidence == 1).all()
    bp = amc_0101.to_joints3d("blazepose33")  # hands and feet points: not in the table
    assert np.isfinite(bp.data).all() and bp.confidence.min() == 0 and bp.confidence.max() == 1


def test_bvh_header_rate_and_agreement_with_amc(amc_0101, bvh_0101):
    """The BVH conversion of take 01_01 is the AMC take decimated by 2: its "Frame Time" of
    1/60 s is right. Brought to 120 fps, the BVH's pelvis height matches the AMC's best one
    120-fps frame later (BVH frame k = AMC frame 2k+1); a wrong rate would not line up at all.

    After that temporal alignment and a per-frame similarity (Procrustes) alignment the h36m17
    joints of the two files agree to 37.7 mm on average (full take: 37.5 mm; five other takes 33-40
    mm): the BVH is retargeted onto a Character Creator figure whose proportions differ from
    subject 01's (longer legs and forearms, wider hips), so this is the skeleton difference, not
    reader error (a wrong Euler convention gives 144 mm in the BVH reader, 79 mm in the AMC
    reader). Bound: 55 mm (about 1.5x).
    """
    a, b = amc_0101, bvh_0101
    b120 = b.resample(120)
    ya = a.to_joints3d("h36m17").data[:, 0, 0, 1]
    yb = b120.to_joints3d("h36m17").data[:, 0, 0, 1]
    n = len(yb) - 20
    lags = list(range(-8, 9))
    err = [np.mean(((ya[10 + L:10 + L + n] - ya.mean()) - (yb[10:10 + n] - yb.mean())) ** 2) for L in lags]
    lag = lags[int(np.argmin(err))]
    assert lag == 1
    assert np.sqrt(min(err)) < 0.02  # metres, after removing the figures' different hip heights

    # Compare at 30 fps (every 4th AMC frame, from frame 1).
    ja = a.to_joints3d("h36m17").data[1::4, 0]
    jb = b.resample(30).to_joints3d("h36m17").data[:, 0]
    T = min(len(ja), len(jb))
    ja, jb = ja[:T], jb[:T]
    aligned = np.stack([procrustes_align(jb[t], ja[t]) for t in range(T)])
    mpjpe = np.linalg.norm(aligned - ja, axis=-1).mean()
    assert mpjpe < 0.055, f"BVH vs AMC after alignment: {mpjpe * 1000:.1f} mm"
