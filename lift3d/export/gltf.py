"""glTF 2.0 export of a ``Rig``: skinned mesh, skeleton and one animation.

The path's extension picks the container: ``.glb`` writes the binary container (JSON and
buffer in one file); ``.gltf`` writes JSON with the buffer embedded as a base64 ``data:`` URI,
so either way one self-contained file is written atomically.

glTF's conventions are lift3d's (metres, right-handed, Y up, the rest body facing +Z), so no
axis or unit conversion happens. Layout of the file:

- nodes 0..J-1 are the joints, in the rig's order (node j = joint j). Their static TRS is the
  world-aligned rest pose: no rotation, translation = the bone offset (the root: its rest
  position). The animation drives every joint's rotation and the root's translation;
- node J holds the skinned mesh (a scene root without a transform, as glTF requires);
- one skin lists the joints with the rig's inverse bind matrices, which reproduce the body
  model's own skinning exactly (``Rig.skinned_vertices`` is the reference);
- one animation, sampled at every frame with LINEAR interpolation.
"""
from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np

from lift3d.export.skeleton import Rig
from lift3d.io_utils import atomic_path

# glTF enums (componentType, bufferView.target)
_UBYTE, _USHORT, _UINT, _FLOAT = 5121, 5123, 5125, 5126
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_GLB_MAGIC, _JSON_CHUNK, _BIN_CHUNK = 0x46546C67, 0x4E4F534A, 0x004E4942
_TYPES = {1: "SCALAR", 3: "VEC3", 4: "VEC4", 16: "MAT4"}


class _Buffer:
    """Collects binary data, bufferViews and accessors for the file's single buffer."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def accessor(self, data: np.ndarray, target: int | None = None, bounds: bool = False) -> int:
        """Append ``data`` (N, C) or (N,) as its own 4-byte aligned bufferView plus accessor.

        Args:
            data: float32 / uint8 / uint16 / uint32 array; C in {1, 3, 4, 16}.
            target: bufferView target for vertex data and indices (None for animation, IBMs).
            bounds: write the accessor's min/max (required for POSITION and animation inputs).
        Returns:
            The accessor index.
        """
        data = np.ascontiguousarray(data)
        ctype = {np.dtype(np.float32): _FLOAT, np.dtype(np.uint8): _UBYTE,
                 np.dtype(np.uint16): _USHORT, np.dtype(np.uint32): _UINT}[data.dtype]
        flat = data.reshape(len(data), -1)
        raw = flat.tobytes()
        view = {"buffer": 0, "byteOffset": self.size, "byteLength": len(raw)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        self.chunks.append(raw + b"\0" * (-len(raw) % 4))
        self.size += len(self.chunks[-1])
        acc = {"bufferView": len(self.views) - 1, "componentType": ctype, "count": len(flat),
               "type": _TYPES[flat.shape[1]]}
        if bounds:
            # Bounds must equal the stored values exactly: take them from the typed array.
            acc["min"] = [v.item() for v in flat.min(axis=0)]
            acc["max"] = [v.item() for v in flat.max(axis=0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def data(self) -> bytes:
        return b"".join(self.chunks)


def _quaternions(R: np.ndarray) -> np.ndarray:
    """(T, J, 3, 3) rotation matrices -> (T, J, 4) unit quaternions, glTF order (x, y, z, w).

    Signs are chosen continuous along T (each frame's quaternion within 90 degrees, in 4D, of
    the previous one), so that interpolating between keys never takes the long way round.
    """
    import roma
    import torch

    T, J = R.shape[:2]
    q = roma.rotmat_to_unitquat(torch.as_tensor(R, dtype=torch.float64)).numpy()  # roma: (x, y, z, w)
    q[0] *= np.where(q[0, :, 3:] < 0, -1.0, 1.0)  # start with w >= 0 (cosmetic)
    flips = np.sum(q[1:] * q[:-1], axis=-1) < 0  # (T-1, J) sign change between neighbours
    sign = np.concatenate([np.ones((1, J)), np.cumprod(np.where(flips, -1.0, 1.0), axis=0)])
    return q * sign[..., None]


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals; +Y for vertices no triangle uses."""
    v = vertices[faces]  # (F, 3, 3)
    fn = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])  # length = twice the triangle area
    n = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        for c in range(3):
            n[:, c] += np.bincount(faces[:, k], weights=fn[:, c], minlength=len(vertices))
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(length > 1e-12, n / np.maximum(length, 1e-12), [0.0, 1.0, 0.0])


def _skin_sets(joints: np.ndarray, weights: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(V, K) joints / weights -> JOINTS_n / WEIGHTS_n sets of 4 (n = ceil(K / 4)).

    Weights are renormalised so their float32 sum is 1 to within float32 rounding (readers and
    the validator check it); slots of zero weight point at joint 0, as the spec asks.
    """
    V, K = weights.shape
    pad = -K % 4
    w = np.concatenate([np.clip(weights, 0.0, None), np.zeros((V, pad))], axis=1)
    j = np.concatenate([joints, np.zeros((V, pad), dtype=joints.dtype)], axis=1)
    w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    w32 = w.astype(np.float32)
    # Put the float32 rounding residue on each vertex's largest weight.
    top = np.argmax(w32, axis=1)
    residue = 1.0 - w32.astype(np.float64).sum(axis=1)
    w32[np.arange(V), top] = (w32[np.arange(V), top] + residue).astype(np.float32)
    j = np.where(w32 > 0, j, 0)
    jtype = np.uint8 if j.max(initial=0) < 256 else np.uint16
    return [(j[:, s:s + 4].astype(jtype), w32[:, s:s + 4]) for s in range(0, K + pad, 4)]


def _mesh(rig: Rig, buf: _Buffer) -> dict:
    """The skinned mesh's glTF ``mesh`` object (its data appended to ``buf``)."""
    faces = np.asarray(rig.faces, dtype=np.int64)
    verts = np.asarray(rig.bind_vertices, dtype=np.float64)
    joints = np.asarray(rig.skin_joints, dtype=np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise ValueError("rig.faces index vertices the mesh does not have")
    if joints.size and (joints.min() < 0 or joints.max() >= rig.num_joints):
        raise ValueError("rig.skin_joints index joints the rig does not have")
    attributes = {
        "POSITION": buf.accessor(verts.astype(np.float32), _ARRAY_BUFFER, bounds=True),
        "NORMAL": buf.accessor(_vertex_normals(verts, faces).astype(np.float32), _ARRAY_BUFFER),
    }
    for n, (j, w) in enumerate(_skin_sets(joints, np.asarray(rig.skin_weights, dtype=np.float64))):
        attributes[f"JOINTS_{n}"] = buf.accessor(j, _ARRAY_BUFFER)
        attributes[f"WEIGHTS_{n}"] = buf.accessor(w, _ARRAY_BUFFER)
    # The largest value of an index type is reserved (primitive restart), hence the strict <.
    itype = np.uint16 if len(verts) < 0xFFFF else np.uint32
    indices = buf.accessor(faces.reshape(-1).astype(itype), _ELEMENT_ARRAY_BUFFER)
    return {"name": "body", "primitives": [{"attributes": attributes, "indices": indices,
                                            "mode": 4}]}


def _inverse_bind(rig: Rig, mesh: bool) -> np.ndarray:
    """(J, 4, 4) the rig's inverse bind matrices for its mesh; without a mesh, the rest pose's
    ([I | -rest_joint]), so importers that guess the bind pose from them see the rest pose."""
    if mesh and rig.inverse_bind is not None:
        ibm = np.array(rig.inverse_bind, dtype=np.float64)
    else:
        ibm = np.tile(np.eye(4), (rig.num_joints, 1, 1))
        ibm[:, :3, 3] = -np.asarray(rig.rest_joints)
    ibm[:, 3] = [0.0, 0.0, 0.0, 1.0]  # exactly affine, as the validator checks
    return ibm


def _animation(rig: Rig, buf: _Buffer) -> dict:
    """One animation: every joint's rotation and the root's translation at every frame."""
    times = (np.arange(rig.num_frames) / rig.fps).astype(np.float32)
    inp = buf.accessor(times, bounds=True)
    quats = _quaternions(np.asarray(rig.rotations, dtype=np.float64)).astype(np.float32)
    root = int(np.flatnonzero(np.asarray(rig.parents) < 0)[0])
    root_path = np.asarray(rig.root_positions, dtype=np.float32)
    outputs = [buf.accessor(quats[:, j]) for j in range(rig.num_joints)] + [buf.accessor(root_path)]
    targets = [(j, "rotation") for j in range(rig.num_joints)] + [(root, "translation")]
    samplers = [{"input": inp, "output": out, "interpolation": "LINEAR"} for out in outputs]
    channels = [{"sampler": i, "target": {"node": node, "path": path}}
                for i, (node, path) in enumerate(targets)]
    return {"name": "motion", "samplers": samplers, "channels": channels}


def _document(rig: Rig, mesh: bool) -> tuple[dict, bytes]:
    """The glTF JSON document and its binary buffer."""
    if rig.num_frames < 1 or not rig.fps > 0:
        raise ValueError("a glTF animation needs at least one frame and a positive fps")
    J, parents = rig.num_joints, np.asarray(rig.parents)
    if len(rig.root_positions) != rig.num_frames or (parents < 0).sum() != 1:
        raise ValueError("the rig needs one root joint and a root position per frame")
    if not (np.isfinite(rig.rotations).all() and np.isfinite(rig.root_positions).all()):
        raise ValueError("the rig's animation has non-finite values")
    mesh = mesh and rig.bind_vertices is not None
    buf = _Buffer()
    offsets = np.asarray(rig.offsets, dtype=np.float64)
    nodes = [{"name": rig.names[j], "translation": [float(x) for x in offsets[j]]}
             for j in range(J)]
    for j in range(J):
        if parents[j] >= 0:
            nodes[parents[j]].setdefault("children", []).append(j)
    root = int(np.flatnonzero(parents < 0)[0])
    # The skin is written even without a mesh: importers (Blender) build an armature from it.
    column_major = _inverse_bind(rig, mesh).transpose(0, 2, 1).reshape(J, 16)
    ibm = buf.accessor(column_major.astype(np.float32))
    doc: dict = {
        "asset": {"version": "2.0", "generator": "lift3d",
                  "extras": {"fps": float(rig.fps), "frames": int(rig.num_frames),
                             "units": "metres", "axes": "right-handed, Y up, body facing +Z"}},
        "scene": 0,
        "scenes": [{"name": "lift3d", "nodes": [root]}],
        "nodes": nodes,
        "skins": [{"name": "skeleton", "joints": list(range(J)), "skeleton": root,
                   "inverseBindMatrices": ibm}],
    }
    if mesh:
        doc["meshes"] = [_mesh(rig, buf)]
        nodes.append({"name": "body", "mesh": 0, "skin": 0})
        doc["scenes"][0]["nodes"].append(J)
    doc["animations"] = [_animation(rig, buf)]
    data = buf.data()
    doc["buffers"] = [{"byteLength": len(data)}]
    doc["bufferViews"], doc["accessors"] = buf.views, buf.accessors
    return doc, data


def _glb(doc: dict, data: bytes) -> bytes:
    """The GLB container: 12-byte header, JSON chunk (space padded), BIN chunk (zero padded)."""
    js = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 4)
    data += b"\0" * (-len(data) % 4)
    total = 12 + 8 + len(js) + 8 + len(data)
    return b"".join([struct.pack("<III", _GLB_MAGIC, 2, total),
                     struct.pack("<II", len(js), _JSON_CHUNK), js,
                     struct.pack("<II", len(data), _BIN_CHUNK), data])


def write_gltf(rig: Rig, path: str | Path, mesh: bool = True, morph_shape: bool = False) -> None:
    """Write ``rig`` as glTF 2.0: binary ``.glb``, or ``.gltf`` JSON with the buffer embedded.

    Args:
        rig: the skinned skeleton and animation (``lift3d.export.rig_from_fit``); metres, Y up.
        path: output file; ``.gltf`` gives JSON text, anything else the GLB container.
        mesh: include the skinned mesh (when the rig has one); False writes the skeleton, its
            skin (inverse bind matrices, so importers still see an armature) and the animation.
        morph_shape: shape blend shapes as morph targets; not supported yet.
    The file appears complete or not at all (written to a temporary name, then renamed).
    """
    if morph_shape:
        raise NotImplementedError("glTF export of shape morph targets is not supported yet")
    path = Path(path)
    doc, data = _document(rig, mesh)
    if path.suffix.lower() == ".gltf":
        doc["buffers"][0]["uri"] = ("data:application/octet-stream;base64,"
                                    + base64.b64encode(data).decode("ascii"))
        payload = json.dumps(doc, indent=1).encode("utf-8")
    else:
        payload = _glb(doc, data)
    with atomic_path(path, suffix=path.suffix) as tmp:
        Path(tmp).write_bytes(payload)
