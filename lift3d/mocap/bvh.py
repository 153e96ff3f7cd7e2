"""Read BVH (Biovision hierarchy) motion files.

    motion = read_bvh("001_01.bvh")            # Motion: (T, J, 3) metres, Y up
    motion = read_bvh("001_01.bvh", fps=120)   # override a wrong "Frame Time" header

Conventions handled here:

- Rotation channels compose in the listed order as intrinsic rotations: for
  ``Zrotation Xrotation Yrotation`` a joint's local rotation is ``Rz @ Rx @ Ry``, degrees.
  A joint's frame is ``G_joint = G_parent @ R_local`` and its origin
  ``p_joint = p_parent + G_parent @ (offset [+ position channels])``.
- Root translation. The BVH convention is that the root's position channels give its position
  and replace its OFFSET. Some converters (the Character Creator / iClone conversions of the CMU
  database among them) instead write the displacement from the rest OFFSET, so the hips would
  sit ~7 cm above the floor. ``root_offset="auto"`` tells the two apart: if the position
  channels along the OFFSET direction stay well short of the OFFSET's length (median below
  half), they are displacements and are added. Non-root position channels replace the OFFSET.
- Units: ``scale`` multiplies file units into metres. The default ("auto") measures the figure's
  median vertical extent (highest minus lowest joint): up to 5 units it is metres, up to 500
  centimetres (the Character Creator files: ~170), beyond that millimetres. Give ``scale`` for
  anything else (inches: 0.0254); a figure outside 0.8-2.5 m after auto scaling warns.
- Up axis: ``up="y"`` (the BVH convention) or ``"z"`` (converted to Y up by x, y, z -> x, z, -y).
  ``"auto"`` (default) picks the axis along which head-like joints sit above foot-like ones,
  falling back to Y when the names say nothing.
- Frame rate: from "Frame Time" (snapped to a whole number when within 0.02 %: 0.016667 s is
  60 fps) unless ``fps`` is given. Some converters write a wrong header;
  the CMU BVH conversions read here carry 0.016667 s (60 fps) and hold every second frame of the
  120 fps capture, so their header is right (see the mocap tests).

Data note: in the iClone conversions whose hierarchy starts at ``RL_BoneRoot`` (CMU 02_01-02_03,
07_01) the hips keep a constant height; the converter dropped the vertical root motion. The
reader reproduces the file as written.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from lift3d.io_utils import LoadError
from lift3d.mocap.motion import Motion

_ROT = {"xrotation": "X", "yrotation": "Y", "zrotation": "Z"}
_POS = {"xposition": 0, "yposition": 1, "zposition": 2}


@dataclass
class BVHJoint:
    """One joint of a BVH hierarchy (End Sites are joints without channels)."""

    name: str
    parent: int
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)
    channel_start: int = 0
    end_site: bool = False


def parse_hierarchy(text: str, where: str = "BVH") -> tuple[list[BVHJoint], int]:
    """Parse the HIERARCHY section.

    Args:
        text: the file text up to (not including) the MOTION keyword.
    Returns:
        joints in file order (parents before children) and the total channel count.
    """
    tokens = text.split()
    if not tokens or tokens[0].upper() != "HIERARCHY":
        raise LoadError(f"{where} does not start with HIERARCHY: not a BVH file")
    joints: list[BVHJoint] = []
    stack: list[int] = []
    pending: BVHJoint | None = None  # declared, waiting for its '{'
    n_channels = 0
    i = 1

    def need(k: int, what: str) -> list[str]:
        if i + k > len(tokens):
            raise LoadError(f"{where}: hierarchy ends inside {what} (truncated file?)")
        return tokens[i:i + k]

    while i < len(tokens):
        tok = tokens[i]
        key = tok.upper()
        if key in ("ROOT", "JOINT"):
            if key == "ROOT" and (stack or joints):
                raise LoadError(f"{where}: only one ROOT is supported")
            name = need(2, tok)[1]
            pending = BVHJoint(name, stack[-1] if stack else -1, np.zeros(3))
            i += 2
        elif key == "END":
            if need(2, "End Site")[1].upper() != "SITE":
                raise LoadError(f"{where}: 'End' not followed by 'Site' in the hierarchy")
            if not stack:
                raise LoadError(f"{where}: End Site outside any joint")
            parent = joints[stack[-1]]
            pending = BVHJoint(parent.name + "_end", stack[-1], np.zeros(3), end_site=True)
            i += 2
        elif tok == "{":
            if pending is None:
                raise LoadError(f"{where}: unexpected '{{' in the hierarchy")
            joints.append(pending)
            stack.append(len(joints) - 1)
            pending = None
            i += 1
        elif tok == "}":
            if not stack:
                raise LoadError(f"{where}: unbalanced '}}' in the hierarchy")
            stack.pop()
            i += 1
        elif key == "OFFSET":
            vals = need(4, "OFFSET")[1:]
            if not stack:
                raise LoadError(f"{where}: OFFSET outside any joint")
            joints[stack[-1]].offset = _floats(vals, where, "OFFSET")
            i += 4
        elif key == "CHANNELS":
            n = need(2, "CHANNELS")[1]
            if not n.isdigit() or not stack:
                raise LoadError(f"{where}: malformed CHANNELS line")
            names = need(2 + int(n), "CHANNELS")[2:]
            bad = [c for c in names if c.lower() not in _ROT and c.lower() not in _POS]
            if bad:
                raise LoadError(f"{where}: unknown channel {bad[0]!r} in joint {joints[stack[-1]].name}")
            j = joints[stack[-1]]
            j.channels, j.channel_start = [c.lower() for c in names], n_channels
            n_channels += int(n)
            i += 2 + int(n)
        else:
            raise LoadError(f"{where}: unexpected token {tok!r} in the hierarchy")
    if stack or pending is not None:
        raise LoadError(f"{where}: hierarchy is not closed (missing '}}'; truncated file?)")
    if not joints:
        raise LoadError(f"{where}: hierarchy has no ROOT")
    return joints, n_channels


def _floats(vals: list[str], where: str, what: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in vals])
    except ValueError:
        raise LoadError(f"{where}: non-numeric {what} values {' '.join(vals)!r}") from None


def parse_motion(text: str, n_channels: int, where: str = "BVH",
                 max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Parse the MOTION section (the text after the MOTION keyword).

    Returns:
        values: (T, C) channel values, T = min(Frames, max_frames).
        frame_time: the "Frame Time" header, seconds.
    """
    m_frames = re.search(r"Frames:\s*(\S+)", text)
    m_time = re.search(r"Frame\s+Time:\s*(\S+)", text)
    if not m_frames or not m_time:
        raise LoadError(f"{where}: MOTION section lacks the 'Frames:' or 'Frame Time:' line")
    try:
        n_frames, frame_time = int(m_frames.group(1)), float(m_time.group(1))
    except ValueError:
        raise LoadError(f"{where}: malformed 'Frames:' or 'Frame Time:' line") from None
    body = text[m_time.end():]
    want = n_frames if max_frames is None else min(n_frames, max_frames)
    lines = body.split("\n", want + 1)  # only as many lines as needed are split off
    rows = [ln for ln in lines[:want + 1] if ln.strip()][:want]
    if len(rows) < want:
        raise LoadError(f"{where}: header says {n_frames} frames but only {len(rows)} are present (truncated file?)")
    try:
        values = np.array(" ".join(rows).split(), dtype=np.float64)
    except ValueError:
        raise LoadError(f"{where}: non-numeric value in the MOTION data") from None
    if values.size != want * n_channels:
        counts = [len(r.split()) for r in rows]
        k = next((k for k, c in enumerate(counts) if c != n_channels), len(rows) - 1)
        raise LoadError(f"{where}: frame {k} has {counts[k]} values, the hierarchy declares {n_channels} channels "
                        "(truncated or corrupt file?)")
    if not np.all(np.isfinite(values)):
        raise LoadError(f"{where}: MOTION data holds NaN or infinite values")
    return values.reshape(want, n_channels), frame_time


def _local_rotations(joints: list[BVHJoint], values: np.ndarray) -> np.ndarray:
    """(T, J, 3, 3) local rotations from the rotation channels (degrees, intrinsic in listed order)."""
    T, J = values.shape[0], len(joints)
    out = np.broadcast_to(np.eye(3), (T, J, 3, 3)).copy()
    groups: dict[str, list[tuple[int, list[int]]]] = {}
    for j, jt in enumerate(joints):
        cols = [jt.channel_start + k for k, c in enumerate(jt.channels) if c in _ROT]
        if cols:
            seq = "".join(_ROT[jt.channels[c - jt.channel_start]] for c in cols)
            groups.setdefault(seq, []).append((j, cols))
    for seq, members in groups.items():  # one scipy call per distinct channel order
        idx = [j for j, _ in members]
        cols = np.array([c for _, c in members])  # (Jg, len(seq))
        angles = values[:, cols]  # (T, Jg, len(seq))
        rot = Rotation.from_euler(seq, angles.reshape(-1, len(seq)), degrees=True).as_matrix()
        out[:, idx] = rot.reshape(T, len(idx), 3, 3)
    return out


def _root_adds_offset(root: BVHJoint, values: np.ndarray) -> bool:
    """Whether the root's position channels are displacements from its OFFSET (see module doc)."""
    norm = np.linalg.norm(root.offset)
    pos = [k for k, c in enumerate(root.channels) if c in _POS]
    if norm < 1e-9 or not pos:
        return False  # the two conventions agree
    trans = np.zeros((values.shape[0], 3))
    for k in pos:
        trans[:, _POS[root.channels[k]]] = values[:, root.channel_start + k]
    along = np.median(trans @ (root.offset / norm))
    return bool(along < 0.5 * norm)


def forward_kinematics(joints: list[BVHJoint], values: np.ndarray,
                       root_offset: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """World positions and rotations of every joint, vectorised over frames.

    Args:
        joints: the hierarchy (parents before children).
        values: (T, C) channel values.
        root_offset: "auto", "add" (root position channels are displacements from OFFSET) or
            "replace" (they are the root position; the BVH convention).
    Returns:
        positions: (T, J, 3) in file units and axes.
        rotations: (T, J, 3, 3) global rotations.
    """
    T, J = values.shape[0], len(joints)
    if root_offset not in ("auto", "add", "replace"):
        raise ValueError(f"root_offset must be 'auto', 'add' or 'replace', got {root_offset!r}")
    add_root = _root_adds_offset(joints[0], values) if root_offset == "auto" else root_offset == "add"
    local_rot = _local_rotations(joints, values)
    pos = np.zeros((T, J, 3))
    rot = np.zeros((T, J, 3, 3))
    for j, jt in enumerate(joints):
        trans = np.broadcast_to(jt.offset, (T, 3)).copy()
        pos_ch = [(k, _POS[c]) for k, c in enumerate(jt.channels) if c in _POS]
        if pos_ch and not (j == 0 and add_root):
            # position channels replace the offset on the axes they cover
            trans[:, [ax for _, ax in pos_ch]] = 0.0
        for k, ax in pos_ch:
            trans[:, ax] += values[:, jt.channel_start + k]
        if jt.parent < 0:
            pos[:, j] = trans
            rot[:, j] = local_rot[:, j]
        else:
            gp = rot[:, jt.parent]
            pos[:, j] = pos[:, jt.parent] + np.einsum("tij,tj->ti", gp, trans)
            rot[:, j] = gp @ local_rot[:, j]
    return pos, rot


_HEAD_WORDS = ("head", "neck")
_FOOT_WORDS = ("foot", "toe", "ankle", "calf", "knee", "leg")


def _detect_up(names: list[str], pos: np.ndarray) -> str:
    """'y' or 'z': the axis along which head-like joints sit above foot-like joints."""
    low = [n.lower() for n in names]
    head = [j for j, n in enumerate(low) if any(w in n for w in _HEAD_WORDS)]
    foot = [j for j, n in enumerate(low) if any(w in n for w in _FOOT_WORDS) and "up" not in n]
    if not head or not foot:
        return "y"
    d = pos[:, head].mean(axis=(0, 1)) - pos[:, foot].mean(axis=(0, 1))
    return "z" if d[2] > abs(d[1]) and d[2] > abs(d[0]) else "y"


def _figure_height(pos_y_up: np.ndarray) -> float:
    """Median over frames of the vertical extent of all joints (file units)."""
    return float(np.median(pos_y_up[..., 1].max(axis=1) - pos_y_up[..., 1].min(axis=1)))


def _auto_scale(pos_y_up: np.ndarray) -> float:
    """File units -> metres, from the figure's height (a person is 1-2 m tall).

    The vertical extent rather than the root height is used because some files root the
    hierarchy on a floor-level bone (iClone's RL_BoneRoot).
    """
    h = _figure_height(pos_y_up)
    if h <= 5.0:
        return 1.0
    if h <= 500.0:
        return 0.01
    return 0.001


def _snap_fps(fps: float) -> float:
    """Undo the rounding of "Frame Time" (0.016667 -> 60, not 59.9988); 29.97 stays 29.97."""
    r = round(fps)
    return float(r) if r > 0 and abs(fps - r) <= 2e-4 * r else fps


def read_bvh(path: str | Path, *, scale: float | str = "auto", up: str = "auto",
             fps: float | None = None, root_offset: str = "auto",
             max_frames: int | None = None, keep_end_sites: bool = True) -> Motion:
    """Read a BVH file into a ``Motion`` (metres, right-handed, Y up).

    Args:
        path: the .bvh file.
        scale: file units -> metres, or "auto" (metres / centimetres / millimetres from the
            figure height; see the module doc).
        up: "y", "z" or "auto": the file's up axis.
        fps: frame rate to use instead of the "Frame Time" header (for files whose header is
            known to be wrong).
        root_offset: "auto", "add" or "replace": how the root's position channels relate to its
            OFFSET (see the module doc).
        max_frames: read only the first ``max_frames`` frames (fast previews and tests).
        keep_end_sites: keep End Sites with a non-zero offset as joints named "<parent>_end"
            (End Sites of zero length are always dropped: they duplicate their parent).
    Returns:
        Motion with kind "bvh"; ``meta`` holds the header frame time, the scale and up axis used.
    Raises:
        LoadError: missing, truncated or malformed file.
    """
    if up not in ("auto", "y", "z"):
        raise ValueError(f"up must be 'y', 'z' or 'auto', got {up!r}")
    path = Path(path)
    where = f"BVH file {path}"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise LoadError(f"BVH file not found: {path}") from None
    except OSError as e:
        raise LoadError(f"cannot read {where} ({e.strerror or e})") from None
    m = re.search(r"^\s*MOTION\s*$", text, flags=re.MULTILINE)
    if m is None:
        if not text.lstrip().upper().startswith("HIERARCHY"):
            raise LoadError(f"{where} does not start with HIERARCHY: not a BVH file")
        raise LoadError(f"{where} has no MOTION section (truncated file?)")
    joints, n_channels = parse_hierarchy(text[:m.start()], where)
    values, frame_time = parse_motion(text[m.end():], n_channels, where, max_frames)
    if values.shape[0] == 0:
        raise LoadError(f"{where} holds no frames")
    pos, rot = forward_kinematics(joints, values, root_offset)

    keep = [j for j, jt in enumerate(joints)
            if not jt.end_site or (keep_end_sites and np.linalg.norm(jt.offset) > 1e-9)]
    remap = {old: new for new, old in enumerate(keep)}
    names = [joints[j].name for j in keep]
    parents = np.array([remap[joints[j].parent] if joints[j].parent >= 0 else -1 for j in keep])
    pos, rot = pos[:, keep], rot[:, keep]

    up_axis = _detect_up(names, pos) if up == "auto" else up
    if up_axis == "z":  # Z up (right-handed) -> Y up: (x, y, z) -> (x, z, -y)
        A = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
        pos = pos @ A.T
        rot = A @ rot

    s = _auto_scale(pos) if scale == "auto" else float(scale)
    pos = pos * s
    height = _figure_height(pos)
    if scale == "auto" and not 0.8 <= height <= 2.5:
        warnings.warn(f"{path.name}: figure {height:.2f} m tall after auto scaling looks wrong for a human; "
                      "pass scale= (file units to metres)", stacklevel=2)

    if fps is None:
        if not frame_time > 0:
            raise LoadError(f"{where}: Frame Time {frame_time} is not positive; pass fps=")
        fps = _snap_fps(1.0 / frame_time)
    return Motion(names, parents, pos, rot, fps, "bvh", path.stem,
                  {"frame_time_header": frame_time, "scale": s, "up": up_axis, "path": str(path)})
