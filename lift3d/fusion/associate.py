"""Multi-person association across calibrated views and over time.

Imported multi-person keypoints (OpenPose, AlphaPose, MMPose, ...) list P_c people per view in
an arbitrary order, which may even change from frame to frame. ``associate`` puts every person
into one slot shared by all views and kept over time, so that ``triangulate`` can take the
views slot by slot.

Per frame:

1. Tracking: every active 3D track (the person's last triangulated joints) is projected into
   each view, and the view's people are matched to the tracks by the Hungarian method
   (``scipy.optimize.linear_sum_assignment``) on the median pixel distance between projected
   and detected joints, gated by ``max_reprojection_px``.
2. New people: the detections no track took are grouped across views by average-linkage
   clustering on the symmetric epipolar distance (pixels, median over shared joints), never
   two detections of one view in a group, gated by ``max_epipolar_px``. Groups seen by at least
   2 views become new tracks.
3. Update: each track is triangulated (robust RANSAC) from its views; a view that disagrees
   with the others (fewer than half of its joints inliers) is unassigned for that frame, and
   the track's 3D joints are updated where triangulated. Tracks unseen for more than
   ``max_lost`` frames end; a person who comes back later gets a new slot.

People seen by a single view only (never triangulable) get no slot. Shapes: C views, T frames,
P_c people in view c, K joints; the output has P slots (tracks) in every view.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from lift3d.fusion.triangulate import _check_cameras, triangulate_points, undistort_points
from lift3d.io_utils import Lift3DError
from lift3d.types import Camera, Keypoints2D

__all__ = ["associate", "epipolar_distances", "Association"]

_BIG = 1e9


class Association(list):
    """The re-ordered ``Keypoints2D``, one per view (a list), plus ``slots``: (T, C, P) int
    index of the input person in each output slot (-1 = none), and ``points3d``: (T, P, K, 3)
    the tracks' triangulated joints (NaN where not triangulated at that frame)."""

    slots: np.ndarray
    points3d: np.ndarray


def _essential(ca: Camera, cb: Camera) -> np.ndarray:
    """E with xb^T E xa = 0 for normalised homogeneous points of cameras a and b."""
    R = cb.R @ ca.R.T
    t = cb.t - R @ ca.t
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    return tx @ R


def epipolar_distances(xa: np.ndarray, xb: np.ndarray, ca: Camera, cb: Camera) -> np.ndarray:
    """Symmetric epipolar distance in pixels between normalised points of two views.

    Args:
        xa: (..., 2) undistorted normalised points of camera a; xb: (..., 2) of camera b
            (broadcastable).
    Returns:
        (...) mean of the distance of xb to xa's epipolar line (in b's pixels) and of xa to
        xb's line (in a's pixels).
    """
    E = _essential(ca, cb)
    ha = np.concatenate([xa, np.ones(xa.shape[:-1] + (1,))], -1)
    hb = np.concatenate([xb, np.ones(xb.shape[:-1] + (1,))], -1)
    lb = ha @ E.T  # lines in b
    la = hb @ E  # lines in a
    num = np.abs((hb * lb).sum(-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        db = num / np.hypot(lb[..., 0], lb[..., 1]) * cb.focal
        da = num / np.hypot(la[..., 0], la[..., 1]) * ca.focal
    return 0.5 * (da + db)


def _median_cost(d: np.ndarray, ok: np.ndarray, min_joints: int) -> np.ndarray:
    """Median over the last axis of d where ok; _BIG where fewer than ``min_joints``."""
    dd = np.where(ok, d, np.nan)
    n = ok.sum(-1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: handled below
        m = np.nanmedian(dd, axis=-1) if dd.size else np.zeros(dd.shape[:-1])
    return np.where((n >= min_joints) & np.isfinite(m), m, _BIG)


def _cluster(nodes: list[tuple[int, int]], D: np.ndarray, gate: float) -> list[list[int]]:
    """Average-linkage agglomerative clustering of detections (view, person) with cost matrix
    D (n, n) (_BIG = incompatible), never two nodes of one view in a cluster."""
    clusters = [[k] for k in range(len(nodes))]
    views = [{nodes[k][0]} for k in range(len(nodes))]
    while len(clusters) > 1:
        best, pair = gate, None
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                if views[a] & views[b]:
                    continue
                sub = D[np.ix_(clusters[a], clusters[b])]
                fin = sub < _BIG
                if not fin.any():
                    continue
                cost = sub[fin].mean()
                if cost < best:
                    best, pair = cost, (a, b)
        if pair is None:
            break
        a, b = pair
        clusters[a] += clusters[b]
        views[a] |= views[b]
        del clusters[b], views[b]
    return clusters


def associate(keypoints: Sequence[Keypoints2D], cameras: Sequence[Camera], min_confidence: float = 0.2,
              min_joints: int = 4, max_epipolar_px: float | None = None,
              max_reprojection_px: float | None = None, max_lost: int | None = None,
              threshold_px: float | None = None) -> Association:
    """Put the people of several views into common, temporally consistent slots.

    Args:
        keypoints: one ``Keypoints2D`` (T, P_c, K, 3) per view, people in any order.
        cameras: the calibrated cameras, in the same order.
        min_confidence: joints below this confidence are ignored for matching.
        min_joints: a person needs this many confident joints to be matched at a frame.
        max_epipolar_px: gate for grouping new people across views (median symmetric epipolar
            distance); default 2 % of the image diagonal (44 px at 1920x1080).
        max_reprojection_px: gate for matching a detection to a track (median distance to the
            track's projected joints); default 6 % of the image diagonal (130 px at 1080p),
            room for a frame or two of fast motion.
        max_lost: frames a track survives unseen (default: 1 s of frames).
        threshold_px: inlier threshold for the per-frame triangulation (see
            ``triangulate_points``).
    Returns:
        ``Association``: a list of C ``Keypoints2D`` (T, P, K, 3) with the same P slots in every
        view (confidence 0 where a slot's person is not seen by that view), plus ``slots``
        (T, C, P) input indices and ``points3d`` (T, P, K, 3).
    Raises:
        Lift3DError: views and cameras that do not match in number, frames, format or size.
    """
    keypoints = list(keypoints) if not isinstance(keypoints, Keypoints2D) else [keypoints]
    if not all(isinstance(k, Keypoints2D) for k in keypoints):
        raise Lift3DError("associate needs a list of Keypoints2D, one per view")
    cameras = _check_cameras(cameras, len(keypoints))
    T = {k.num_frames for k in keypoints}
    if len(T) > 1:
        raise Lift3DError(f"the views have different frame counts {sorted(T)}; trim or align them first")
    if len({k.format for k in keypoints}) > 1:
        raise Lift3DError("the views use different keypoint formats; convert them with to_format first")
    for i, (k, cam) in enumerate(zip(keypoints, cameras)):
        if tuple(k.image_size) != tuple(cam.image_size):
            raise Lift3DError(f"view {i}: keypoints are for {k.image_size[0]}x{k.image_size[1]} images "
                              f"but its camera is calibrated for {cam.image_size[0]}x{cam.image_size[1]}")
    T = T.pop()
    C = len(cameras)
    K = keypoints[0].data.shape[2]
    diag = np.array([float(np.hypot(*c.image_size)) for c in cameras])
    epi_gate = float(max_epipolar_px) if max_epipolar_px is not None else 0.02 * float(diag.mean())
    rep_gate = float(max_reprojection_px) if max_reprojection_px is not None else 0.06 * float(diag.mean())
    lost_limit = int(max_lost) if max_lost is not None else int(round(keypoints[0].fps))
    fmt, fps = keypoints[0].format, keypoints[0].fps

    data = [k.data for k in keypoints]
    ok = [d[..., 2] >= min_confidence for d in data]  # (T, P_c, K)
    xn = [undistort_points(d[None, ..., :2], [cam])[0] for d, cam in zip(data, cameras)]  # (T, P_c, K, 2)

    tracks_X: list[np.ndarray] = []  # (K, 3) last triangulated joints, NaN = unknown
    last_seen: list[int] = []
    dead: set[int] = set()
    assign_all: list[np.ndarray] = []  # per frame (C, P_tracks) int
    points_all: list[np.ndarray] = []

    for t in range(T):
        present = [np.flatnonzero(ok[c][t].sum(-1) >= min_joints) for c in range(C)]
        active = [p for p in range(len(tracks_X)) if t - last_seen[p] <= lost_limit]
        assign = {}  # (c, track) -> person
        taken = [set() for _ in range(C)]
        # 1. match detections to active tracks
        if active:
            Xa = np.stack([tracks_X[p] for p in active])  # (A, K, 3)
            known = np.isfinite(Xa).all(-1)
            for c, cam in enumerate(cameras):
                if present[c].size == 0:
                    continue
                pc = cam.world_to_camera(np.where(known[..., None], Xa, 0.0))
                front = known & (pc[..., 2] > 0.05)
                proj = cam.project(np.where(known[..., None], Xa, 0.0))  # (A, K, 2)
                det = data[c][t, present[c], :, :2]  # (n, K, 2)
                d = np.linalg.norm(proj[:, None] - det[None], axis=-1)  # (A, n, K)
                both = front[:, None] & ok[c][t, present[c]][None]
                cost = _median_cost(d, both, min_joints)
                rows, cols = linear_sum_assignment(cost)
                for r, q in zip(rows, cols):
                    if cost[r, q] < rep_gate:
                        assign[(c, active[r])] = int(present[c][q])
                        taken[c].add(int(present[c][q]))
        # 2. group the leftovers across views into new people
        nodes = [(c, int(i)) for c in range(C) for i in present[c] if int(i) not in taken[c]]
        new_groups = []
        if len(nodes) >= 2:
            n = len(nodes)
            D = np.full((n, n), _BIG)
            for a in range(n):
                ca, ia = nodes[a]
                for b in range(a + 1, n):
                    cb, ib = nodes[b]
                    if ca == cb:
                        continue
                    d = epipolar_distances(xn[ca][t, ia], xn[cb][t, ib], cameras[ca], cameras[cb])
                    both = ok[ca][t, ia] & ok[cb][t, ib]
                    D[a, b] = D[b, a] = _median_cost(d[None], both[None], min_joints)[0]
            for cl in _cluster(nodes, D, epi_gate):
                if len(cl) >= 2:
                    new_groups.append({nodes[k][0]: nodes[k][1] for k in cl})
        first_new = len(tracks_X)
        for g in new_groups:
            p = len(tracks_X)
            tracks_X.append(np.full((K, 3), np.nan))
            last_seen.append(t)
            active.append(p)
            for c, i in g.items():
                assign[(c, p)] = i
        # 3. triangulate every track seen by >= 2 views; drop views that disagree
        P = len(tracks_X)
        frame_assign = np.full((C, P), -1)
        for (c, p), i in assign.items():
            frame_assign[c, p] = i
        seen2 = [p for p in range(P) if (frame_assign[:, p] >= 0).sum() >= 2]
        X_frame = np.full((P, K, 3), np.nan)
        if seen2:
            pts = np.zeros((C, len(seen2), K, 2))
            w = np.zeros((C, len(seen2), K))
            for j, p in enumerate(seen2):
                for c in range(C):
                    i = frame_assign[c, p]
                    if i >= 0:
                        pts[c, j] = data[c][t, i, :, :2]
                        w[c, j] = np.where(ok[c][t, i], data[c][t, i, :, 2], 0.0)
            res = triangulate_points(pts, cameras, w, robust="ransac", threshold_px=threshold_px)
            for j, p in enumerate(seen2):
                for c in range(C):
                    if frame_assign[c, p] >= 0:
                        used = w[c, j] > 0
                        if used.sum() >= min_joints and res.inliers[c, j][used].mean() < 0.5:
                            frame_assign[c, p] = -1  # this view's person is someone else
                good = np.isfinite(res.points[j]).all(-1)
                if (frame_assign[:, p] >= 0).sum() >= 2 and good.any():
                    tracks_X[p] = np.where(good[:, None], res.points[j], tracks_X[p])
                    X_frame[p] = res.points[j]
        for p in range(P):
            if p >= first_new and not np.isfinite(tracks_X[p]).any():
                dead.add(p)  # a new group that did not triangulate: not a person
                last_seen[p] = -(10 ** 9)
                frame_assign[:, p] = -1
            elif (frame_assign[:, p] >= 0).any() and np.isfinite(tracks_X[p]).any():
                last_seen[p] = t
        assign_all.append(frame_assign)
        points_all.append(X_frame)

    P = len(tracks_X)
    slots = np.full((T, C, P), -1)
    pts3d = np.full((T, P, K, 3), np.nan)
    for t, (fa, xf) in enumerate(zip(assign_all, points_all)):
        slots[t, :, : fa.shape[1]] = fa
        pts3d[t, : xf.shape[0]] = xf
    keep = [p for p in range(P) if p not in dead and (slots[:, :, p] >= 0).any()]
    slots, pts3d = slots[:, :, keep], pts3d[:, keep]
    P = len(keep)
    out = Association()
    for c in range(C):
        d = np.zeros((T, P, K, 3))
        tt, pp = np.nonzero(slots[:, c] >= 0)
        d[tt, pp] = data[c][tt, slots[tt, c, pp]]
        out.append(Keypoints2D(d, fmt, fps, keypoints[c].image_size))
    out.slots = slots
    out.points3d = pts3d
    return out
