"""``Motion``: a skeleton's joint trajectories read from a motion-capture file.

Every reader in ``lift3d.mocap`` returns one: world positions in metres (right-handed, Y up),
global joint rotations, the frame rate and the kind of file it came from. ``to_joints3d`` turns it
into a named keypoint format (``h36m17`` for the lifting network, ``coco17``, ...) through the
per-skeleton tables in ``lift3d.mocap.skeletons``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial.transform import Rotation

if TYPE_CHECKING:  # imported lazily at run time: skeletons imports this module
    from lift3d.mocap.skeletons import SkeletonMap
    from lift3d.types import Joints3D


@dataclass
class Motion:
    """Joint trajectories of one skeleton.

    Attributes:
        joint_names: (J,) names as in the file (ASF bone names plus "root"; BVH joint names, plus
            "<parent>_end" for End Sites with a non-zero offset).
        parents: (J,) index of each joint's parent, -1 for the root; parents come before children.
        positions: (T, J, 3) world positions in metres, right-handed, Y up. For ASF/AMC a bone's
            position is its END point (where its children start); for BVH a joint's position is
            its origin.
        rotations: (T, J, 3, 3) global rotations. BVH: the joint's coordinate frame in world
            axes. ASF: the bone's local axis frame in world axes (``G @ C`` with ``G`` the
            rotation of the bone from the rest pose and ``C`` its ``axis``).
        fps: frames per second.
        kind: "cmu_asf" (ASF/AMC) or "bvh".
        name: a label, usually the file name.
        meta: reader details (source path; BVH: header frame time, scale and up axis used).
    """

    joint_names: list[str]
    parents: np.ndarray
    positions: np.ndarray
    rotations: np.ndarray
    fps: float
    kind: str
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.parents = np.asarray(self.parents, dtype=np.int64)
        self.positions = np.asarray(self.positions, dtype=np.float64)
        self.rotations = np.asarray(self.rotations, dtype=np.float64)
        self.fps = float(self.fps)
        J = len(self.joint_names)
        if self.positions.ndim != 3 or self.positions.shape[1:] != (J, 3):
            raise ValueError(f"Motion.positions must be (T, {J}, 3), got {self.positions.shape}")
        if self.rotations.shape != self.positions.shape[:2] + (3, 3):
            raise ValueError(f"Motion.rotations must be (T, {J}, 3, 3), got {self.rotations.shape}")
        if self.parents.shape != (J,) or np.any(self.parents >= np.arange(J)):
            raise ValueError("Motion.parents must be (J,) with every parent before its child")
        if not self.fps > 0:
            raise ValueError(f"Motion.fps must be positive, got {self.fps}")

    @property
    def num_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def duration(self) -> float:
        """Seconds between the first and the last frame."""
        return (self.num_frames - 1) / self.fps

    def index(self, name: str) -> int:
        """Position of joint ``name`` in ``joint_names``."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(f"joint {name!r} is not in this {self.kind} skeleton") from None

    def joint(self, name: str) -> np.ndarray:
        """(T, 3) trajectory of one joint."""
        return self.positions[:, self.index(name)]

    def bone_lengths(self) -> np.ndarray:
        """(T, J) distance of each joint to its parent (0 for the root)."""
        par = np.where(self.parents < 0, np.arange(len(self.parents)), self.parents)
        return np.linalg.norm(self.positions - self.positions[:, par], axis=-1)

    def slice(self, start: int = 0, stop: int | None = None, step: int = 1) -> "Motion":
        """Frames ``start:stop:step`` (the frame rate is divided by ``step``)."""
        sl = slice(start, stop, step)
        return Motion(list(self.joint_names), self.parents.copy(), self.positions[sl], self.rotations[sl],
                      self.fps / step, self.kind, self.name, dict(self.meta))

    def resample(self, fps: float) -> "Motion":
        """The same motion at another frame rate, spanning the same time from the first frame.

        Positions are interpolated linearly and rotations by slerp, so 120 fps capture can be
        brought to the 30 fps of ordinary video (or the reverse). The last output frame is the last
        one at or before the input's end time.
        """
        fps = float(fps)
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        T = self.num_frames
        n = int(np.floor((T - 1) * fps / self.fps + 1e-9)) + 1
        src = np.arange(n) * (self.fps / fps)  # output frame times in input frames
        i0 = np.minimum(np.floor(src + 1e-9).astype(np.int64), T - 1)
        i1 = np.minimum(i0 + 1, T - 1)
        w = np.clip(src - i0, 0.0, 1.0)
        pos = self.positions[i0] * (1 - w)[:, None, None] + self.positions[i1] * w[:, None, None]
        rot = _slerp(self.rotations[i0], self.rotations[i1], w)
        return Motion(list(self.joint_names), self.parents.copy(), pos, rot, fps, self.kind, self.name,
                      dict(self.meta))

    def to_joints3d(self, fmt: str = "h36m17", mapping: "SkeletonMap | None" = None) -> "Joints3D":
        """The motion as named keypoints: a world-frame ``Joints3D`` (T, 1, K, 3) at this fps.

        Args:
            fmt: a format of ``lift3d.formats`` ("h36m17", "coco17", ...). Joints the skeleton
                cannot give (e.g. hand points) come out with confidence 0.
            mapping: the skeleton-to-keypoint table; by default the one ``skeletons.detect`` picks
                from the joint names.
        """
        from lift3d.mocap.skeletons import to_joints3d

        return to_joints3d(self, fmt, mapping)


def _slerp(r0: np.ndarray, r1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical interpolation of rotation matrices.

    Args:
        r0, r1: (T, J, 3, 3) end rotations.
        w: (T,) weights in [0, 1] (0 gives ``r0``).
    Returns:
        (T, J, 3, 3)
    """
    T, J = r0.shape[:2]
    a = Rotation.from_matrix(r0.reshape(-1, 3, 3))
    b = Rotation.from_matrix(r1.reshape(-1, 3, 3))
    rel = (a.inv() * b).as_rotvec() * np.repeat(w, J)[:, None]
    return (a * Rotation.from_rotvec(rel)).as_matrix().reshape(T, J, 3, 3)
