"""Assign per-frame person detections to stable person slots over time."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_UNMATCHABLE = 1e9


def _scale(pose: np.ndarray) -> float:
    """Diagonal of the bounding box of a (J, 3) pose's confident joints (0 if fewer than two)."""
    xy = pose[pose[:, 2] > 0, :2]
    return float(np.linalg.norm(xy.max(0) - xy.min(0))) if len(xy) >= 2 else 0.0


def _cost(track: np.ndarray, det: np.ndarray) -> float:
    """Mean distance over joints confident in both (J, 3) poses, in units of the person's size."""
    both = (track[:, 2] > 0) & (det[:, 2] > 0)
    if not both.any():
        return _UNMATCHABLE
    dist = np.linalg.norm(track[both, :2] - det[both, :2], axis=-1).mean()
    # The larger of the two sizes: a partly visible detection must not shrink the gate.
    scale = max(_scale(track), _scale(det))
    if scale <= 0:
        return 0.0 if dist == 0 else _UNMATCHABLE
    return float(dist / scale)


def track_people(frames: Sequence[np.ndarray], max_people: int | None = None,
                 max_cost: float = 0.5) -> np.ndarray:
    """Link unordered per-frame detections into stable person slots.

    Each frame's detections are matched to the existing tracks (each remembered by its last seen
    pose) by the Hungarian algorithm on the mean distance between joints confident in both,
    divided by the person's size (bounding-box diagonal of confident joints). A pair whose cost
    exceeds ``max_cost`` is not matched, so someone new gets a new slot. A track that is not seen
    for a while keeps its slot and can be picked up again later.

    Args:
        frames: T arrays of shape (P_t, J, 3): x, y, confidence of each person detected in frame
            t, in any order; P_t may be 0. A (J, 3) array is one person.
        max_people: keep at most this many slots (those seen in the most frames).
        max_cost: gate on the normalised distance (0.5 = half the body size between frames).
    Returns:
        (T, P, J, 3) with slots ordered by how many frames they appear in (most first, ties by
        first appearance); a slot with nobody in a frame holds zeros (confidence 0). P >= 1, so a
        sequence with nobody in it gives one all-zero slot.
    """
    from scipy.optimize import linear_sum_assignment  # here: scipy.optimize costs 0.4 s to import

    dets = [np.asarray(f, dtype=np.float64) for f in frames]
    dets = [d[None] if d.ndim == 2 else d for d in dets]
    shapes = {d.shape[1:] for d in dets if d.size}
    if len(shapes) > 1 or any(len(s) != 2 or s[1] != 3 for s in shapes):
        raise ValueError("track_people expects T arrays of shape (P_t, J, 3) with one J for all frames, "
                         f"got shapes {sorted({d.shape for d in dets})}")
    J = shapes.pop()[0] if shapes else max([d.shape[1] for d in dets if d.ndim == 3] + [0])
    dets = [d if d.size else np.zeros((0, J, 3)) for d in dets]
    # Non-finite values mean "missing": confidence 0, as in the public types.
    dets = [np.where(np.isfinite(d).all(-1, keepdims=True), d, 0.0) for d in dets]

    last_pose: list[np.ndarray] = []           # track id -> last seen (J, 3)
    assignments: list[list[tuple[int, int]]] = []  # frame -> [(track id, detection index)]
    for d in dets:
        present = [i for i in range(len(d)) if (d[i, :, 2] > 0).any()]
        pairs: list[tuple[int, int]] = []
        if last_pose and present:
            cost = np.array([[_cost(last_pose[k], d[i]) for i in present] for k in range(len(last_pose))])
            rows, cols = linear_sum_assignment(np.minimum(cost, _UNMATCHABLE))
            pairs = [(int(k), present[c]) for k, c in zip(rows, cols) if cost[k, c] <= max_cost]
        matched = {i for _, i in pairs}
        for i in present:
            if i not in matched:
                last_pose.append(d[i])
                pairs.append((len(last_pose) - 1, i))
        for k, i in pairs:
            last_pose[k] = d[i]
        assignments.append(pairs)

    n_tracks = len(last_pose)
    counts = np.zeros(n_tracks, dtype=int)
    for pairs in assignments:
        for k, _ in pairs:
            counts[k] += 1
    # Track ids are created in order of first appearance, so a stable sort on -count breaks ties by it.
    order = np.argsort(-counts, kind="stable")
    if max_people is not None:
        order = order[:max_people]
    slot_of = {int(k): s for s, k in enumerate(order)}

    out = np.zeros((len(dets), max(1, len(order)), J, 3))
    for t, pairs in enumerate(assignments):
        for k, i in pairs:
            if k in slot_of:
                out[t, slot_of[k]] = dets[t][i]
    return out
