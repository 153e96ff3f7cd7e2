"""Named keypoint formats and the one table of mappings between them.

Every format is an ordered list of joint names drawn from one shared vocabulary. Converting
between formats matches names; joints a format lacks but can derive from others (``neck`` as
the mid-point of the shoulders, ``pelvis`` as the mid-point of the hips, ...) come from
``DERIVED``. Nothing outside this module hard-codes joint indices: ask ``index(fmt, name)``.

Confidence conventions: a derived joint takes the smallest confidence of its sources, and a
joint that cannot be obtained at all gets confidence 0 (and xy = 0), never NaN.
"""
from __future__ import annotations

import numpy as np

FORMATS: dict[str, list[str]] = {
    # COCO / MS-COCO keypoint challenge order (also MMPose, HRNet, AlphaPose "coco").
    "coco17": [
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ],
    # MediaPipe BlazePose landmark order.
    "blazepose33": [
        "nose", "left_eye_inner", "left_eye", "left_eye_outer",
        "right_eye_inner", "right_eye", "right_eye_outer", "left_ear", "right_ear",
        "mouth_left", "mouth_right", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_pinky", "right_pinky", "left_index", "right_index",
        "left_thumb", "right_thumb", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
        "left_heel", "right_heel", "left_foot_index", "right_foot_index",
    ],
    # OpenPose BODY_25.
    "openpose25": [
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
        "left_shoulder", "left_elbow", "left_wrist", "pelvis",
        "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "right_eye", "left_eye", "right_ear", "left_ear",
        "left_big_toe", "left_small_toe", "left_heel",
        "right_big_toe", "right_small_toe", "right_heel",
    ],
    # OpenPose COCO-18 (the older OpenPose body model).
    "openpose18": [
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
        "left_shoulder", "left_elbow", "left_wrist",
        "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "right_eye", "left_eye", "right_ear", "left_ear",
    ],
    # Human3.6M 17-joint set used by VideoPose3D and most lifting networks.
    "h36m17": [
        "pelvis", "right_hip", "right_knee", "right_ankle",
        "left_hip", "left_knee", "left_ankle", "spine", "neck", "head", "head_top",
        "left_shoulder", "left_elbow", "left_wrist",
        "right_shoulder", "right_elbow", "right_wrist",
    ],
}

# Joints obtained as weighted sums of other joints (weights sum to 1). Applied in order, so a
# later entry may use an earlier one. These are approximations for formats that do not carry
# the joint (e.g. h36m's head_top from a face-only detector): documented, not hidden.
DERIVED: dict[str, dict[str, float]] = {
    "neck": {"left_shoulder": 0.5, "right_shoulder": 0.5},
    "pelvis": {"left_hip": 0.5, "right_hip": 0.5},
    "spine": {"pelvis": 0.5, "neck": 0.5},
    "head": {"left_ear": 0.5, "right_ear": 0.5},
    # Top of the skull: continue the neck->ear-centre direction by 0.6 of its length (CMU mocap ratio).
    "head_top": {"head": 1.6, "neck": -0.6},
    "left_big_toe": {"left_foot_index": 1.0},
    "right_big_toe": {"right_foot_index": 1.0},
    "left_foot_index": {"left_big_toe": 1.0},
    "right_foot_index": {"right_big_toe": 1.0},
}

# Left/right pairs, for flipping augmentation and symmetric priors.
def mirror_name(name: str) -> str:
    """'left_knee' <-> 'right_knee'; names without a side map to themselves."""
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    if name.endswith("_left"):
        return name[:-5] + "_right"
    if name.endswith("_right"):
        return name[:-6] + "_left"
    return name


def names(fmt: str | list[str]) -> list[str]:
    """The ordered joint names of a format (a list of names is its own format)."""
    if isinstance(fmt, (list, tuple)):
        return list(fmt)
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown keypoint format {fmt!r}; known: {', '.join(FORMATS)}") from None


def index(fmt: str, name: str) -> int:
    """Position of joint ``name`` in format ``fmt``."""
    return names(fmt).index(name)


def skeleton_edges(fmt: str) -> list[tuple[int, int]]:
    """Bones to draw for a format, as index pairs (only those both of whose ends exist)."""
    pairs = [
        ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"),
        ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
        ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
        ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
        ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
        ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
        ("left_ankle", "left_heel"), ("right_ankle", "right_heel"),
        ("left_ankle", "left_foot_index"), ("right_ankle", "right_foot_index"),
        ("left_ankle", "left_big_toe"), ("right_ankle", "right_big_toe"),
        ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
        ("right_eye", "right_ear"), ("neck", "nose"), ("pelvis", "spine"),
        ("spine", "neck"), ("neck", "head"), ("head", "head_top"),
        ("pelvis", "left_hip"), ("pelvis", "right_hip"),
        ("neck", "left_shoulder"), ("neck", "right_shoulder"),
    ]
    ns = names(fmt)
    return [(ns.index(a), ns.index(b)) for a, b in pairs if a in ns and b in ns]


def conversion_matrix(src: str | list[str], dst: str | list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Linear map from ``src`` joints to ``dst`` joints.

    Returns:
        W: (J_dst, J_src) weights; ``dst_xy = W @ src_xy``.
        available: (J_dst,) bool, False where ``dst`` joint cannot be formed from ``src``.
    """
    src_names = names(src)
    exprs: dict[str, dict[str, float]] = {n: {n: 1.0} for n in src_names}
    for name, combo in DERIVED.items():
        if name in exprs or not all(s in exprs for s in combo):
            continue
        expr: dict[str, float] = {}
        for s, w in combo.items():
            for base, bw in exprs[s].items():
                expr[base] = expr.get(base, 0.0) + w * bw
        exprs[name] = expr
    dst_names = names(dst)
    W = np.zeros((len(dst_names), len(src_names)))
    available = np.zeros(len(dst_names), dtype=bool)
    for i, name in enumerate(dst_names):
        if name in exprs:
            available[i] = True
            for base, w in exprs[name].items():
                W[i, src_names.index(base)] = w
    return W, available


def convert(points: np.ndarray, src: str | list[str], dst: str | list[str]) -> np.ndarray:
    """Convert (..., J_src, D+1) coordinates+confidence from ``src`` to ``dst`` format.

    The last channel is confidence. A derived joint's confidence is the minimum over the
    joints it is made from; a joint ``dst`` needs but ``src`` cannot give has confidence 0
    and zero coordinates.

    Args:
        points: (..., J_src, C) with C >= 2; the last channel is confidence.
    Returns:
        (..., J_dst, C)
    """
    if names(src) == names(dst):
        return np.array(points, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    W, available = conversion_matrix(src, dst)
    coords = np.einsum("ds,...sc->...dc", W, points[..., :-1])
    conf_src = points[..., -1]
    used = W != 0
    big = np.where(used, 0.0, np.inf)  # (J_dst, J_src)
    conf = np.min(conf_src[..., None, :] + big, axis=-1)
    conf = np.where(available, conf, 0.0)
    conf = np.where(np.isfinite(conf), conf, 0.0)
    coords = np.where((conf > 0)[..., None], coords, 0.0)
    return np.concatenate([coords, conf[..., None]], axis=-1)


def convert_points(points: np.ndarray, src: str | list[str], dst: str | list[str]) -> np.ndarray:
    """Convert (..., J_src, D) coordinates that carry no confidence (2D pixels, 3D positions).

    ``convert`` reads the last channel as confidence; this gives every source joint full
    confidence first and drops the channel after, so a negative coordinate is never taken for
    a missing joint. Joints ``dst`` needs but ``src`` cannot give come out as zeros.
    """
    points = np.asarray(points, dtype=np.float64)
    full = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)
    return convert(full, src, dst)[..., :-1]

