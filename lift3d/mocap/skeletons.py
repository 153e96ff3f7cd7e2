"""Mappings from motion-capture skeletons to the keypoint vocabulary of ``lift3d.formats``.

One table per skeleton says how each named keypoint (``pelvis``, ``left_knee``, ``nose``, ...) is
made from the skeleton's joints: a weighted sum of joint positions, plus optionally a fixed offset
in the frame of one joint (for the face, which mocap skeletons do not carry). ``to_joints3d``
evaluates a table and hands the result to ``formats.convert`` for the requested format, so any
format whose joints the table covers (``h36m17``, ``coco17``) comes out complete and the rest get
confidence 0.

Definitions shared by both skeletons (chosen to match ``formats.DERIVED``, which is how the same
joints are formed from 2D detections at inference time, so training targets and inputs agree):

- ``pelvis`` is the midpoint of the hip joints (not the mocap root, which sits ~10 cm higher);
- ``neck`` is the midpoint of the shoulder joints;
- ``head`` is the midpoint between the ears: the head's centre at ear level;
- ``spine`` is a point of the real spine chain about halfway between pelvis and neck;
- face points and ``head_top`` are fixed offsets from ``head`` in the head's frame
  (``FACE_OFFSETS``, adult averages), because neither skeleton has them.

The head frame is the canonical frame of a person facing +Z: x to the subject's left, y up,
z forward (the lift3d world frame seen from a subject facing +Z). For both skeletons below the
global rotation of one head joint is exactly that frame (checked on the data: the CMU rest pose
faces +Z with the left on +X and the ``head`` axis is "0 0 0"; the Character Creator head joint's
local axes are x left, y up, z forward, from its eye joints).

CMU ASF (positions are bone END points):
    left_hip = lhipjoint end, left_knee = lfemur end, left_ankle = ltibia end,
    left_shoulder = lclavicle end, left_elbow = lhumerus end, left_wrist = lradius end,
    spine = mid upperback (mean of lowerback and upperback ends),
    head = head end - 1.5 cm (head frame y). The ``head`` bone ends at about eye height, not at the
    top of the skull: with CMU subject 01 the hip joints sit 0.89 m above the floor (about 0.51 of
    stature for a 1.75 m adult) and the head end 0.75 m above them (eye height is ~0.94 of
    stature, the vertex 1.0); the shoulder joints (clavicle ends) 22.5 cm below it fit the same
    scale. So ``head_top`` is an offset above it rather than the bone end.
    The wrist: ``lradius`` ends where the common CMU BVH conversions put their hand joint, and
    that choice agrees with the Character Creator conversion of the same take (mean wrist error
    43 mm on 01_01, against 68 mm for the ``lwrist`` end, which lies ~10 cm further along).

Character Creator BVH (the iClone conversions of the CMU database; positions are joint origins):
    left_hip = CC_Base_L_Thigh, left_knee = CC_Base_L_Calf, left_ankle = CC_Base_L_Foot,
    left_shoulder = CC_Base_L_Upperarm, left_elbow = CC_Base_L_Forearm, left_wrist = CC_Base_L_Hand,
    spine = CC_Base_Spine02,
    head = CC_Base_Head + (0, 6.7, -0.3) cm in its frame: the eye joints sit at (0, 8.19, 8.22) cm
    in that frame, and the ear midpoint is taken 1.5 cm below and 8.5 cm behind the eyes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lift3d import formats
from lift3d.io_utils import Lift3DError
from lift3d.mocap.motion import Motion
from lift3d.types import Joints3D

# Offsets (metres) from the head centre (midpoint of the ears) in the canonical head frame
# (x left, y up, z forward). Adult averages: eyes 6.4 cm apart, 1.5 cm above and 8.5 cm in front
# of the ears (the Frankfort plane runs through ear and lower eye rim); nose tip 11 cm in front and
# 2.5 cm below; head 15 cm wide at the ears; vertex 12.5 cm above the ears.
FACE_OFFSETS: dict[str, tuple[float, float, float]] = {
    "nose": (0.0, -0.025, 0.11),
    "left_eye": (0.032, 0.015, 0.085),
    "right_eye": (-0.032, 0.015, 0.085),
    "left_ear": (0.075, 0.0, 0.0),
    "right_ear": (-0.075, 0.0, 0.0),
    "head_top": (0.0, 0.125, 0.0),
}


def face_points(head_pos: np.ndarray, head_rot: np.ndarray,
                offsets: dict[str, tuple[float, float, float]] | None = None) -> dict[str, np.ndarray]:
    """Face keypoints from the head centre and orientation.

    Args:
        head_pos: (..., 3) head centre (midpoint of the ears), metres.
        head_rot: (..., 3, 3) head frame in world axes: columns are the subject's left, up and
            forward directions.
        offsets: name -> (3,) offset in the head frame; default ``FACE_OFFSETS``.
    Returns:
        name -> (..., 3) positions.
    """
    offsets = FACE_OFFSETS if offsets is None else offsets
    return {k: head_pos + np.einsum("...ij,j->...i", head_rot, np.asarray(v, dtype=np.float64))
            for k, v in offsets.items()}


@dataclass(frozen=True)
class Point:
    """A keypoint: ``sum_j w_j * p_j + R_frame @ offset``.

    Attributes:
        weights: joint name -> weight (weights sum to 1).
        offset: (3,) metres in the frame of ``frame`` (a joint whose global rotation is the
            canonical head frame: x left, y up, z forward).
        frame: the joint giving the offset's frame; needed when ``offset`` is not zero.
    """

    weights: dict[str, float]
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    frame: str | None = None


@dataclass(frozen=True)
class SkeletonMap:
    """How one skeleton's joints make the named keypoints.

    Attributes:
        name: e.g. "cmu_asf".
        kind: the ``Motion.kind`` it applies to ("cmu_asf" or "bvh").
        points: keypoint name -> ``Point``.
        description: where the skeleton comes from.
    """

    name: str
    kind: str
    points: dict[str, Point]
    description: str = ""

    def joints_needed(self) -> set[str]:
        need = set()
        for p in self.points.values():
            need.update(p.weights)
            if p.frame:
                need.add(p.frame)
        return need


def _with_face(points: dict[str, Point], head: Point) -> dict[str, Point]:
    """Add ``head`` and the face points (FACE_OFFSETS from the head centre) to ``points``."""
    out = dict(points)
    out["head"] = head
    base = np.asarray(head.offset)
    for name, off in FACE_OFFSETS.items():
        out[name] = Point(head.weights, tuple(float(x) for x in base + np.asarray(off)), head.frame)
    return out


def _sided(template: dict[str, str], side_words: dict[str, str]) -> dict[str, Point]:
    """{"{side}_hip": "{s}hipjoint"} -> left_/right_ points with the side word filled in."""
    out = {}
    for key, joint in template.items():
        for side, word in side_words.items():
            out[key.format(side=side)] = Point({joint.format(s=word): 1.0})
    return out


_CMU_LIMBS = _sided({
    "{side}_hip": "{s}hipjoint", "{side}_knee": "{s}femur", "{side}_ankle": "{s}tibia",
    "{side}_shoulder": "{s}clavicle", "{side}_elbow": "{s}humerus", "{side}_wrist": "{s}radius",
}, {"left": "l", "right": "r"})

CMU_ASF = SkeletonMap(
    name="cmu_asf", kind="cmu_asf",
    description="CMU motion-capture database ASF skeleton (VICON BodyBuilder), bone end points",
    points=_with_face({
        **_CMU_LIMBS,
        "pelvis": Point({"lhipjoint": 0.5, "rhipjoint": 0.5}),
        "neck": Point({"lclavicle": 0.5, "rclavicle": 0.5}),
        "spine": Point({"lowerback": 0.5, "upperback": 0.5}),
    }, head=Point({"head": 1.0}, (0.0, -0.015, 0.0), "head")),
)

_CC_LIMBS = _sided({
    "{side}_hip": "CC_Base_{s}_Thigh", "{side}_knee": "CC_Base_{s}_Calf", "{side}_ankle": "CC_Base_{s}_Foot",
    "{side}_shoulder": "CC_Base_{s}_Upperarm", "{side}_elbow": "CC_Base_{s}_Forearm",
    "{side}_wrist": "CC_Base_{s}_Hand",
}, {"left": "L", "right": "R"})

CC_BVH = SkeletonMap(
    name="cc_bvh", kind="bvh",
    description="Reallusion Character Creator / iClone skeleton (CC_Base_*), joint origins",
    points=_with_face({
        **_CC_LIMBS,
        "pelvis": Point({"CC_Base_L_Thigh": 0.5, "CC_Base_R_Thigh": 0.5}),
        "neck": Point({"CC_Base_L_Upperarm": 0.5, "CC_Base_R_Upperarm": 0.5}),
        "spine": Point({"CC_Base_Spine02": 1.0}),
    }, head=Point({"CC_Base_Head": 1.0}, (0.0, 0.067, -0.003), "CC_Base_Head")),
)

MAPS: dict[str, SkeletonMap] = {m.name: m for m in (CMU_ASF, CC_BVH)}


def detect(motion: Motion) -> SkeletonMap:
    """The table for a motion's skeleton, chosen by its kind and joint names."""
    have = set(motion.joint_names)
    for m in MAPS.values():
        if m.kind == motion.kind and m.joints_needed() <= have:
            return m
    raise Lift3DError(
        f"no keypoint mapping for this {motion.kind} skeleton (root {motion.joint_names[0]!r}, "
        f"{len(have)} joints); known skeletons: {', '.join(MAPS)}; pass a SkeletonMap as mapping=")


def keypoints(motion: Motion, mapping: SkeletonMap | None = None) -> tuple[list[str], np.ndarray]:
    """Every keypoint a table defines, evaluated on a motion.

    Returns:
        names: (K,) keypoint names (in the table's order).
        positions: (T, K, 3) metres, world frame.
    """
    mapping = mapping or detect(motion)
    missing = sorted(mapping.joints_needed() - set(motion.joint_names))
    if missing:
        raise Lift3DError(f"skeleton mapping {mapping.name!r} needs joints this motion lacks: {', '.join(missing)}")
    names = list(mapping.points)
    out = np.zeros((motion.num_frames, len(names), 3))
    for k, name in enumerate(names):
        p = mapping.points[name]
        for joint, w in p.weights.items():
            out[:, k] += w * motion.positions[:, motion.index(joint)]
        if any(p.offset):
            R = motion.rotations[:, motion.index(p.frame)]
            out[:, k] += R @ np.asarray(p.offset)
    return names, out


def to_joints3d(motion: Motion, fmt: str = "h36m17", mapping: SkeletonMap | None = None) -> Joints3D:
    """A motion as named keypoints: ``Joints3D`` (T, 1, K, 3), world frame, the motion's fps.

    Keypoints ``fmt`` needs but the table lacks are derived where ``formats.DERIVED`` allows and
    otherwise carry confidence 0.
    """
    names, pts = keypoints(motion, mapping)
    formats.names(fmt)  # a clear error for an unknown format
    both = np.concatenate([pts, np.ones(pts.shape[:2] + (1,))], axis=-1)
    out = formats.convert(both, names, fmt)
    return Joints3D(out[:, None, :, :3], fmt, motion.fps, "world", out[:, None, :, 3])
