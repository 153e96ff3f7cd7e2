"""The uniform, differentiable body-model interface.

A body model maps per-joint rotations, shape parameters and a root translation to a mesh,
its kinematic joints and named keypoints, in the lift3d world convention (metres, right-handed,
Y up, the body facing +Z in its rest pose).

Shapes: B = batch, J = posable joints (joint 0 is the root; its rotation is the global
orientation, applied about the root joint as SMPL does), S = shape parameters, V = vertices,
K = keypoints.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lift3d import formats


class BodyModelError(Exception):
    """A body model cannot be built (missing or unreadable model files)."""


@dataclass
class BodyOutput:
    """Result of a body-model forward pass.

    Attributes:
        vertices: (B, V, 3) posed mesh vertices (None when the caller asked for keypoints only).
        joints: (B, J, 3) posed kinematic joint positions.
        keypoints: (B, K, 3) the model's native named keypoints (``model.keypoint_names``).
    """

    vertices: torch.Tensor | None
    joints: torch.Tensor
    keypoints: torch.Tensor


class BodyModel(torch.nn.Module):
    """Base class. Subclasses set the attributes below and implement ``forward``.

    Attributes:
        name: model name ("anny", "smpl", "smplh", "smplx").
        joint_names: (J,) names of the posable joints; index 0 is the root.
        parents: (J,) parent index of each joint, -1 for the root.
        body_joints: indices of the joints a body fit should free (no fingers, toes, eyes).
        keypoint_names: names (lift3d.formats vocabulary) of ``BodyOutput.keypoints``.
        num_shape: S, the number of shape parameters.
        faces: (F, 3) long tensor of triangle vertex indices.
    """

    name: str
    joint_names: list[str]
    parents: list[int]
    body_joints: list[int]
    keypoint_names: list[str]
    num_shape: int
    faces: torch.Tensor

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        # Follows .to(device/dtype) so that dtype and device always describe the model.
        self.register_buffer("_ref", torch.zeros((), dtype=dtype), persistent=False)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def dtype(self) -> torch.dtype:
        return self._ref.dtype

    @property
    def device(self) -> torch.device:
        return self._ref.device

    def forward(self, pose: torch.Tensor, shape: torch.Tensor | None = None,
                transl: torch.Tensor | None = None, vertices: bool = True) -> BodyOutput:
        """Pose the body.

        Args:
            pose: (B, J, 3, 3) local joint rotations (identity = rest pose).
            shape: (B, S) or (1, S) shape parameters; zeros (the mean body) if None.
            transl: (B, 3) root translation in metres; zeros if None.
            vertices: False lets a model skip skinning the mesh (``BodyOutput.vertices`` is
                then None) when only joints and keypoints are needed, as in most fit steps.
        Returns:
            BodyOutput with (B, V, 3) vertices, (B, J, 3) joints and (B, K, 3) keypoints.
        """
        raise NotImplementedError

    def skin_weights(self) -> torch.Tensor:
        """(V, J) dense linear-blend-skinning weights (rows sum to 1)."""
        raise NotImplementedError

    def bind(self, shape: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The linear-blend-skinning rig of one body, as animation files store it.

        Every joint gets a frame aligned with the world axes at its rest-pose position, so that
        a file's local joint rotations are exactly ``pose[:, j]`` and its bone offsets are rest
        joint differences. The mesh is skinned from ``bind_vertices`` by
        ``v = sum_j w_vj  J_j  inverse_bind_j  v_bind``, J_j being joint j's posed world
        transform [R_j | p_j] (R_j = R_parent @ pose[:, j]).

        Args:
            shape: (1, S) shape parameters; zeros if None.
        Returns:
            rest_joints: (J, 3) joint positions of the identity pose.
            bind_vertices: (V, 3) mesh vertices the skin weights apply to.
            inverse_bind: (J, 4, 4) matrices taking bind vertices into each joint's frame.
        This default suits models whose identity pose is their skinning rest pose (the SMPL
        family; its pose-corrective blend shapes cannot be stored in a skinned file).
        """
        out = self.forward(self.rest_pose(1), shape)
        joints = out.joints[0]
        inverse_bind = torch.eye(4, dtype=joints.dtype, device=joints.device).repeat(len(joints), 1, 1)
        inverse_bind[:, :3, 3] = -joints
        return joints, out.vertices[0], inverse_bind

    def rest_pose(self, batch: int = 1) -> torch.Tensor:
        """(B, J, 3, 3) identity rotations."""
        eye = torch.eye(3, dtype=self.dtype, device=self.device)
        return eye.expand(batch, self.num_joints, 3, 3).clone()

    def standing_height(self, shape: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) stature in metres of (B, S) shapes (the mean body if None): the vertical extent
        of the rest-pose mesh, soles to crown, as a person's height is measured.
        Differentiable in ``shape``."""
        y = self.forward(self.rest_pose(1 if shape is None else len(shape)), shape).vertices[..., 1]
        return y.amax(-1) - y.amin(-1)

    def keypoint_map(self, fmt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear map from the native keypoints to format ``fmt``.

        Returns:
            W: (K_fmt, K_native) weights.
            available: (K_fmt,) bool, False where the model cannot produce that keypoint.
        """
        W, available = formats.conversion_matrix(self.keypoint_names, fmt)
        return (torch.as_tensor(W, dtype=self.dtype, device=self.device),
                torch.as_tensor(available, device=self.device))

    def keypoints(self, output: BodyOutput, fmt: str) -> torch.Tensor:
        """(B, K_fmt, 4) keypoints in format ``fmt``: xyz + availability (1 or 0)."""
        W, available = self.keypoint_map(fmt)
        xyz = torch.einsum("ks,bsd->bkd", W, output.keypoints)
        avail = available.to(xyz.dtype).expand(xyz.shape[0], -1)[..., None]
        return torch.cat([xyz, avail], dim=-1)
