"""Anny: the free default body model (Apache-2.0, MakeHuman-based, data inside the `anny` wheel).

Wraps ``anny.Anny`` (default rig: 104 bones, 13,718 vertices) behind the uniform ``BodyModel``
interface:

- Anny is Z up and faces -Y; lift3d's world is Y up and the rest body faces +Z. The fixed
  rotation ``ANNY_TO_WORLD`` maps one to the other; vertices, joints and keypoints come out
  in lift3d's frame.
- Joint rotations are Anny's "local-ref" deltas (a rotation about the bone's head, in axes
  aligned with the rest-pose world frame), re-expressed in lift3d's world axes, so that a
  rotation about +Y turns a limb about the vertical, as for SMPL.
- Shape is Anny's six phenotype parameters (gender, age, muscle, weight, height, proportions)
  as offsets from their mean 0.5: shape = 0 is the average adult. Values are clamped so
  that 0.5 + shape stays in [0, 1], the range the phenotype blend shapes are defined on.
"""
from __future__ import annotations

import contextlib
import io
import os

import torch

from body_models.base import BodyModel, BodyOutput

# (x, y, z)_anny -> (x, z, -y)_world: Z-up/-Y-forward to Y-up/+Z-forward.
ANNY_TO_WORLD = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# Bones a body fit frees: trunk, limbs, neck and head; fingers, toes and eyes stay at rest
# because video keypoints do not constrain them.
BODY_BONES = [
    "root", "pelvis.L", "upperleg01.L", "upperleg02.L", "lowerleg01.L", "lowerleg02.L", "foot.L",
    "pelvis.R", "upperleg01.R", "upperleg02.R", "lowerleg01.R", "lowerleg02.R", "foot.R",
    "spine05", "spine04", "spine03", "spine02", "spine01",
    "clavicle.L", "shoulder01.L", "upperarm01.L", "upperarm02.L", "lowerarm01.L", "lowerarm02.L", "wrist.L",
    "clavicle.R", "shoulder01.R", "upperarm01.R", "upperarm02.R", "lowerarm01.R", "lowerarm02.R", "wrist.R",
    "neck01", "neck02", "neck03", "head",
]

SHAPE_NAMES = ["gender", "age", "muscle", "weight", "height", "proportions"]


def _quiet_build(fn):
    """Run ``fn`` with Warp's start-up banner silenced (it prints to stdout on first use)."""
    os.environ.setdefault("WARP_LOG_LEVEL", "error")
    try:
        import warp

        warp.config.quiet = True
    except Exception:  # warp is an optional accelerator inside anny
        pass
    with contextlib.redirect_stdout(io.StringIO()):
        return fn()


class AnnyModel(BodyModel):
    """The Anny body model in lift3d's conventions. See the module docstring."""

    def __init__(self, dtype: torch.dtype = torch.float32, rig: str = "anny") -> None:
        super().__init__(dtype=dtype)
        import anny

        self.name = "anny"
        self._anny = _quiet_build(lambda: anny.Anny(rig=rig)).to(dtype)
        self._regressor = anny.KeypointsRegressor.coco(self._anny).to(dtype)
        self.joint_names = list(self._anny.bone_labels)
        self.parents = [int(p) for p in self._anny.bone_parents]
        self.body_joints = [self.joint_names.index(b) for b in BODY_BONES if b in self.joint_names]
        self.keypoint_names = list(self._regressor.labels)
        self.num_shape = len(SHAPE_NAMES)
        self.shape_names = SHAPE_NAMES
        self.register_buffer("faces", self._anny.get_triangular_faces().long(), persistent=False)
        self.register_buffer("_to_world", ANNY_TO_WORLD.to(dtype), persistent=False)
        self._build_keypoint_skinning()
        # Warm the Warp skinning kernel now so the first fit step is not 2 s slower than the rest.
        with torch.no_grad():
            _quiet_build(lambda: self._anny())

    def _build_keypoint_skinning(self) -> None:
        """Precompute the keypoints as a blend of bone transforms.

        A keypoint is a fixed blend of vertices, and each vertex a fixed blend of bone
        transforms applied to its rest position, so keypoint k = sum_b T_b @ q_kb with
        q_kb = sum_v W_kv w_vb [v_rest; 1]. The sparse (K*J, V) matrix of W_kv w_vb lets a fit
        that needs only keypoints skip skinning all 13,718 vertices of every frame.
        """
        W = self._regressor.regression_weights  # (K, V)
        vw, vi = self._anny.vertex_bone_weights, self._anny.vertex_bone_indices  # (V, 9)
        J = self.num_joints
        k_idx, v_idx = torch.nonzero(W, as_tuple=True)
        vals = W[k_idx, v_idx][:, None] * vw[v_idx]  # (N, 9)
        rows = k_idx[:, None] * J + vi[v_idx].long()
        cols = v_idx[:, None].expand_as(rows)
        keep = vals != 0
        M = torch.sparse_coo_tensor(torch.stack([rows[keep], cols[keep]]), vals[keep],
                                    (W.shape[0] * J, W.shape[1]),
                                    check_invariants=False).coalesce()
        self.register_buffer("_kp_skin", M, persistent=False)
        mass = torch.sparse.sum(M, dim=1).to_dense().reshape(W.shape[0], J)  # (K, J)
        self.register_buffer("_kp_mass", mass, persistent=False)

    def skin_weights(self) -> torch.Tensor:
        vw, vi = self._anny.vertex_bone_weights, self._anny.vertex_bone_indices
        dense = torch.zeros(vw.shape[0], self.num_joints, dtype=vw.dtype, device=vw.device)
        return dense.scatter_add_(1, vi.long(), vw)

    def _rest(self, shape: torch.Tensor) -> dict[str, torch.Tensor]:
        """Anny's rest model (Anny axes) for (Bs, S) shapes, Bs = 1 or the batch."""
        phenotype = (0.5 + shape).clamp(0.0, 1.0)
        no_extra = phenotype.new_zeros(phenotype.shape[0], 0)
        coeffs = self._anny._get_phenotype_blendshape_coefficients(phenotype, no_extra, no_extra)
        return self._anny.get_rest_model(coeffs)

    def bind(self, shape: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """See ``BodyModel.bind``. Anny skins from its rest mesh with bones whose reference
        orientation differs from their rest orientation, so its identity pose is not its
        skinning rest pose: the bind vertices are the rest mesh and each inverse bind matrix
        carries that bone's rest-to-reference transform (exact, not an approximation)."""
        shape = torch.zeros(1, self.num_shape, dtype=self.dtype, device=self.device) if shape is None else shape
        rest = self._rest(shape)
        identity = torch.eye(4, dtype=self.dtype, device=self.device).expand(1, self.num_joints, 4, 4)
        transforms, poses = self._anny.get_bone_transforms(identity, rest["rest_bone_poses"])
        F = torch.eye(4, dtype=self.dtype, device=self.device)
        F[:3, :3] = self._to_world
        transforms = F @ transforms[0] @ F.T  # (J, 4, 4) in world axes
        joints = poses[0, :, :3, 3] @ self._to_world.T
        inverse_bind = transforms.clone()
        inverse_bind[:, :3, 3] -= joints  # [I | -q_j] @ T_j
        return joints, rest["rest_vertices"][0] @ self._to_world.T, inverse_bind

    def forward(self, pose: torch.Tensor, shape: torch.Tensor | None = None,
                transl: torch.Tensor | None = None, vertices: bool = True) -> BodyOutput:
        """See ``BodyModel.forward``. ``shape`` may be (1, S) to share one body across the batch;
        ``vertices=False`` skips mesh skinning and returns ``vertices=None`` (fast keypoints)."""
        B = pose.shape[0]
        F = self._to_world
        if shape is None:
            shape = pose.new_zeros(1, self.num_shape)
        # World-axis local rotations -> Anny axes: R_anny = F^T R F. The root's delta stays
        # identity inside Anny; the global orientation is applied below, in world axes.
        local = F.T @ pose[:, 1:] @ F
        delta = torch.zeros(B, self.num_joints, 4, 4, dtype=pose.dtype, device=pose.device)
        delta[:, 0] = torch.eye(4, dtype=pose.dtype, device=pose.device)
        delta[:, 1:, :3, :3] = local
        delta[:, 1:, 3, 3] = 1.0
        rest = self._rest(shape)
        transforms, bone_poses = self._anny.get_bone_transforms(delta, rest["rest_bone_poses"])
        joints = bone_poses[..., :3, 3] @ F.T
        if vertices:
            skinned = self._anny.get_skinned_vertices(
                rest["rest_vertices"].expand(transforms.shape[0], -1, -1), transforms)
            verts = skinned @ F.T
            kps = self._regressor({"vertices": skinned}) @ F.T
        else:
            verts = None
            q = torch.stack([torch.sparse.mm(self._kp_skin, rv) for rv in rest["rest_vertices"]])
            q = q.reshape(q.shape[0], -1, self.num_joints, 3)  # (Bs, K, J, 3)
            kps = (torch.einsum("bjxy,bkjy->bkx", transforms[..., :3, :3], q)
                   + torch.einsum("bjx,kj->bkx", transforms[..., :3, 3], self._kp_mass)) @ F.T
        root = joints[:, :1]
        G = pose[:, 0]  # (B, 3, 3), about the root joint

        def place(x: torch.Tensor) -> torch.Tensor:
            y = (x - root) @ G.transpose(1, 2) + root
            return y if transl is None else y + transl[:, None]

        return BodyOutput(vertices=None if verts is None else place(verts), joints=place(joints),
                          keypoints=place(kps))
