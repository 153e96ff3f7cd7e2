"""The animated, skinned skeleton that every exporter writes (BVH, FBX, glTF).

A ``Rig`` holds one person of a ``BodyFit`` in the plainest form animation files can carry:

- joints in parent-before-child order, each with a frame **aligned with the world axes in the
  rest pose**, so a file's local rotation of joint j at frame t is exactly the fit's
  ``pose[t, j]`` and its bone offset is the difference of rest joint positions (the fitted
  shape's bone lengths);
- the root joint's world position per frame (root motion);
- the mesh in its bind pose with linear-blend skin weights and inverse bind matrices that
  reproduce the body model's own skinning exactly (see ``BodyModel.bind``).

Units are metres and the axes are lift3d's (right-handed, Y up, the rest body facing +Z);
each writer converts to its format's units and axes and says so in the file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial.transform import Rotation

# Standard humanoid names for the Anny rig's bones, so engines' automatic humanoid mapping
# (Unity Humanoid, Unreal's IK retargeter, Blender's Rigify/Auto-Rig tools) works without a
# hand-made bone map. Bones a naming has no slot for keep their own name (sanitised).
_SIDES = {"L": ("Left", "l"), "R": ("Right", "r")}
_FINGERS = ["Thumb", "Index", "Middle", "Ring", "Pinky"]
_UE_FINGERS = ["thumb", "index", "middle", "ring", "pinky"]


def _anny_humanoid(naming: str) -> dict[str, str]:
    if naming == "mixamo":
        names = {"root": "Hips", "spine05": "Spine", "spine03": "Spine1", "spine01": "Spine2",
                 "neck01": "Neck", "head": "Head"}
        limbs = {"upperleg01": "UpLeg", "lowerleg01": "Leg", "foot": "Foot", "toe1-1": "ToeBase",
                 "clavicle": "Shoulder", "upperarm01": "Arm", "lowerarm01": "ForeArm",
                 "wrist": "Hand", "eye": "Eye"}
        for side, (long, _) in _SIDES.items():
            names |= {f"{k}.{side}": f"{long}{v}" for k, v in limbs.items()}
            for f, finger in enumerate(_FINGERS):
                names |= {f"finger{f + 1}-{i}.{side}": f"{long}Hand{finger}{i}" for i in (1, 2, 3)}
        return {k: "mixamorig:" + v for k, v in names.items()}
    if naming == "unity":
        names = {"root": "Hips", "spine05": "Spine", "spine03": "Chest", "spine01": "UpperChest",
                 "neck01": "Neck", "head": "Head"}
        limbs = {"upperleg01": "UpperLeg", "lowerleg01": "LowerLeg", "foot": "Foot",
                 "toe1-1": "Toes", "clavicle": "Shoulder", "upperarm01": "UpperArm",
                 "lowerarm01": "LowerArm", "wrist": "Hand", "eye": "Eye"}
        phalanx = ["Proximal", "Intermediate", "Distal"]
        for side, (long, _) in _SIDES.items():
            names |= {f"{k}.{side}": f"{long}{v}" for k, v in limbs.items()}
            for f, finger in enumerate(_FINGERS):
                names |= {f"finger{f + 1}-{i + 1}.{side}": f"{long}{finger}{p}"
                          for i, p in enumerate(phalanx)}
        return names
    if naming == "ue":  # UE5 Manny / Quinn
        names = {"root": "pelvis", "spine05": "spine_01", "spine04": "spine_02",
                 "spine03": "spine_03", "spine02": "spine_04", "spine01": "spine_05",
                 "neck01": "neck_01", "neck02": "neck_02", "head": "head"}
        limbs = {"upperleg01": "thigh", "upperleg02": "thigh_twist_01", "lowerleg01": "calf",
                 "lowerleg02": "calf_twist_01", "foot": "foot", "toe1-1": "ball",
                 "clavicle": "clavicle", "upperarm01": "upperarm", "upperarm02": "upperarm_twist_01",
                 "lowerarm01": "lowerarm", "lowerarm02": "lowerarm_twist_01", "wrist": "hand"}
        for side, (_, short) in _SIDES.items():
            names |= {f"{k}.{side}": f"{v}_{short}" for k, v in limbs.items()}
            for f, finger in enumerate(_UE_FINGERS):
                names |= {f"finger{f + 1}-{i}.{side}": f"{finger}_0{i}_{short}" for i in (1, 2, 3)}
        return names
    raise ValueError(f"unknown bone naming {naming!r}: use 'model', 'mixamo', 'unity' or 'ue'")


NAMINGS = ("model", "mixamo", "unity", "ue")


def continuous_euler(rotations: np.ndarray, order: str) -> np.ndarray:
    """Euler angles that change smoothly over time.

    Args:
        rotations: (T, ..., 3, 3) rotation matrices, T along the first axis.
        order: intrinsic axis order for scipy, e.g. "ZXY" (R = Rz @ Rx @ Ry).
    Returns:
        (T, ..., 3) angles in degrees, in ``order``. Each frame takes whichever of the two
        equivalent angle triplets lies closer to the previous frame's, then whole turns are
        unwrapped, so curve interpolation never spins the long way round.
    """
    shape = rotations.shape[:-2]
    a = Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_euler(order, degrees=True).reshape(*shape, 3)
    # (a, b, c) and (a + 180, 180 - b, c + 180) are the same rotation for Tait-Bryan orders
    # (three different axes).
    alt = np.stack([a[..., 0] + 180.0, 180.0 - a[..., 1], a[..., 2] + 180.0], axis=-1)
    alt = (alt + 180.0) % 360.0 - 180.0
    out = np.empty_like(a)
    out[0] = a[0]
    for t in range(1, shape[0]):
        prev = out[t - 1]
        cand = []
        for c in (a[t], alt[t]):
            c = c + 360.0 * np.round((prev - c) / 360.0)  # nearest whole-turn copy
            cand.append(c)
        pick_alt = np.abs(cand[1] - prev).sum(-1) < np.abs(cand[0] - prev).sum(-1)
        out[t] = np.where(pick_alt[..., None], cand[1], cand[0])
    return out



def bone_names(names: list[str], naming: str = "model") -> list[str]:
    """Rename a body model's bones for a target tool.

    Args:
        names: (J,) the body model's joint names.
        naming: "model" (the model's own names, made file-safe), "mixamo" ("mixamorig:Hips"),
            "unity" (Unity Humanoid: "LeftUpperArm") or "ue" (UE5 Mannequin: "upperarm_l").
    Returns:
        (J,) unique names containing only letters, digits, '_', '-' and ':'.
    """
    table = {} if naming == "model" else _anny_humanoid(naming)
    out = [table.get(n) or re.sub(r"[^A-Za-z0-9_:\-]", "_", n) for n in names]
    if len(set(out)) != len(out):
        raise ValueError(f"bone naming {naming!r} gives duplicate names")
    return out


@dataclass
class Rig:
    """A skinned skeleton and its animation (one person). See the module docstring.

    Attributes:
        names: (J,) bone names.
        parents: (J,) parent index, -1 for the root; parents come before their children.
        rest_joints: (J, 3) joint positions in the rest pose (world-aligned joint frames).
        rotations: (T, J, 3, 3) local joint rotations (joint 0: global orientation).
        root_positions: (T, 3) world position of joint 0 at each frame.
        fps: frames per second.
        bind_vertices: (V, 3) mesh the skin applies to, or None for a skeleton only.
        faces: (F, 3) triangles.
        skin_joints, skin_weights: (V, K) the K most influential joints of each vertex and
            their weights (rows sum to 1).
        inverse_bind: (J, 4, 4) inverse bind matrices.
    """

    names: list[str]
    parents: np.ndarray
    rest_joints: np.ndarray
    rotations: np.ndarray
    root_positions: np.ndarray
    fps: float
    bind_vertices: np.ndarray | None = None
    faces: np.ndarray | None = None
    skin_joints: np.ndarray | None = None
    skin_weights: np.ndarray | None = None
    inverse_bind: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return self.rotations.shape[0]

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def offsets(self) -> np.ndarray:
        """(J, 3) each joint's rest position relative to its parent (the root: absolute)."""
        par = np.maximum(self.parents, 0)
        off = self.rest_joints - self.rest_joints[par]
        off[self.parents < 0] = self.rest_joints[self.parents < 0]
        return off

    def world_transforms(self) -> np.ndarray:
        """(T, J, 4, 4) posed world transform [R_j | p_j] of every joint frame."""
        T, J = self.num_frames, self.num_joints
        out = np.zeros((T, J, 4, 4))
        out[..., 3, 3] = 1.0
        off = self.offsets
        for j in range(J):
            p = self.parents[j]
            if p < 0:
                out[:, j, :3, :3] = self.rotations[:, j]
                out[:, j, :3, 3] = self.root_positions
            else:
                out[:, j, :3, :3] = out[:, p, :3, :3] @ self.rotations[:, j]
                out[:, j, :3, 3] = out[:, p, :3, 3] + out[:, p, :3, :3] @ off[j]
        return out

    def joint_positions(self) -> np.ndarray:
        """(T, J, 3) posed world joint positions."""
        return self.world_transforms()[..., :3, 3]

    def skinned_vertices(self, frames: slice | list[int] | None = None) -> np.ndarray:
        """(T', V, 3) the mesh posed by linear blend skinning (what an importer shows)."""
        if self.bind_vertices is None:
            raise ValueError("this rig has no mesh")
        sub = self if frames is None else replace(self, rotations=self.rotations[frames],
                                                  root_positions=self.root_positions[frames])
        M = sub.world_transforms() @ self.inverse_bind
        vb = np.concatenate([self.bind_vertices, np.ones((len(self.bind_vertices), 1))], axis=1)
        per = np.einsum("tvkxy,vy->tvkx", M[:, self.skin_joints], vb)[..., :3]  # (T, V, K, 3)
        return np.einsum("tvkx,vk->tvx", per, self.skin_weights)

    def renamed(self, naming: str) -> "Rig":
        """The same rig with bones named for a target tool (see ``bone_names``)."""
        return replace(self, names=bone_names(self.names, naming))


# A camera-frame fit (OpenCV axes: y down, z forward) is turned 180 degrees about x for export,
# so the body stands upright (Y up) and faces +Z, as animation tools expect.
CAMERA_TO_EXPORT = np.diag([1.0, -1.0, -1.0])


def export_axes(fit) -> np.ndarray:
    """(3, 3) rotation from a fit's frame to the exported files' Y-up frame: identity for a
    world fit (already Y up, floor at y = 0), ``CAMERA_TO_EXPORT`` for a camera-frame fit."""
    return np.eye(3) if fit.frame == "world" else CAMERA_TO_EXPORT


def _top_weights(weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(V, J) dense weights -> (V, k) joint indices and renormalised weights, largest first."""
    idx = np.argsort(-weights, axis=1)[:, :k]
    w = np.take_along_axis(weights, idx, axis=1)
    w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    return idx.astype(np.int64), w


def rig_from_fit(fit, person: int = 0, naming: str = "model", mesh: bool = True,
                 max_influences: int = 8, model=None) -> Rig:
    """Build the export rig of one person of a ``BodyFit``.

    Args:
        fit: a ``lift3d.BodyFit``.
        person: which person.
        naming: bone names, see ``bone_names``.
        mesh: include the skinned mesh (False: skeleton only, as for BVH).
        max_influences: joints kept per vertex (Anny uses up to 9; glTF readers take 4 per
            set, so the glTF writer splits into sets of 4).
        model: the body model, if already built.
    Returns:
        A ``Rig`` in metres: in the fit's world frame, or for a camera-frame fit in the camera
        frame turned upright (``export_axes``).
    """
    import torch

    model = model or fit.body_model()
    shape = torch.as_tensor(fit.shape[person], dtype=model.dtype)[None]
    with torch.no_grad():
        rest_joints, bind_vertices, inverse_bind = model.bind(shape)
        weights = model.skin_weights() if mesh else None
    rest_joints = rest_joints.double().cpu().numpy()
    parents = np.asarray(model.parents, dtype=np.int64)
    if np.any(parents >= np.arange(len(parents))):
        raise ValueError("body model joints must list parents before children")
    C = export_axes(fit)
    rotations = fit.pose[:, person].copy()
    rotations[:, 0] = C @ rotations[:, 0]
    rig = Rig(names=list(model.joint_names), parents=parents, rest_joints=rest_joints,
              rotations=rotations, root_positions=(rest_joints[0] + fit.transl[:, person]) @ C.T,
              fps=fit.fps)
    if mesh:
        rig.bind_vertices = bind_vertices.double().cpu().numpy()
        rig.faces = model.faces.cpu().numpy().astype(np.int64)
        rig.skin_joints, rig.skin_weights = _top_weights(weights.double().cpu().numpy(),
                                                        max_influences)
        rig.inverse_bind = inverse_bind.double().cpu().numpy()
    return rig.renamed(naming)  # "model" keeps the names, made file-safe
