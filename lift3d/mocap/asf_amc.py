"""Read Acclaim ASF skeletons and AMC motions (the CMU motion-capture database's own format).

    skel = read_asf("01.asf")
    motion = read_amc("01_01.amc", skel)       # Motion: (T, 31, 3) metres, Y up, 120 fps

Forward kinematics follows the Acclaim spec: each bone has a rest ``direction`` (world axes) and
``length``, and a local axis frame ``C`` given by ``axis`` (Euler angles applied in the listed
order about fixed axes: "axis 0 0 20 XYZ" is ``Rz(20) @ Ry(0) @ Rx(0)``). An AMC line gives the
bone's motion rotation ``M`` from its ``dof`` values, composed the same way in dof order
("dof rx ry rz" -> ``Rz @ Ry @ Rx``). Then the bone's global rotation is
``G = G_parent @ C @ M @ C^-1`` and its end point ``end = end_parent + G @ (direction * length)``.
The root's rotation comes the same way from its ``order``/``axis`` and its position from the
AMC translation values.

Units: the ASF ``:units length`` factor divides the file's lengths into inches (the CMU
database writes ``length 0.45``; its FAQ: metres = value * (1/0.45) * 2.54/100), so by default
metres = value / length * 0.0254. This makes CMU subject 01 1.73 m tall (tested). Angles are
degrees unless ``:units angle rad`` (or an AMC ``:RADIANS`` line) says otherwise. ASF/AMC world
axes are already right-handed and Y up; the CMU rest pose faces +Z with the subject's left on +X.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from lift3d.io_utils import LoadError
from lift3d.mocap.motion import Motion

INCH = 0.0254


@dataclass
class Bone:
    """One ASF bone: rest direction (unit, world axes), length in metres, axis frame and dofs."""

    name: str
    direction: np.ndarray
    length: float
    axis: np.ndarray  # (3, 3) C
    dof: list[str] = field(default_factory=list)


@dataclass
class Skeleton:
    """An ASF skeleton.

    Attributes:
        bones: bones in hierarchy order (every parent before its children), root excluded.
        parents: (B,) index of each bone's parent in ``bones``, -1 for bones on the root.
        root_order: channel names of the root's AMC line, e.g. ["tx", "ty", "tz", "rx", "ry", "rz"].
        root_axis: (3, 3) the root's axis frame ``C`` (from ``axis`` and ``orientation``).
        root_position: (3,) rest position of the root, metres.
        length_scale: file length units -> metres.
        angle_unit: "deg" or "rad".
        name: the ASF ``:name``.
    """

    bones: list[Bone]
    parents: np.ndarray
    root_order: list[str]
    root_axis: np.ndarray
    root_position: np.ndarray
    length_scale: float
    angle_unit: str = "deg"
    name: str = ""

    def bone_names(self) -> list[str]:
        return [b.name for b in self.bones]


def _euler(order: str, angles: np.ndarray) -> np.ndarray:
    """Rotation matrices for angles (radians) applied about fixed axes in ``order``.

    Args:
        order: e.g. "xyz" (x first): the matrix is Rz @ Ry @ Rx.
        angles: (..., len(order)).
    Returns:
        (..., 3, 3)
    """
    angles = np.asarray(angles, dtype=np.float64)
    flat = angles.reshape(-1, len(order))
    return Rotation.from_euler(order.lower(), flat).as_matrix().reshape(angles.shape[:-1] + (3, 3))


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise LoadError(f"{what} file not found: {path}") from None
    except OSError as e:
        raise LoadError(f"cannot read {what} file {path} ({e.strerror or e})") from None


def _sections(text: str) -> dict[str, list[list[str]]]:
    """Split ASF text into ':keyword' sections of tokenised, comment-free lines."""
    out: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(":"):
            head, *rest = line.split()
            current = out.setdefault(head[1:].lower(), [])
            if rest:
                current.append(rest)
        elif current is not None:
            current.append(line.split())
    return out


def read_asf(path: str | Path, scale: float | None = None) -> Skeleton:
    """Read an ASF skeleton.

    Args:
        path: the .asf file.
        scale: file length units -> metres; default ``0.0254 / (:units length)`` (see module doc).
    Raises:
        LoadError: missing or malformed file.
    """
    path = Path(path)
    where = f"ASF file {path}"
    sec = _sections(_read_text(path, "ASF"))
    for need in ("root", "bonedata", "hierarchy"):
        if need not in sec:
            raise LoadError(f"{where} lacks its :{need} section (not an ASF file, or truncated)")
    units = {ln[0].lower(): ln[1] for ln in sec.get("units", []) if len(ln) >= 2}
    try:
        length_factor = float(units.get("length", 1.0))
    except ValueError:
        raise LoadError(f"{where}: malformed ':units length'") from None
    s = float(scale) if scale is not None else INCH / length_factor
    angle_unit = "rad" if units.get("angle", "deg").lower().startswith("rad") else "deg"
    to_rad = (lambda a: np.asarray(a, float)) if angle_unit == "rad" else np.deg2rad

    def floats(vals: list[str], what: str) -> np.ndarray:
        try:
            return np.array([float(v) for v in vals])
        except ValueError:
            raise LoadError(f"{where}: non-numeric {what} {' '.join(vals)!r}") from None

    root = {ln[0].lower(): ln[1:] for ln in sec["root"] if ln}
    root_order = [c.lower() for c in root.get("order", ["TX", "TY", "TZ", "RX", "RY", "RZ"])]
    root_axis_order = "".join(root.get("axis", ["XYZ"])).lower()
    orient = floats(root.get("orientation", ["0", "0", "0"]), "root orientation")
    root_axis = _euler(root_axis_order, to_rad(orient))
    root_position = floats(root.get("position", ["0", "0", "0"]), "root position") * s

    bones: dict[str, Bone] = {}
    cur: dict[str, list[str]] | None = None
    for ln in sec["bonedata"]:
        key = ln[0].lower()
        if key == "begin":
            cur = {}
        elif key == "end":
            if cur is None:
                raise LoadError(f"{where}: 'end' without 'begin' in :bonedata")
            try:
                name = cur["name"][0]
                direction = floats(cur["direction"][:3], "direction")
                length = float(cur["length"][0])
                if direction.shape != (3,):
                    raise IndexError
                ax = cur.get("axis", ["0", "0", "0", "XYZ"])
                axis = _euler(ax[3].lower() if len(ax) > 3 else "xyz", to_rad(floats(ax[:3], "axis")))
            except (KeyError, IndexError, ValueError):
                bad = cur.get("name", ["?"])[0]
                raise LoadError(f"{where}: bone {bad!r} lacks name, direction, length or axis") from None
            dof = [d.lower() for d in cur.get("dof", [])]
            unsupported = [d for d in dof if d not in ("rx", "ry", "rz")]
            if unsupported:
                raise LoadError(f"{where}: bone {name!r} has dof {unsupported[0]!r}; only rx, ry, rz are supported")
            n = np.linalg.norm(direction)
            bones[name] = Bone(name, direction / n if n > 0 else direction, length * s, axis, dof)
            cur = None
        elif cur is not None:
            cur.setdefault(key, ln[1:])  # 'limits' continuation lines land under junk keys, unused
    if cur is not None:
        raise LoadError(f"{where}: :bonedata ends inside a bone (truncated file?)")

    children: dict[str, list[str]] = {}
    for ln in sec["hierarchy"]:
        if ln[0].lower() in ("begin", "end"):
            continue
        children.setdefault(ln[0], []).extend(ln[1:])
    order: list[str] = []
    parent_of: dict[str, str] = {}
    todo = ["root"]
    while todo:  # breadth-first from the root: parents always precede children
        p = todo.pop(0)
        for c in children.get(p, []):
            if c not in bones:
                raise LoadError(f"{where}: :hierarchy names bone {c!r} that :bonedata does not define")
            if c in parent_of:
                raise LoadError(f"{where}: bone {c!r} has two parents in :hierarchy")
            parent_of[c] = p
            order.append(c)
            todo.append(c)
    if not order:
        raise LoadError(f"{where}: :hierarchy attaches no bone to the root")
    idx = {n: i for i, n in enumerate(order)}
    parents = np.array([idx.get(parent_of[n], -1) for n in order])
    name = " ".join(sec.get("name", [[""]])[0])
    return Skeleton([bones[n] for n in order], parents, root_order, root_axis, root_position, s, angle_unit, name)


def _parse_amc(text: str, where: str, max_frames: int | None,
               known: set[str]) -> tuple[list[int], dict[str, list[str]], str | None]:
    """Split AMC text into frame numbers and, per bone, one value string per frame."""
    frames: list[int] = []
    per_bone: dict[str, list[str]] = {}
    angle: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        if line[0] == ":":
            key = line.upper()
            if key.startswith(":RADIANS"):
                angle = "rad"
            elif key.startswith(":DEGREES"):
                angle = "deg"
            continue
        if line[0].isdigit():
            if max_frames is not None and len(frames) >= max_frames:
                break
            try:
                frames.append(int(line))
            except ValueError:
                raise LoadError(f"{where}: malformed frame number line {line!r}") from None
            continue
        if not frames:
            raise LoadError(f"{where}: bone values before the first frame number (not an AMC file?)")
        name, _, rest = line.partition(" ")
        vals = per_bone.get(name)
        if vals is None:
            if name not in known:
                raise LoadError(f"{where}: bone {name!r} is not in the skeleton (wrong .asf for this .amc?)")
            vals = per_bone[name] = []
        if len(vals) != len(frames) - 1:
            if len(vals) >= len(frames):
                raise LoadError(f"{where}: bone {name!r} appears twice in frame {frames[-1]}")
            raise LoadError(f"{where}: bone {name!r} is missing from frame {frames[len(vals)]}")
        vals.append(rest)
    return frames, per_bone, angle


def read_amc(path: str | Path, skeleton: Skeleton, fps: float = 120.0,
             max_frames: int | None = None) -> Motion:
    """Read an AMC motion for an ASF skeleton.

    Args:
        path: the .amc file.
        skeleton: from ``read_asf`` (the subject's .asf).
        fps: frame rate; AMC files do not record it. The CMU database is 120 fps (a few
            sequences 60: check the database's notes for the take).
        max_frames: read only the first ``max_frames`` frames.
    Returns:
        Motion with kind "cmu_asf": joints are "root" then the bones in ``skeleton.bones`` order,
        each at its END point.
    Raises:
        LoadError: missing, truncated or malformed file, or one that does not match the skeleton.
    """
    path = Path(path)
    where = f"AMC file {path}"
    known = {"root", *skeleton.bone_names()}
    frames, per_bone, angle = _parse_amc(_read_text(path, "AMC"), where, max_frames, known)
    if not frames:
        raise LoadError(f"{where} holds no frames (not an AMC file, or empty)")
    T = len(frames)
    to_rad = (lambda a: a) if (angle or skeleton.angle_unit) == "rad" else np.deg2rad

    def values(name: str, n: int) -> np.ndarray:
        """(T, n) values of one bone's lines."""
        rows = per_bone.get(name)
        if rows is None:
            if n == 0:
                return np.zeros((T, 0))
            raise LoadError(f"{where}: bone {name!r} never appears")
        if len(rows) != T:
            raise LoadError(f"{where}: bone {name!r} is missing from frame {frames[len(rows)]} (truncated file?)")
        try:
            arr = np.array(" ".join(rows).split(), dtype=np.float64)
        except ValueError:
            raise LoadError(f"{where}: non-numeric value in the lines of bone {name!r}") from None
        if arr.size != T * n:
            k = next(k for k, r in enumerate(rows) if len(r.split()) != n)
            raise LoadError(f"{where}: bone {name!r} has {len(rows[k].split())} values in frame {frames[k]}, "
                            f"its dof needs {n} (truncated or corrupt file?)")
        return arr.reshape(T, n)

    # Root: translation + rotation channels in the ASF :root order.
    order = skeleton.root_order
    rv = values("root", len(order))
    trans = np.zeros((T, 3))
    rot_cols, rot_axes = [], ""
    for k, ch in enumerate(order):
        if ch[0] == "t":
            trans[:, "xyz".index(ch[1])] = rv[:, k]
        elif ch[0] == "r":
            rot_cols.append(k)
            rot_axes += ch[1]
    C = skeleton.root_axis
    M = _euler(rot_axes, to_rad(rv[:, rot_cols])) if rot_axes else np.broadcast_to(np.eye(3), (T, 3, 3))
    G_root = C @ M @ C.T
    root_pos = trans * skeleton.length_scale + skeleton.root_position

    B = len(skeleton.bones)
    G = np.zeros((T, B, 3, 3))
    end = np.zeros((T, B, 3))
    for b, bone in enumerate(skeleton.bones):
        p = skeleton.parents[b]
        Gp = G_root if p < 0 else G[:, p]
        start = root_pos if p < 0 else end[:, p]
        if bone.dof:
            M = _euler("".join(d[1] for d in bone.dof), to_rad(values(bone.name, len(bone.dof))))
            local = bone.axis @ M @ bone.axis.T
            G[:, b] = Gp @ local
        else:
            G[:, b] = Gp
        end[:, b] = start + G[:, b] @ (bone.direction * bone.length)

    names = ["root"] + skeleton.bone_names()
    parents = np.concatenate([[-1], skeleton.parents + 1])
    positions = np.concatenate([root_pos[:, None], end], axis=1)
    # Report each bone's local axis frame in world axes (G @ C), as a BVH joint frame would be.
    axes = np.stack([b.axis for b in skeleton.bones])
    rotations = np.concatenate([(G_root @ C)[:, None], G @ axes], axis=1)
    return Motion(names, parents, positions, rotations, fps, "cmu_asf", path.stem,
                  {"path": str(path), "skeleton": skeleton.name, "first_frame_number": frames[0]})
