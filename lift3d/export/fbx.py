"""Binary FBX 7.4 writer (FBX version number 7400, 32-bit record offsets): a skinned mesh, its
skeleton and the skeleton's animation, written by lift3d itself (no Autodesk SDK).

Binary layout
-------------
A file is the 27-byte header (``"Kaydara FBX Binary  \\0"``, bytes 0x1A 0x00, uint32 version),
a list of top-level *node records*, one all-zero node record ending that list, and a footer.
A node record (little-endian, version < 7500) is::

    uint32 end_offset       absolute file offset just past this record (children included)
    uint32 num_properties
    uint32 property_bytes   byte length of the property list
    uint8  name_length, char name[name_length]
    properties              each a one-letter type code, then the value
    children                nested node records, closed by a 13-byte all-zero record

Property codes: C bool (1 byte), Y int16, I int32, L int64, F float32, D float64,
S string / R raw bytes (uint32 length + bytes), and arrays f/d/i/l/b (uint32 count,
uint32 encoding 0 = raw or 1 = zlib, uint32 byte length, data).

Scene
-----
Top-level nodes: FBXHeaderExtension, FileId / CreationTime / Creator, GlobalSettings (axes,
units, frame rate), Documents, References, Definitions (object counts and property
templates), Objects, Connections (the graph: "OO" object-to-object parenting, "OP"
object-to-property, e.g. an animation curve onto the "d|X" channel of a curve node), Takes.
Objects are named ``"<name>\\x00\\x01<class>"`` and identified by int64 ids; id 0 is the scene root.

- Skeleton: a "Null" Model "Armature" at the scene root; under it one "LimbNode" Model per
  joint (each with a LimbNode NodeAttribute). Their static Lcl Translation / Lcl Rotation
  are the rig's rest pose: joint frames aligned with the world axes (rotation 0), translation
  = bone offset.
- Mesh: a "Mesh" Model at the scene root with its Geometry (Vertices, PolygonVertexIndex with
  the last index of each polygon stored as ``-(i + 1)``, per-vertex normals), a "Skin"
  Deformer on the Geometry and one "Cluster" SubDeformer per bone that influences vertices
  (Indexes, Weights, TransformLink = the bone's global matrix at bind time =
  ``inverse(rig.inverse_bind[j])``, Transform = ``inverse(TransformLink) @ mesh global``).
  A "BindPose" Pose lists the bind matrices of all bones (and the identity of mesh and
  armature); a plain grey Material sits on the mesh. Bind and rest differ for Anny (its
  bones' skinning reference orientation is not the world-aligned rest); importers pose bones
  from the animated node transforms, so the skinned result is the body model's own:
  ``v = sum_k w_k J_world[j_k] inverse_bind[j_k] v_bind``. Without a mesh the BindPose holds
  the rest.
- Animation: one AnimationStack "Take 001" with one AnimationLayer; an AnimationCurveNode
  "R" (Lcl Rotation) on every bone and "T" (Lcl Translation) on the root, each with three
  AnimationCurves (one key per frame, linear). KeyTime is in FBX ticks (46186158000 per
  second); rotations are Euler angles in degrees for FBX's default rotation order eEulerXYZ,
  i.e. ``R = Rz @ Ry @ Rx`` acting on column vectors, made continuous from frame to frame.

Axes and units: lift3d's own (Y up, right-handed, the rest body facing +Z), declared in
GlobalSettings as UpAxis = +Y, FrontAxis = +Z, CoordAxis = +X. ``units="cm"`` writes
centimetres (UnitScaleFactor 1, FBX's native unit); ``units="m"`` writes metres
(UnitScaleFactor 100, i.e. one file unit is 100 cm).

What readers make of it (checked in tests/test_export_fbx.py): Blender takes the bind
matrices as its bones' rest (edit-mode) pose, so its rest shows the bind mesh, with Anny's
bones turned by up to ~6 degrees from the world axes; it puts FBX time 0 on frame 1 and keys
at its integer scene rate (a fractional rate such as 12.5 fps lands keys between frames
there). assimp turns the Euler curves into quaternion keys.
"""
from __future__ import annotations

import struct
import time
import warnings
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from lift3d import __version__
from lift3d.export.skeleton import Rig, continuous_euler
from lift3d.io_utils import atomic_path

FBX_VERSION = 7400
TICKS_PER_SECOND = 46_186_158_000

_HEADER = b"Kaydara FBX Binary  \x00\x1a\x00" + struct.pack("<I", FBX_VERSION)
_NULL_RECORD = b"\x00" * 13  # 3 uint32 + 1 uint8, all zero (version < 7500)
# FileId, CreationTime and the footer id are tied together by the SDK in an undocumented way;
# this triple is the known-good one other independent writers use.
_FILE_ID = bytes.fromhex("28b32aebb624ccc2bfc8b02aa92bfcf1")
_CREATION_TIME = "1970-01-01 10:00:00:000"
_FOOTER_ID = bytes.fromhex("fabcab09d0c8d466b176fb831cf7267e")
_FOOTER_MAGIC = bytes.fromhex("f85a8c6adef5d97eece90ce3758f290b")

_UNIT_SCALE = {"cm": 100.0, "m": 1.0}  # file units per metre
# FBX TimeMode enum values of the standard rates; others use eCustom (14) + CustomFrameRate.
_TIME_MODES = {120.0: 1, 100.0: 2, 60.0: 3, 50.0: 4, 48.0: 5, 30.0: 6, 25.0: 10, 24.0: 11,
               96.0: 15, 72.0: 16}
_TIME_MODE_CUSTOM = 14
_TAKE = "Take 001"

# AnimationCurve key attributes: interpolation linear (0x4) | tangent auto (0x100) | generic
# time-independent (0x2000) | clamp progressive (0x4000).
_KEY_FLAGS_LINEAR = 0x4 | 0x100 | 0x2000 | 0x4000
# Per-key data (right slope, next-left slope, packed tangent weights, packed velocities): the
# SDK's defaults, the packed word stored bit-for-bit in the float; linear keys ignore them.
_KEY_DATA = np.array([0, 0, 0x0F3F0F3F, 0], dtype=np.uint32).view(np.float32)


# --------------------------------------------------------------------- binary node records

class _Node:
    """One FBX node: a name, typed values (see ``_encode_value``) and child nodes.
    ``block``: write the child list even when it is empty, as objects need (ASCII FBX's
    ``{ }``; assimp refuses e.g. an AnimationLayer without one)."""

    __slots__ = ("name", "values", "children", "block")

    def __init__(self, name: str, *values, block: bool = False):
        self.name, self.values, self.children, self.block = name, values, [], block

    def add(self, name: str, *values, block: bool = False) -> "_Node":
        """Append a child node and return it."""
        child = _Node(name, *values, block=block)
        self.children.append(child)
        return child


_ARRAY_CODES = {np.dtype(np.float32): b"f", np.dtype(np.float64): b"d",
                np.dtype(np.int32): b"i", np.dtype(np.int64): b"l", np.dtype(np.bool_): b"b"}


def _encode_value(v) -> bytes:
    """One property: Python bool -> C, int -> I (int32), float -> D, str -> S, bytes -> R;
    np.int64 -> L, np.float32 -> F, np.int16 -> Y; numpy arrays -> f/d/i/l/b by dtype."""
    if isinstance(v, (bool, np.bool_)):
        return b"C" + bytes([bool(v)])
    if isinstance(v, np.ndarray):
        return _encode_array(v)
    if isinstance(v, np.int64):
        return b"L" + struct.pack("<q", v)
    if isinstance(v, np.int16):
        return b"Y" + struct.pack("<h", v)
    if isinstance(v, np.float32):
        return b"F" + struct.pack("<f", v)
    if isinstance(v, int):
        return b"I" + struct.pack("<i", v)  # struct refuses values outside int32
    if isinstance(v, float):
        return b"D" + struct.pack("<d", v)
    if isinstance(v, str):
        v = v.encode("utf-8")
        return b"S" + struct.pack("<I", len(v)) + v
    if isinstance(v, bytes):
        return b"R" + struct.pack("<I", len(v)) + v
    raise TypeError(f"no FBX property type for {type(v).__name__}")


def _encode_array(a: np.ndarray) -> bytes:
    """Array property, zlib-compressed (encoding 1) when that makes it smaller."""
    code = _ARRAY_CODES[a.dtype]
    data = np.ascontiguousarray(a.reshape(-1), dtype=a.dtype.newbyteorder("<")).tobytes()
    encoding = 0
    if len(data) > 64:
        packed = zlib.compress(data, 6)
        if len(packed) < len(data):
            data, encoding = packed, 1
    return code + struct.pack("<III", a.size, encoding, len(data)) + data


def _encode_node(node: _Node, start: int) -> bytes:
    """The record of ``node`` (and its children) beginning at absolute file offset ``start``."""
    props = b"".join(_encode_value(v) for v in node.values)
    name = node.name.encode("ascii")
    pos = start + 13 + len(name) + len(props)
    parts = []
    for child in node.children:
        parts.append(_encode_node(child, pos))
        pos += len(parts[-1])
    if node.children or node.block or not node.values:  # a child list ends in a null record
        parts.append(_NULL_RECORD)
        pos += len(_NULL_RECORD)
    if pos >= 2**32:
        raise ValueError("FBX 7.4 files are limited to 4 GiB")
    head = struct.pack("<IIIB", pos, len(node.values), len(props), len(name))
    return head + name + props + b"".join(parts)


def _encode_file(nodes: list[_Node]) -> bytes:
    """Header, top-level records, the closing null record and the footer."""
    parts, pos = [_HEADER], len(_HEADER)
    for node in nodes:
        parts.append(_encode_node(node, pos))
        pos += len(parts[-1])
    parts += [_NULL_RECORD, _FOOTER_ID]
    pos += len(_NULL_RECORD) + len(_FOOTER_ID)
    # Footer: zero padding to a 16-byte boundary (a full 16 when already aligned), 4 zero
    # bytes, the version again, 120 zero bytes, a fixed magic.
    parts += [b"\x00" * (16 - pos % 16), b"\x00" * 4, struct.pack("<I", FBX_VERSION),
              b"\x00" * 120, _FOOTER_MAGIC]
    return b"".join(parts)


# --------------------------------------------------------------------- property helpers

def _p(props70: _Node, name: str, kind: str, label: str, flags: str, *values) -> None:
    """One Properties70 entry: P: name, type, label, flags ("A" = animatable), value(s)."""
    props70.add("P", name, kind, label, flags, *values)


def _p_vec(props70: _Node, name: str, v, kind: str | None = None, flags: str = "A") -> None:
    _p(props70, name, kind or name, "", flags, *(float(x) for x in v))


def _matrix(m: np.ndarray) -> np.ndarray:
    """(4, 4) column-vector matrix -> FBX's 16 doubles, column-major (translation at 12..14)."""
    return np.asarray(m, dtype=np.float64).T.reshape(-1).copy()


# --------------------------------------------------------------------- the scene graph

class _Scene:
    """The Objects and Connections sections being built, with per-type object counts."""

    def __init__(self):
        self.objects = _Node("Objects")
        self.connections = _Node("Connections")
        self.counts: Counter[str] = Counter()
        self._next_id = 1_000_000  # any unique non-zero int64; 0 is the scene root

    def new(self, kind: str, name: str, cls: str, subclass: str) -> tuple[int, _Node]:
        """Add an object node ``kind: id, "name\\x00\\x01cls", subclass``."""
        self._next_id += 1
        self.counts[kind] += 1
        node = self.objects.add(kind, np.int64(self._next_id), f"{name}\x00\x01{cls}", subclass,
                                block=True)
        return self._next_id, node

    def connect(self, child: int, parent: int, prop: str | None = None) -> None:
        if prop is None:
            self.connections.add("C", "OO", np.int64(child), np.int64(parent))
        else:
            self.connections.add("C", "OP", np.int64(child), np.int64(parent), prop)


def _model(scene: _Scene, name: str, subclass: str, translation=(0.0, 0.0, 0.0)) -> int:
    """A Model (scene node), unrotated, at ``translation`` from its parent."""
    mid, node = scene.new("Model", name, "Model", subclass)
    node.add("Version", 232)
    props = node.add("Properties70")
    _p(props, "RotationActive", "bool", "", "", 1)
    _p(props, "InheritType", "enum", "", "", 1)  # eInheritRSrs, Maya's (nothing is scaled here)
    _p(props, "DefaultAttributeIndex", "int", "Integer", "", 0)
    _p_vec(props, "Lcl Translation", translation)
    _p_vec(props, "Lcl Rotation", (0.0, 0.0, 0.0))
    _p_vec(props, "Lcl Scaling", (1, 1, 1))
    node.add("Shading", True)
    node.add("Culling", "CullingOff")
    return mid


def _node_attribute(scene: _Scene, model: int, name: str, subclass: str, flags: str) -> None:
    aid, node = scene.new("NodeAttribute", name, "NodeAttribute", subclass)
    node.add("TypeFlags", flags)
    scene.connect(aid, model)


def _add_skeleton(scene: _Scene, rig: Rig, scale: float) -> tuple[int, list[int]]:
    """The armature Null and one LimbNode per joint in the world-aligned rest pose.
    Returns (armature id, (J,) bone ids)."""
    armature = _model(scene, "Armature", "Null")
    _node_attribute(scene, armature, "Armature", "Null", "Null")
    scene.connect(armature, 0)
    bones: list[int] = []
    for j, (name, offset) in enumerate(zip(rig.names, rig.offsets * scale)):
        bone = _model(scene, name, "LimbNode", translation=offset)
        _node_attribute(scene, bone, name, "LimbNode", "Skeleton")
        scene.connect(bone, armature if rig.parents[j] < 0 else bones[rig.parents[j]])
        bones.append(bone)
    return armature, bones


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(n, faces[:, k], face_n)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _add_geometry(scene: _Scene, rig: Rig, scale: float) -> int:
    """The mesh in its bind pose: vertices, triangles, per-vertex normals, one material slot."""
    gid, geom = scene.new("Geometry", "Body", "Geometry", "Mesh")
    geom.add("Properties70")
    geom.add("GeometryVersion", 124)
    geom.add("Vertices", (rig.bind_vertices * scale).astype(np.float64))
    polygon = rig.faces.astype(np.int32).copy()
    polygon[:, -1] = ~polygon[:, -1]  # the last corner of a polygon is stored as -(i + 1)
    geom.add("PolygonVertexIndex", polygon)
    normals = geom.add("LayerElementNormal", 0)
    normals.add("Version", 101)
    normals.add("Name", "")
    normals.add("MappingInformationType", "ByVertice")  # sic: FBX's spelling
    normals.add("ReferenceInformationType", "Direct")
    normals.add("Normals", _vertex_normals(rig.bind_vertices, rig.faces).astype(np.float64))
    materials = geom.add("LayerElementMaterial", 0)  # material 0 on every polygon
    materials.add("Version", 101)
    materials.add("Name", "")
    materials.add("MappingInformationType", "AllSame")
    materials.add("ReferenceInformationType", "IndexToDirect")
    materials.add("Materials", np.zeros(1, dtype=np.int32))
    layer = geom.add("Layer", 0)  # layer 0 gathers the elements above
    layer.add("Version", 100)
    for kind in ("LayerElementNormal", "LayerElementMaterial"):
        element = layer.add("LayerElement")
        element.add("Type", kind)
        element.add("TypedIndex", 0)
    return gid


def _add_skin(scene: _Scene, rig: Rig, geometry: int, bones: list[int], bind: np.ndarray) -> None:
    """A Skin deformer on ``geometry`` with one Cluster per bone that moves vertices.
    ``bind``: (J, 4, 4) bone global matrices at bind time (file units); the mesh's own global
    matrix is the identity."""
    sid, skin = scene.new("Deformer", "Body", "Deformer", "Skin")
    skin.add("Version", 101)
    skin.add("Link_DeformAcuracy", 50.0)
    skin.add("SkinningType", "Linear")
    scene.connect(sid, geometry)
    for j, bone in enumerate(bones):
        vertex, slot = np.nonzero((rig.skin_joints == j) & (rig.skin_weights > 0))
        if len(vertex) == 0:
            continue  # its bind matrix is in the BindPose all the same
        cid, cluster = scene.new("Deformer", rig.names[j], "SubDeformer", "Cluster")
        cluster.add("Version", 100)
        cluster.add("UserData", "", "")
        cluster.add("Indexes", vertex.astype(np.int32))
        cluster.add("Weights", rig.skin_weights[vertex, slot].astype(np.float64))
        # Stored relative to the bone (inverse(TransformLink) @ mesh global), although the
        # SDK's GetTransformMatrix returns the mesh's global matrix.
        cluster.add("Transform", _matrix(np.linalg.inv(bind[j])))
        cluster.add("TransformLink", _matrix(bind[j]))
        cluster.add("TransformAssociateModel", _matrix(np.eye(4)))  # the armature's global
        scene.connect(cid, sid)
        scene.connect(bone, cid)


def _add_mesh(scene: _Scene, rig: Rig, scale: float, bones: list[int], bind: np.ndarray) -> int:
    """The skinned mesh Model at the scene root, with a plain grey material (so that every
    tool shows it alike). Returns the Model's id."""
    geometry = _add_geometry(scene, rig, scale)
    mesh = _model(scene, "Body", "Mesh")
    scene.connect(geometry, mesh)
    scene.connect(mesh, 0)
    mid, material = scene.new("Material", "Body", "Material", "")
    material.add("Version", 102)
    material.add("ShadingModel", "lambert")
    material.add("MultiLayer", 0)
    _p_vec(material.add("Properties70"), "DiffuseColor", (0.8, 0.8, 0.8), "Color")
    scene.connect(mid, mesh)
    _add_skin(scene, rig, geometry, bones, bind)
    return mesh


def _add_bind_pose(scene: _Scene, matrices: dict[int, np.ndarray]) -> None:
    """A "BindPose" Pose: the global matrix at bind time of each listed Model id."""
    _, pose = scene.new("Pose", "BindPose", "Pose", "BindPose")
    pose.add("Type", "BindPose")
    pose.add("Version", 100)
    pose.add("NbPoseNodes", len(matrices))
    for model, m in matrices.items():
        node = pose.add("PoseNode")
        node.add("Node", np.int64(model))
        node.add("Matrix", _matrix(m))


def euler_xyz(rotations: np.ndarray) -> np.ndarray:
    """(T, J, 3, 3) rotation matrices -> (T, J, 3) Euler angles (x, y, z) in degrees for FBX's
    eEulerXYZ order, ``R = Rz(z) @ Ry(y) @ Rx(x)`` on column vectors (scipy's intrinsic "ZYX",
    reversed), continuous from frame to frame (see ``skeleton.continuous_euler``)."""
    with warnings.catch_warnings():  # gimbal lock (y = +-90): any of the equivalent triples is right
        warnings.simplefilter("ignore", UserWarning)
        return continuous_euler(rotations, "ZYX")[..., ::-1].copy()


def _add_curve_node(scene: _Scene, layer: int, model: int, prop: str, label: str,
                    times: np.ndarray, values: np.ndarray) -> None:
    """An AnimationCurveNode driving ``prop`` of ``model`` with one curve per axis.
    ``times``: (T,) int64 ticks; ``values``: (T, 3)."""
    cnid, node = scene.new("AnimationCurveNode", label, "AnimCurveNode", "")
    props = node.add("Properties70")
    for k, axis in enumerate("XYZ"):
        _p(props, f"d|{axis}", "Number", "", "A", float(values[0, k]))
    scene.connect(cnid, layer)
    scene.connect(cnid, model, prop)
    refcount = np.array([len(times)], dtype=np.int32)
    for k, axis in enumerate("XYZ"):
        cid, curve = scene.new("AnimationCurve", "", "AnimCurve", "")
        curve.add("Default", float(values[0, k]))
        curve.add("KeyVer", 4009)
        curve.add("KeyTime", times)
        curve.add("KeyValueFloat", values[:, k].astype(np.float32))
        # One attribute set shared by all keys (KeyAttrRefCount = number of keys using it).
        curve.add("KeyAttrFlags", np.array([_KEY_FLAGS_LINEAR], dtype=np.int32))
        curve.add("KeyAttrDataFloat", _KEY_DATA)
        curve.add("KeyAttrRefCount", refcount)
        scene.connect(cid, cnid, f"d|{axis}")


def _add_animation(scene: _Scene, rig: Rig, scale: float, bones: list[int],
                   times: np.ndarray) -> None:
    """Take 001: root translation and every bone's rotation, one key per frame."""
    stack, node = scene.new("AnimationStack", _TAKE, "AnimStack", "")
    props = node.add("Properties70")
    for name in ("LocalStart", "ReferenceStart"):
        _p(props, name, "KTime", "Time", "", times[0])
    for name in ("LocalStop", "ReferenceStop"):
        _p(props, name, "KTime", "Time", "", times[-1])
    layer, _ = scene.new("AnimationLayer", "BaseLayer", "AnimLayer", "")
    scene.connect(layer, stack)
    euler = euler_xyz(rig.rotations)
    _add_curve_node(scene, layer, bones[0], "Lcl Translation", "T", times, rig.root_positions * scale)
    for j, bone in enumerate(bones):
        _add_curve_node(scene, layer, bone, "Lcl Rotation", "R", times, euler[:, j])


# --------------------------------------------------------------------- file sections

def _header(creator: str) -> list[_Node]:
    ext = _Node("FBXHeaderExtension")
    ext.add("FBXHeaderVersion", 1003)
    ext.add("FBXVersion", FBX_VERSION)
    ext.add("EncryptionType", 0)
    now = time.localtime()
    stamp = ext.add("CreationTimeStamp")
    for key, value in [("Version", 1000), ("Year", now.tm_year), ("Month", now.tm_mon),
                       ("Day", now.tm_mday), ("Hour", now.tm_hour), ("Minute", now.tm_min),
                       ("Second", now.tm_sec), ("Millisecond", 0)]:
        stamp.add(key, value)
    ext.add("Creator", creator)
    return [ext, _Node("FileId", _FILE_ID), _Node("CreationTime", _CREATION_TIME),
            _Node("Creator", creator)]


def _global_settings(units: str, fps: float, start: np.int64, stop: np.int64) -> _Node:
    node = _Node("GlobalSettings")
    node.add("Version", 1000)
    props = node.add("Properties70")
    # Y up, +Z front, +X right: lift3d's own axes, so nothing is converted.
    for name, value in [("UpAxis", 1), ("UpAxisSign", 1), ("FrontAxis", 2), ("FrontAxisSign", 1),
                        ("CoordAxis", 0), ("CoordAxisSign", 1), ("OriginalUpAxis", 1),
                        ("OriginalUpAxisSign", 1)]:
        _p(props, name, "int", "Integer", "", value)
    unit_cm = 100.0 / _UNIT_SCALE[units]  # centimetres per file unit
    _p(props, "UnitScaleFactor", "double", "Number", "", unit_cm)
    _p(props, "OriginalUnitScaleFactor", "double", "Number", "", unit_cm)
    _p(props, "AmbientColor", "ColorRGB", "Color", "", 0.0, 0.0, 0.0)
    _p(props, "DefaultCamera", "KString", "", "", "Producer Perspective")
    mode = next((m for rate, m in _TIME_MODES.items() if abs(rate - fps) < 1e-6), _TIME_MODE_CUSTOM)
    _p(props, "TimeMode", "enum", "", "", mode)
    _p(props, "TimeProtocol", "enum", "", "", 2)
    _p(props, "SnapOnFrameMode", "enum", "", "", 0)
    _p(props, "TimeSpanStart", "KTime", "Time", "", start)
    _p(props, "TimeSpanStop", "KTime", "Time", "", stop)
    _p(props, "CustomFrameRate", "double", "Number", "", float(fps))
    _p(props, "CurrentTimeMarker", "int", "Integer", "", -1)
    return node


def _documents() -> list[_Node]:
    docs = _Node("Documents")
    docs.add("Count", 1)
    doc = docs.add("Document", np.int64(1), "Scene", "Scene")
    props = doc.add("Properties70")
    _p(props, "SourceObject", "object", "", "")
    _p(props, "ActiveAnimStackName", "KString", "", "", _TAKE)
    doc.add("RootNode", np.int64(0))
    return [docs, _Node("References")]


def _definitions(counts: Counter[str]) -> _Node:
    """Object counts per type, with property templates (defaults) for the main ones."""
    defs = _Node("Definitions")
    defs.add("Version", 100)
    defs.add("Count", sum(counts.values()) + 1)
    defs.add("ObjectType", "GlobalSettings").add("Count", 1)
    for kind, count in counts.items():
        obj = defs.add("ObjectType", kind)
        obj.add("Count", count)
        if kind == "Model":  # FbxNode defaults, as the SDK has them
            props = obj.add("PropertyTemplate", "FbxNode").add("Properties70")
            _p(props, "RotationOrder", "enum", "", "", 0)
            _p(props, "RotationActive", "bool", "", "", 0)
            _p(props, "InheritType", "enum", "", "", 0)
            _p(props, "Visibility", "Visibility", "", "A", 1.0)
            _p(props, "DefaultAttributeIndex", "int", "Integer", "", -1)
            _p_vec(props, "Lcl Translation", (0, 0, 0))
            _p_vec(props, "Lcl Rotation", (0, 0, 0))
            _p_vec(props, "Lcl Scaling", (1, 1, 1))
        elif kind == "AnimationCurveNode":
            props = obj.add("PropertyTemplate", "FbxAnimCurveNode").add("Properties70")
            _p(props, "d", "Compound", "", "")
        elif kind == "AnimationLayer":
            props = obj.add("PropertyTemplate", "FbxAnimLayer").add("Properties70")
            _p(props, "Weight", "Number", "", "A", 100.0)
            _p(props, "Mute", "bool", "", "", 0)
    return defs


def _takes(start: np.int64, stop: np.int64) -> _Node:
    takes = _Node("Takes")
    takes.add("Current", _TAKE)
    take = takes.add("Take", _TAKE)
    take.add("FileName", _TAKE.replace(" ", "_") + ".tak")
    take.add("LocalTime", start, stop)
    take.add("ReferenceTime", start, stop)
    return takes


def write_fbx(rig: Rig, path: str | Path, units: str = "cm", mesh: bool = True) -> None:
    """Write ``rig`` as a binary FBX 7.4 file: skeleton, animation and (optionally) the skinned
    mesh. See the module docstring for the layout and conventions.

    Args:
        rig: the rig (metres, lift3d axes: Y up, facing +Z).
        path: output file, written atomically (a failed write leaves any previous file as
            it was and no partial one).
        units: "cm" (FBX's native unit, what most tools expect) or "m"; either way importers
            that honour UnitScaleFactor show the same size.
        mesh: write the skinned mesh (the rig must have one); False: skeleton and animation.
    """
    if units not in _UNIT_SCALE:
        raise ValueError(f"unknown FBX units {units!r}: use 'cm' or 'm'")
    if mesh and rig.bind_vertices is None:
        raise ValueError("this rig has no mesh: build it with rig_from_fit(..., mesh=True) "
                         "or write the skeleton only (mesh=False)")
    if rig.num_frames < 1:
        raise ValueError("the rig has no frames")
    scale = _UNIT_SCALE[units]

    scene = _Scene()
    armature, bones = _add_skeleton(scene, rig, scale)
    # Bones' global matrices at bind time: the skin's bind when there is a mesh, else the rest.
    if mesh:
        bind = np.linalg.inv(rig.inverse_bind)
    else:
        bind = np.tile(np.eye(4), (rig.num_joints, 1, 1))
        bind[:, :3, 3] = rig.rest_joints
    bind[:, :3, 3] *= scale
    pose = {armature: np.eye(4)} | dict(zip(bones, bind))
    if mesh:
        pose[_add_mesh(scene, rig, scale, bones, bind)] = np.eye(4)
    _add_bind_pose(scene, pose)
    times = np.rint(np.arange(rig.num_frames) * (TICKS_PER_SECOND / rig.fps)).astype(np.int64)
    _add_animation(scene, rig, scale, bones, times)

    nodes = [*_header(f"lift3d {__version__}"),
             _global_settings(units, float(rig.fps), times[0], times[-1]),
             *_documents(), _definitions(scene.counts), scene.objects, scene.connections,
             _takes(times[0], times[-1])]
    data = _encode_file(nodes)
    with atomic_path(path, suffix=".fbx") as tmp:
        Path(tmp).write_bytes(data)
