"""Multi-view triangulation of 2D keypoints from calibrated cameras, and temporal filtering.

Three layers, each usable alone:

- ``triangulate_dlt``: confidence-weighted linear triangulation (DLT) over any number of views,
  vectorised over every frame and joint at once.
- ``triangulate_points`` / ``triangulate``: the robust version: RANSAC over view pairs and/or
  iteratively reweighted least squares on the reprojection error in pixels, then per-joint view
  selection (views whose reprojection error stays above a threshold are dropped) and a final
  refit. ``triangulate`` takes ``Keypoints2D`` (or arrays) and returns ``Joints3D`` in the world
  frame with a confidence from the number of supporting views and their reprojection error.
- ``smooth_trajectories`` / ``filter_joints``: a confidence-weighted Savitzky-Golay filter
  (local polynomial least squares) that first drops gross outliers (against a running median)
  and then bridges short gaps with cubics fitted to the frames on both sides.

Speed: everything is vectorised over all frames, people and joints at once; the weighted DLT
normal matrices of all points are one small matrix product (``_normal_basis``), solved in
closed form, so a 4-camera, 3,000-frame, 17-joint sequence triangulates in tens of
milliseconds on one CPU thread.

Conventions: cameras are ``lift3d.types.Camera`` (OpenCV, world to camera ``x_cam = R x + t``);
pixel coordinates are undistorted with each camera's own distortion first, so all the geometry
works in normalised camera coordinates. Reprojection errors are reported in undistorted pixels
(normalised error x the camera's focal length), which differ from distorted-image pixels only
by the local magnification of the lens distortion.

Shapes: C = cameras (views), T = frames, P = people, K = keypoints (joints), N = any number of
points (the flattened leading axes).
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.ndimage import correlate1d, median_filter

from lift3d import formats
from lift3d.distortion import invert_distortion
from lift3d.io_utils import Lift3DError
from lift3d.types import Camera, Joints3D, Keypoints2D

__all__ = [
    "triangulate", "triangulate_dlt", "triangulate_points", "TriangulationResult",
    "undistort_points", "reprojection_errors", "smooth_trajectories", "filter_joints",
]

ROBUST_MODES = ("ransac", "irls", None)


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------

def _check_cameras(cameras: Sequence[Camera], n_views: int | None = None) -> list[Camera]:
    if isinstance(cameras, Camera):
        cameras = [cameras]
    try:
        cameras = list(cameras)
    except TypeError:
        raise Lift3DError("cameras must be a list of lift3d.types.Camera, one per view") from None
    if not all(isinstance(c, Camera) for c in cameras):
        raise Lift3DError("cameras must be a list of lift3d.types.Camera, one per view")
    if n_views is not None and len(cameras) != n_views:
        raise Lift3DError(f"got {n_views} views of keypoints but {len(cameras)} cameras; "
                          "give exactly one camera per view, in the same order")
    if len(cameras) < 2:
        raise Lift3DError(f"triangulation needs at least 2 cameras, got {len(cameras)}")
    return cameras


def _check_points(points2d, weights, n_cams: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, ..., 2) points and (C, ...) weights as float arrays; NaN only where the weight is 0."""
    try:
        pts = np.asarray(points2d, dtype=np.float64)
    except (TypeError, ValueError):
        raise Lift3DError("2D points must be a numeric array of shape (C, T, K, 2)") from None
    if pts.ndim < 2 or pts.shape[-1] != 2:
        raise Lift3DError(f"2D points must have shape (C, ..., 2), e.g. (C, T, K, 2); got {pts.shape}")
    if pts.shape[0] != n_cams:
        raise Lift3DError(f"got {pts.shape[0]} views of 2D points but {n_cams} cameras; "
                          "give exactly one camera per view, in the same order")
    if weights is None:
        w = np.ones(pts.shape[:-1])
    else:
        try:
            w = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError):
            raise Lift3DError("weights must be a numeric array of shape (C, T, K)") from None
        if w.shape != pts.shape[:-1]:
            raise Lift3DError(f"weights must have shape {pts.shape[:-1]} (the points' shape "
                              f"without the last axis), got {w.shape}")
        if not np.isfinite(w).all():
            raise Lift3DError("weights contain NaN or infinity; use 0 for missing points")
        if (w < 0).any():
            raise Lift3DError("weights must be non-negative (0 = missing)")
    finite = np.isfinite(pts)
    if not finite.all():
        bad = ~finite.all(-1) & (w > 0)
        if bad.any():
            raise Lift3DError(f"{int(bad.sum())} 2D point(s) with non-zero weight are NaN or infinite; "
                              "give missing points weight (confidence) 0")
        pts = np.where(finite, pts, 0.0)
    return pts, w


# --------------------------------------------------------------------------------------------
# geometry kernels (vectorised over N points; internal arrays keep the point axis last so
# every elementwise operation runs on contiguous rows)
# --------------------------------------------------------------------------------------------

def _undistort(cameras: Sequence[Camera], pixels: np.ndarray, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(C, N, 2) pixels -> (C, 2, N) undistorted normalised coordinates, all cameras at once.

    Inverts ``Camera.project``'s distortion (k1, k2, p1, p2, k3) by Newton's method with the
    analytic 2x2 Jacobian, from the first-order inverse: 2-3 steps reach ~1e-14 for ordinary
    lenses (the fixed-point iteration needs ~20). Also returns ``good`` (C, N): False where the
    inversion did not converge (far outside the lens model's valid range); such points are
    not used.
    """
    C = len(cameras)
    K = np.stack([c.K for c in cameras])
    v = (pixels[..., 1] - K[:, 1, 2, None]) / K[:, 1, 1, None]
    u = (pixels[..., 0] - K[:, 0, 2, None] - K[:, 0, 1, None] * v) / K[:, 0, 0, None]
    d = np.zeros((C, 5))
    for i, c in enumerate(cameras):
        d[i, : min(5, c.dist.size)] = c.dist[:5]
    if not np.any(d):
        return np.stack([u, v], 1), np.ones(u.shape, dtype=bool)
    k = [d[:, i, None] for i in range(5)]  # (C, 1) each: k1, k2, p1, p2, k3
    x, y, good = invert_distortion(u, v, k, iterations)
    return np.stack([np.where(good, x, 0.0), np.where(good, y, 0.0)], 1), good


def undistort_points(points2d: np.ndarray, cameras: Sequence[Camera]) -> np.ndarray:
    """Pixels (C, ..., 2) -> (C, ..., 2) undistorted normalised camera coordinates (x/z, y/z),
    each view with its own camera's intrinsics and distortion (the exact inverse of
    ``Camera.project``'s distortion model, by Newton's method; NaN where it does not converge)."""
    pts = np.asarray(points2d, dtype=np.float64)
    C = pts.shape[0]
    xn, good = _undistort(list(cameras), pts.reshape(C, -1, 2))
    xn = np.where(good[:, None], xn, np.nan)
    return np.moveaxis(xn, 1, -1).reshape(pts.shape)


def _extrinsics(cameras: Sequence[Camera]) -> np.ndarray:
    """(C, 3, 4) world-to-camera [R | t]."""
    return np.stack([np.concatenate([c.R, c.t[:, None]], 1) for c in cameras])


def _focals(cameras: Sequence[Camera]) -> np.ndarray:
    """(C,) focal lengths in pixels (mean of fx and fy)."""
    return np.array([c.focal for c in cameras])


# Index pairs of the unique entries of the symmetric 4x4 DLT normal matrix Q = A^T A: the
# 3x3 block (6), the last column's first 3 (3) and the corner (1).
_M_IDX = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2), (0, 3), (1, 3), (2, 3), (3, 3)]


def _normal_basis(Rt: np.ndarray) -> np.ndarray:
    """Per-camera constant part of the DLT normal matrices, (C, 4, 10).

    A view with normalised point (x, y) and projection rows p1, p2, p3 (of [R | t]) gives the
    DLT rows a1 = x p3 - p1 and a2 = y p3 - p2 (a_i . [X; 1] is the camera depth of X times its
    normalised reprojection error). Every entry (i, j) of Q = a1 a1^T + a2 a2^T is linear in the
    features (1, x, y, x^2 + y^2):

        Q_ij = (p1i p1j + p2i p2j) - x (p3i p1j + p1i p3j) - y (p3i p2j + p2i p3j)
               + (x^2 + y^2) p3i p3j,

    so a weighted sum over views of all N points' normal matrices is one small matrix product
    (features x weights) @ basis: no per-point 4x4 products.
    """
    p1, p2, p3 = Rt[:, 0], Rt[:, 1], Rt[:, 2]  # (C, 4)
    G = np.empty((Rt.shape[0], 4, len(_M_IDX)))
    for k, (i, j) in enumerate(_M_IDX):
        G[:, 0, k] = p1[:, i] * p1[:, j] + p2[:, i] * p2[:, j]
        G[:, 1, k] = -(p3[:, i] * p1[:, j] + p1[:, i] * p3[:, j])
        G[:, 2, k] = -(p3[:, i] * p2[:, j] + p2[:, i] * p3[:, j])
        G[:, 3, k] = p3[:, i] * p3[:, j]
    return G


def _features(xn: np.ndarray) -> np.ndarray:
    """(C, 2, N) normalised points -> (C, 4, N) features (1, x, y, x^2 + y^2)."""
    x, y = xn[:, 0], xn[:, 1]
    return np.stack([np.ones_like(x), x, y, x * x + y * y], 1)


def _weighted_sum(w: np.ndarray, F: np.ndarray, G: np.ndarray, entries: int = 10) -> np.ndarray:
    """Summed weighted normal-matrix entries: (..., C, N) weights, (C, 4, N) features,
    (C, 4, 10) basis -> (..., entries, N) (the linear solver needs only the first 9)."""
    C, _, N = F.shape
    A = (w[..., :, None, :] * F).reshape(w.shape[:-2] + (4 * C, N))
    return G[..., :entries].reshape(4 * C, entries).T @ A


def _solve_normal(S: np.ndarray, solver: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """Solve summed weighted DLT normal equations S (..., 10, N).

    solver "linear": the inhomogeneous form (X4 = 1): M X = -b with M the 3x3 block, solved in
    closed form (adjugate). "eigh": the classic homogeneous DLT, the eigenvector of the 4x4
    normal matrix with the smallest eigenvalue (batched ``numpy.linalg.eigh``; several times
    slower). Both are exact on noise-free data; the linear form has no bias from the scale of
    the world coordinates (the homogeneous one depends on it unless the data are normalised).

    Returns:
        X (..., 3, N) and ok (..., N), False where the system is degenerate (< 2 independent rays).
    """
    m00, m01, m02, m11, m12, m22, b0, b1, b2 = np.moveaxis(S[..., :9, :], -2, 0)
    scale = (m00 + m11 + m22) / 3.0
    if solver == "eigh":
        M = np.empty(m00.shape + (4, 4))
        for k, (i, j) in enumerate(_M_IDX):
            M[..., i, j] = M[..., j, i] = S[..., k, :]
        M = M / np.where(scale > 0, scale, 1.0)[..., None, None]
        evals, evecs = np.linalg.eigh(M)
        h = evecs[..., :, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            X = h[..., :3] / h[..., 3:4]
        ok = (evals[..., 1] > 1e-9) & (np.abs(h[..., 3]) > 1e-12) & (scale > 0)
        return np.moveaxis(X, -1, -2), ok
    # adjugate of the symmetric 3x3 block
    c00 = m11 * m22 - m12 * m12
    c01 = m02 * m12 - m01 * m22
    c02 = m01 * m12 - m02 * m11
    c11 = m00 * m22 - m02 * m02
    c12 = m01 * m02 - m00 * m12
    c22 = m00 * m11 - m01 * m01
    det = m00 * c00 + m01 * c01 + m02 * c02
    ok = (np.abs(det) > 1e-10 * np.abs(scale) ** 3) & (scale > 0)
    inv = -1.0 / np.where(ok, det, 1.0)
    X = np.stack([
        (c00 * b0 + c01 * b1 + c02 * b2) * inv,
        (c01 * b0 + c11 * b1 + c12 * b2) * inv,
        (c02 * b0 + c12 * b1 + c22 * b2) * inv,
    ], -2)
    return X, ok


def _camera_coords(X: np.ndarray, Rt: np.ndarray) -> list[np.ndarray]:
    """World points X (..., 3, N) -> camera coordinates [x, y, z], each (..., C, N)."""
    X0, X1, X2 = X[..., 0, None, :], X[..., 1, None, :], X[..., 2, None, :]
    return [Rt[:, i, 0, None] * X0 + Rt[:, i, 1, None] * X1 + Rt[:, i, 2, None] * X2 + Rt[:, i, 3, None]
            for i in range(3)]


def _depths(X: np.ndarray, Rt: np.ndarray) -> np.ndarray:
    """Camera depths (..., C, N) of world points X (..., 3, N)."""
    X0, X1, X2 = X[..., 0, None, :], X[..., 1, None, :], X[..., 2, None, :]
    return Rt[:, 2, 0, None] * X0 + Rt[:, 2, 1, None] * X1 + Rt[:, 2, 2, None] * X2 + Rt[:, 2, 3, None]


def _residuals(X: np.ndarray, xn: np.ndarray, Rt: np.ndarray, focal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reprojection errors in undistorted pixels (..., C, N) and depths (..., C, N) of world
    points X (..., 3, N) against normalised observations xn (C, 2, N)."""
    px, py, z = _camera_coords(X, Rt)
    zs = np.where(np.abs(z) < 1e-9, 1e-9, z)
    dx = px / zs - xn[:, 0]
    dy = py / zs - xn[:, 1]
    return np.sqrt(dx * dx + dy * dy) * focal[:, None], z


WEIGHTINGS = ("metric", "pixel")


def _weighted_fit(FG: tuple[np.ndarray, np.ndarray], w: np.ndarray, Rt: np.ndarray, focal: np.ndarray,
                  weighting: str = "metric", depth: np.ndarray | None = None, solver: str = "linear",
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted DLT solve.

    A view's DLT residual is (camera depth) x (normalised reprojection error): the distance in
    metres between the point and the view's ray, measured at the point's depth.

    - ``weighting="metric"``: minimise sum_c w_c (that distance)^2: one linear solve. The
      maximum-likelihood choice when a detector's pixel error scales with the person's size in
      the image (twice as far, half the pixel error), which is how 2D keypoint detectors behave.
    - ``weighting="pixel"``: weight each view by (focal / depth)^2 so the cost becomes the pixel
      reprojection error (Hartley & Sturm's iterative linear method): the first solve uses
      ``depth`` if given, else the metric solution's depths, then one more solve.
      Maximum likelihood for constant pixel noise.

    Args:
        FG: (features (C, 4, N), basis (C, 4, 10)), see ``_normal_basis``; w: (..., C, N)
            weights (hypotheses may lead).
    Returns:
        X (..., 3, N), ok (..., N).
    """
    entries = 10 if solver == "eigh" else 9
    if weighting == "pixel" and depth is None:
        X, ok = _weighted_fit(FG, w, Rt, focal, "metric", solver=solver)
        depth = _depths(X, Rt)
    ww = w if weighting == "metric" else w * (focal ** 2)[:, None] / np.maximum(np.abs(depth), 1e-3) ** 2
    X, ok = _solve_normal(_weighted_sum(ww, *FG, entries), solver)
    return np.where(ok[..., None, :], X, 0.0), ok


def _check_weighting(weighting: str) -> None:
    if weighting not in WEIGHTINGS:
        raise Lift3DError(f"weighting must be 'metric' or 'pixel', got {weighting!r}")


def reprojection_errors(points3d: np.ndarray, points2d: np.ndarray, cameras: Sequence[Camera]) -> np.ndarray:
    """Per-view reprojection error in (distorted, image) pixels.

    Args:
        points3d: (..., 3) world points; points2d: (C, ..., 2) pixels.
    Returns:
        (C, ...) pixel distances (NaN where the 3D point is NaN).
    """
    return np.stack([np.linalg.norm(cam.project(points3d) - p, axis=-1) for cam, p in zip(cameras, points2d)])


# --------------------------------------------------------------------------------------------
# linear triangulation
# --------------------------------------------------------------------------------------------

def triangulate_dlt(points2d: np.ndarray, cameras: Sequence[Camera], weights: np.ndarray | None = None,
                    min_views: int = 2, weighting: str = "metric", solver: str = "linear",
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Confidence-weighted linear (DLT) triangulation over any number of views.

    Pixels are undistorted with each camera's distortion, then every point's weighted DLT normal
    equations (one 2-row block per view, weight = the view's confidence) are solved in one
    vectorised pass. Exact on noise-free data.

    Args:
        points2d: (C, T, K, 2) pixel coordinates (any shape (C, ..., 2) works).
        cameras: C cameras, in the same order.
        weights: (C, T, K) non-negative weights (detector confidences); 0 = missing. None: all 1.
        min_views: points seen (weight > 0) by fewer views get NaN.
        weighting: "metric" (default: each view's residual is the point's distance from its ray,
            right for detector errors proportional to the person's image size) or "pixel"
            (reprojection error in pixels, one more solve; right for constant pixel noise).
        solver: "linear" (inhomogeneous 3x3 system in closed form, default) or "eigh" (the
            homogeneous DLT: batched eigh of the 4x4 normal matrices, several times slower).
    Returns:
        points3d: (T, K, 3) world points, NaN where fewer than ``min_views`` views (or a
            degenerate geometry).
        error: (T, K) weighted mean reprojection error in undistorted pixels over the views used;
            NaN where the point is NaN.
    Raises:
        Lift3DError: wrong number of cameras, shapes that do not match, NaN with non-zero weight.
    """
    cameras = _check_cameras(cameras)
    _check_weighting(weighting)
    if solver not in ("linear", "eigh"):
        raise Lift3DError(f"solver must be 'linear' or 'eigh', got {solver!r}")
    pts, w = _check_points(points2d, weights, len(cameras))
    lead = pts.shape[1:-1]
    C = len(cameras)
    Rt, focal = _extrinsics(cameras), _focals(cameras)
    xn, good = _undistort(cameras, pts.reshape(C, -1, 2))  # (C, 2, N)
    w = w.reshape(C, -1) * good
    FG = (_features(xn), _normal_basis(Rt))
    X, ok = _weighted_fit(FG, w, Rt, focal, weighting, solver=solver)
    ok &= (w > 0).sum(0) >= max(2, min_views)
    r, _ = _residuals(X, xn, Rt, focal)
    wsum = w.sum(0)
    err = np.where(ok, (w * r).sum(0) / np.where(wsum > 0, wsum, 1.0), np.nan)
    X = np.where(ok, X, np.nan).T
    return X.reshape(lead + (3,)), err.reshape(lead)


# --------------------------------------------------------------------------------------------
# robust triangulation
# --------------------------------------------------------------------------------------------

@dataclass
class TriangulationResult:
    """Arrays from ``triangulate_points``; ``...`` is the points' shape without C (e.g. (T, K)).

    Attributes:
        points: (..., 3) world points in metres; NaN where not triangulated.
        confidence: (...,) in [0, 1]; 0 where not triangulated (see ``triangulate_points``).
        error: (...,) mean reprojection error of the supporting views, undistorted pixels.
        num_views: (...,) number of supporting (inlier) views.
        inliers: (C, ...) bool, the views each point was finally triangulated from.
        threshold_px: (C,) the inlier thresholds used, pixels.
    """

    points: np.ndarray
    confidence: np.ndarray
    error: np.ndarray
    num_views: np.ndarray
    inliers: np.ndarray
    threshold_px: np.ndarray


def default_threshold(cameras: Sequence[Camera], fraction: float = 0.01) -> np.ndarray:
    """(C,) default inlier thresholds: ``fraction`` of each image's diagonal (1 %: 22 px at
    1920x1080, 8 px at 640x480), about 5x the error of a good 2D detector on a full-body view."""
    return np.array([fraction * float(np.hypot(*c.image_size)) for c in cameras])


def _gm_weight(r: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Geman-McClure IRLS weight rho'(r)/r for rho = r^2 s^2 / (r^2 + s^2)."""
    s2 = sigma ** 2
    return (s2 / (s2 + r ** 2)) ** 2


def triangulate_points(points2d: np.ndarray, cameras: Sequence[Camera], weights: np.ndarray | None = None,
                       robust: str | None = "ransac", threshold_px: float | Sequence[float] | None = None,
                       min_views: int = 2, iterations: int = 3, weighting: str = "metric",
                       max_pairs: int = 45, seed: int = 0) -> TriangulationResult:
    """Robust confidence-weighted triangulation over any number of views (arrays in and out).

    Steps, all vectorised over points (r = reprojection error in undistorted pixels):

    0. The weighted DLT over all views (``robust=None`` stops here, keeping every view). With
       ``robust="ransac"``, points whose fit agrees with every view (all r < thr / 2, in front of
       every camera) are final; steps 1-3 run on the others only (typically 5-25 %).
    1. ``"ransac"``: every view pair (or ``max_pairs`` random ones) is a hypothesis, triangulated
       from its two views and scored on all views with the truncated (MSAC) cost
       sum_c w_c min(r_c^2, thr_c^2); a pair whose own two views disagree is void. The best
       hypothesis's inlier views (r < thr) are refit.
    2. ``iterations`` rounds of iteratively reweighted least squares with Geman-McClure weights
       times the confidences; the scale shrinks to thr / 2 (from thr after RANSAC, from 8 thr
       after the all-view fit for ``"irls"``: graduated non-convexity).
    3. View selection: views with r >= thr (or behind the camera) are dropped and the point is
       refit on the rest. Points left with fewer than ``min_views`` views get NaN and
       confidence 0.

    Confidence of a triangulated point: mean confidence of its supporting views x
    (1 - 1 / n^2) for n supporting views (0.75 for 2, 0.89 for 3, 0.94 for 4) x
    exp(-(e / thr)^2) for its mean reprojection error e.

    Args:
        points2d: (C, ..., 2) pixels, e.g. (C, T, K, 2).
        cameras: C cameras in the same order.
        weights: (C, ...) confidences (0 = missing); None: all 1.
        robust: "ransac" (default), "irls" or None.
        threshold_px: inlier threshold in pixels, one value or one per camera; default 1 % of
            each image diagonal (``default_threshold``). Set it to about 4-5x the detector's noise.
        min_views: minimum supporting views for a point (>= 2).
        iterations: IRLS rounds.
        weighting: least-squares weighting of the views, "metric" or "pixel" (see
            ``triangulate_dlt``); the robust steps always judge views by pixel error.
        max_pairs: with more view pairs than this, RANSAC samples this many at random (``seed``).
    Returns:
        TriangulationResult.
    """
    if robust not in ROBUST_MODES:
        raise Lift3DError(f"robust must be one of 'ransac', 'irls' or None, got {robust!r}")
    _check_weighting(weighting)
    cameras = _check_cameras(cameras)
    pts, w = _check_points(points2d, weights, len(cameras))
    C = len(cameras)
    lead = pts.shape[1:-1]
    min_views = max(2, int(min_views))
    try:
        thr = default_threshold(cameras) if threshold_px is None else np.broadcast_to(
            np.asarray(threshold_px, dtype=np.float64), (C,)).copy()
    except (TypeError, ValueError):
        raise Lift3DError(f"threshold_px must be a number of pixels or one per camera, got {threshold_px!r}") from None
    if not (np.isfinite(thr).all() and (thr > 0).all()):
        raise Lift3DError("threshold_px must be positive")
    Rt, focal = _extrinsics(cameras), _focals(cameras)
    xn, good = _undistort(cameras, pts.reshape(C, -1, 2))  # (C, 2, N)
    w = w.reshape(C, -1) * good
    F, G = _features(xn), _normal_basis(Rt)
    valid = w > 0

    def fit(FG_, w_, depth=None):
        return _weighted_fit(FG_, w_, Rt, focal, weighting, depth)

    X, ok = fit((F, G), w)
    r, z = _residuals(X, xn, Rt, focal)
    thr_c = thr[:, None]  # (C, 1)
    cur = valid
    if robust == "ransac":
        # Points whose all-view fit agrees with every view (all residuals < thr / 2, in front of
        # every camera) are done; hypotheses, IRLS and view selection run on the rest only.
        sus = ~ok | (valid & ((r >= 0.5 * thr_c) | (z <= 0))).any(0)
        if sus.any():
            sub = np.flatnonzero(sus)
            pairs = list(itertools.combinations(range(C), 2))
            if len(pairs) > max_pairs:
                rng = np.random.default_rng(seed)
                pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), max_pairs, replace=False))]
            FGs, xs, ws = (F[:, :, sub], G), xn[:, :, sub], w[:, sub]
            cs = _ransac_views(FGs[0], G, xs, ws, thr_c, Rt, focal, pairs)
            Xs, oks = fit(FGs, ws * cs)
            Xs, oks, cs, rs = _irls_select(fit, FGs, xs, ws, Xs, oks, thr_c, Rt, focal,
                                           np.geomspace(1.0, 0.5, iterations) if iterations > 1 else [0.5] * iterations)
            cur = valid.copy()
            X[:, sub], ok[sub], cur[:, sub], r[:, sub] = Xs, oks, cs, rs
    elif robust == "irls":
        # Graduated non-convexity from the all-view fit: the Geman-McClure scale shrinks from
        # 8 thr to thr / 2 so that the first weights do not trap a poor start.
        X, ok, cur, r = _irls_select(fit, (F, G), xn, w, X, ok, thr_c, Rt, focal,
                                     np.geomspace(8.0, 0.5, max(2, iterations)))

    nv = cur.sum(0)
    ok &= nv >= min_views
    wi = w * cur
    wsum = wi.sum(0)
    err = (wi * r).sum(0) / np.where(wsum > 0, wsum, 1.0)
    mean_conf = wsum / np.maximum(nv, 1)
    thr_mean = np.where(nv > 0, (thr_c * cur).sum(0) / np.maximum(nv, 1), 1.0)
    conf = np.clip(mean_conf, 0, 1) * (1.0 - 1.0 / np.maximum(nv, 1) ** 2) * np.exp(-(err / thr_mean) ** 2)
    conf = np.where(ok, conf, 0.0)
    X = np.where(ok, X, np.nan).T
    err = np.where(ok, err, np.nan)
    cur = cur & ok
    return TriangulationResult(
        points=X.reshape(lead + (3,)), confidence=conf.reshape(lead), error=err.reshape(lead),
        num_views=np.where(ok, nv, 0).reshape(lead), inliers=cur.reshape((C,) + lead), threshold_px=thr,
    )


def _irls_select(fit, FG, xn, w, X, ok, thr_c, Rt, focal, scales):
    """IRLS with Geman-McClure weights at the given scales (x thr), then view selection
    (residual < thr, in front of the camera) and a final fit on the kept views; ``fit(FG, w,
    depth)`` is the weighted solve.

    Returns X (3, n), ok (n,), kept views (C, n) and their final residuals (C, n).
    """
    valid = w > 0
    for sc in scales:
        r, z = _residuals(X, xn, Rt, focal)
        rw = _gm_weight(r, sc * thr_c) * (z > 0)
        X2, ok2 = fit(FG, w * rw, z)
        X = np.where(ok2, X2, X)
        ok = ok | ok2
    r, z = _residuals(X, xn, Rt, focal)
    cur = valid & (r < thr_c) & (z > 0)
    X, ok = fit(FG, w * cur)
    r, _ = _residuals(X, xn, Rt, focal)
    return X, ok, cur, r


def _ransac_views(F: np.ndarray, G: np.ndarray, xn: np.ndarray, w: np.ndarray, thr_c: np.ndarray, Rt: np.ndarray,
                  focal: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """View-pair RANSAC: (C, n) bool inlier views of the best pair hypothesis per point (all
    valid views where no pair hypothesis is consistent)."""
    C, n = w.shape
    valid = w > 0
    H = len(pairs)
    sel = np.zeros((H, C, 1), dtype=bool)
    for h, (i, j) in enumerate(pairs):
        sel[h, i] = sel[h, j] = True
    # each pair's own 2-view DLT (metric weighting: it only ranks hypotheses)
    ia, ib = np.array(pairs).T
    wa, wb = w[ia], w[ib]  # (H, n)
    A = np.concatenate([wa[:, None] * F[ia], wb[:, None] * F[ib]], 1)  # (H, 8, n)
    B = np.concatenate([G[ia, :, :9], G[ib, :, :9]], 1)  # (H, 8, 9)
    Xh, okh = _solve_normal(np.swapaxes(B, 1, 2) @ A)
    okh &= (wa > 0) & (wb > 0)
    Xh = np.where(okh[:, None], Xh, 0.0)
    r, z = _residuals(Xh, xn, Rt, focal)  # (H, C, n)
    inl = valid & (r < thr_c) & (z > 0)
    # MSAC cost; a hypothesis whose own two views disagree (not both inliers) is void
    cost = (w * np.where(inl, r * r, thr_c * thr_c)).sum(1)
    own = (sel & inl).sum(1) == 2
    cost = np.where(okh & own, cost, np.inf)
    best = np.argmin(cost, 0)
    idx = np.arange(n)
    has = np.isfinite(cost[best, idx])
    return np.where(has, inl[best, :, idx].T, valid)


def _format_for(K: int, fmt: str | None) -> str:
    if fmt is not None:
        if len(formats.names(fmt)) != K:
            raise Lift3DError(f"format {fmt} has {len(formats.names(fmt))} joints but the keypoints have {K}")
        return fmt
    matches = [f for f, n in formats.FORMATS.items() if len(n) == K]
    if not matches:
        raise Lift3DError(f"no known keypoint format has {K} joints; pass format=")
    return matches[0]


def _gather_keypoints(keypoints, cameras, fmt, fps) -> tuple[np.ndarray, str, float]:
    """list[Keypoints2D] or array -> (C, T, P, K, 3), format, fps."""
    if isinstance(keypoints, Keypoints2D):
        raise Lift3DError("triangulate needs one Keypoints2D per camera (a list), got a single one")
    if isinstance(keypoints, (list, tuple)) and keypoints and all(isinstance(k, Keypoints2D) for k in keypoints):
        n = len(keypoints)
        if len(cameras) != n:
            raise Lift3DError(f"got {n} keypoint sets but {len(cameras)} cameras; give one camera per view, in order")
        T = {k.num_frames for k in keypoints}
        if len(T) > 1:
            raise Lift3DError(f"the views have different frame counts {sorted(T)}; trim or align them first")
        P = {k.num_people for k in keypoints}
        if len(P) > 1:
            raise Lift3DError(f"the views have different people counts {sorted(P)}; associate them first "
                              "(lift3d.fusion.associate.associate)")
        F = {k.format for k in keypoints}
        if len(F) > 1:
            raise Lift3DError(f"the views use different keypoint formats {sorted(F)}; convert with to_format")
        rates = {k.fps for k in keypoints}
        if max(rates) - min(rates) > 1e-6:
            raise Lift3DError(f"the views have different frame rates {sorted(rates)}")
        for i, (k, cam) in enumerate(zip(keypoints, cameras)):
            if tuple(k.image_size) != tuple(cam.image_size):
                raise Lift3DError(f"view {i}: keypoints are for {k.image_size[0]}x{k.image_size[1]} images "
                                  f"but its camera is calibrated for {cam.image_size[0]}x{cam.image_size[1]}")
        data = np.stack([k.data for k in keypoints])
        return data, keypoints[0].format, (keypoints[0].fps if fps is None else float(fps))
    try:
        data = np.asarray(keypoints, dtype=np.float64)
    except (TypeError, ValueError):
        raise Lift3DError("keypoints must be a list of Keypoints2D (one per camera) or an array "
                          "(C, T, K, 3) / (C, T, P, K, 3)") from None
    if data.ndim == 4:
        data = data[:, :, None]
    if data.ndim != 5 or data.shape[-1] != 3:
        raise Lift3DError(f"keypoint array must be (C, T, K, 3) or (C, T, P, K, 3), got {data.shape}")
    if data.shape[0] != len(cameras):
        raise Lift3DError(f"got {data.shape[0]} views of keypoints but {len(cameras)} cameras; "
                          "give one camera per view, in order")
    conf = data[..., 2]
    if not np.isfinite(conf).all():
        raise Lift3DError("keypoint confidences contain NaN or infinity; use 0 for missing points")
    if (~np.isfinite(data[..., :2]).all(-1) & (conf > 0)).any():
        raise Lift3DError("some keypoints with confidence > 0 have NaN or infinite coordinates; "
                          "give missing keypoints confidence 0")
    data = np.where(np.isfinite(data), data, 0.0)
    return data, _format_for(data.shape[3], fmt), (30.0 if fps is None else float(fps))


def triangulate(keypoints, cameras: Sequence[Camera], min_confidence: float = 0.1,
                robust: str | None = "ransac", threshold_px: float | Sequence[float] | None = None,
                min_views: int = 2, smooth: bool | dict = False, format: str | None = None,
                fps: float | None = None, return_result: bool = False, **kwargs):
    """Triangulate 2D keypoints seen by several calibrated cameras into world-frame 3D joints.

    Args:
        keypoints: one ``Keypoints2D`` (T, P, K, 3) per camera (people already in the same slots
            in every view: see ``lift3d.fusion.associate``), or an array (C, T, K, 3) or
            (C, T, P, K, 3) of pixels + confidence.
        cameras: the C calibrated cameras, in the same order.
        min_confidence: 2D keypoints below this confidence are ignored; the rest weigh in with
            their confidence.
        robust: "ransac" (view-pair RANSAC + IRLS + view selection; default), "irls" or None
            (plain weighted DLT). See ``triangulate_points``.
        threshold_px: inlier threshold in pixels (default: 1 % of the image diagonal).
        min_views: minimum supporting views per joint.
        smooth: False, True, or a dict of ``smooth_trajectories`` options: temporal filter that
            drops gross outliers and bridges short gaps (lengths default to 0.3 s window, 0.5 s
            longest gap at the sequence's frame rate).
        format: keypoint format name for array input (default: guessed from the joint count).
        fps: frame rate for array input (default 30) or to override.
        return_result: also return the ``TriangulationResult`` (before smoothing).
        **kwargs: passed to ``triangulate_points`` (weighting, iterations, max_pairs, seed).
    Returns:
        ``Joints3D`` (T, P, K, 3) with frame "world", and confidence (T, P, K) from the number of
        supporting views and their reprojection error (0 where a joint could not be
        triangulated; its position is then 0). With ``return_result``: (Joints3D, result).
    Raises:
        Lift3DError: on mismatched views/cameras, frame counts, formats or NaN input.
    """
    cameras = _check_cameras(cameras, len(keypoints) if isinstance(keypoints, (list, tuple)) else None)
    data, fmt, fps = _gather_keypoints(keypoints, cameras, format, fps)
    conf = data[..., 2]
    w = np.where(conf >= min_confidence, conf, 0.0)
    res = triangulate_points(data[..., :2], cameras, w, robust=robust, threshold_px=threshold_px,
                             min_views=min_views, **kwargs)
    pts, c = res.points, res.confidence
    if smooth:
        opts = _filter_defaults(fps, smooth if isinstance(smooth, dict) else {})
        pts, c = smooth_trajectories(pts, c, **opts)
    joints = Joints3D(pts, fmt, fps, frame="world", confidence=c)
    return (joints, res) if return_result else joints


# --------------------------------------------------------------------------------------------
# temporal filtering
# --------------------------------------------------------------------------------------------

def _local_poly(x: np.ndarray, w: np.ndarray, half: int, degree: int) -> np.ndarray:
    """Weighted local polynomial fit at every frame (confidence-weighted Savitzky-Golay).

    The fit at frame t minimises sum_s w[t+s] (x[t+s] - sum_k c_k s^k)^2 over |s| <= half; its
    value there is c_0 = row 0 of the inverse moment (Hankel) matrix times the moment sums,
    in closed form for degree <= 2.

    Args:
        x: (T, M, D) values (0 where w = 0); w: (T, M) weights.
    Returns:
        value (T, M, D) of the fit at each frame (the weighted mean where the window holds
        fewer than degree + 2 points or the system is degenerate).
    """
    s = np.arange(-half, half + 1, dtype=np.float64)
    S = [correlate1d(w, s ** k, axis=0, mode="constant") for k in range(2 * degree + 1)]
    B = [correlate1d(w[..., None] * x, s ** k, axis=0, mode="constant") for k in range(degree + 1)]
    n = correlate1d((w > 0).astype(np.float64), np.ones_like(s), axis=0, mode="constant")
    with np.errstate(all="ignore"):
        mean = B[0] / np.where(S[0] > 0, S[0], 1.0)[..., None]
        scale = np.maximum(S[0], 1e-12)
        if degree == 0:
            return mean
        if degree == 1:
            det = S[0] * S[2] - S[1] ** 2
            r = [S[2], -S[1]]
        elif degree == 2:
            s0, s1, s2, s3, s4 = S
            r = [s2 * s4 - s3 * s3, s2 * s3 - s1 * s4, s1 * s3 - s2 * s2]  # row 0 of the adjugate
            det = s0 * r[0] + s1 * r[1] + s2 * r[2]
        else:
            A = np.stack([np.stack([S[i + j] for j in range(degree + 1)], -1) for i in range(degree + 1)], -2)
            det = np.linalg.det(A)
            ok = np.abs(det) > 1e-12 * scale ** (degree + 1) * half ** (degree * (degree + 1))
            A = np.where(ok[..., None, None], A, np.eye(degree + 1))
            c0 = np.linalg.solve(A, np.stack(B, -2))[..., 0, :]
            return np.where((ok & (n >= degree + 2))[..., None], c0, mean)
        # relative to the moments' own scale: s^k grows with the window
        ok = (np.abs(det) > 1e-12 * scale ** (degree + 1) * max(half, 1) ** (degree * (degree + 1))) & (n >= degree + 2)
        c0 = sum(ri[..., None] * bi for ri, bi in zip(r, B)) / np.where(ok, det, 1.0)[..., None]
    return np.where(ok[..., None], c0, mean)


def _gap_ends(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For (T, M) validity: the last valid frame at or before each frame (-1 if none) and the
    first valid frame at or after it (T if none), each (T, M)."""
    T = valid.shape[0]
    t = np.arange(T)[:, None]
    prev = np.maximum.accumulate(np.where(valid, t, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(valid, t, T)[::-1], axis=0)[::-1]
    return prev, nxt


def _bridge(x, w, out, out_conf, fill, prev, nxt, m):
    """Fill gap frames (``fill`` (T, M)) with a cubic fitted by weighted least squares to the
    ``m`` frames on each side of each gap (lower degree where fewer points are there)."""
    T, M = fill.shape
    tf, cf = np.nonzero(fill)
    a, b = prev[tf, cf], nxt[tf, cf]
    gap_id, first, inv = np.unique(a * M + cf, return_index=True, return_inverse=True)
    ga, gb, gc = a[first], b[first], cf[first]  # one row per gap
    tau = np.concatenate([ga[:, None] - m + 1 + np.arange(m), gb[:, None] + np.arange(m)], 1)  # (G, 2m)
    inside = (tau >= 0) & (tau < T)
    tau_c = tau.clip(0, T - 1)
    ws = np.where(inside, w[tau_c, gc[:, None]], 0.0)
    xs = x[tau_c, gc[:, None]]  # (G, 2m, 3)
    centre = 0.5 * (ga + gb)[:, None]
    scale = (0.5 * (gb - ga) + m)[:, None]
    u = (tau - centre) / scale  # in [-1, 1]
    n = (ws > 0).sum(1)
    deg = np.where(n >= 6, 3, 1)  # a cubic needs support; else a line through both sides
    V = u[..., None] ** np.arange(4)  # (G, 2m, 4)
    V = np.where(np.arange(4) <= deg[:, None, None], V, 0.0)
    A = np.einsum("gs,gsi,gsj->gij", ws, V, V) + np.where(np.arange(4) > deg[:, None], 1.0, 0.0)[..., None] * np.eye(4)
    B = np.einsum("gs,gsi,gsd->gid", ws, V, xs)
    coef = np.linalg.solve(A + 1e-9 * np.eye(4), B)  # (G, 4, 3)
    uf = (tf - centre[inv, 0]) / scale[inv, 0]
    val = np.einsum("ni,nid->nd", uf[:, None] ** np.arange(4), coef[inv])
    out = out.copy()
    out[tf, cf] = val
    out_conf = out_conf.copy()
    out_conf[tf, cf] = 0.5 * np.minimum(w[a, cf], w[b, cf])
    return out, out_conf


def smooth_trajectories(points: np.ndarray, confidence: np.ndarray, window: int = 9, degree: int = 2,
                        max_gap: int = 15, outlier_sigma: float = 4.0, min_outlier_m: float = 0.03,
                        median_window: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Confidence-aware Savitzky-Golay smoothing of 3D trajectories, bridging short gaps.

    1. Outliers: each trajectory is compared with its running median over ``median_window``
       frames (gaps linearly interpolated for this reference only). Frames farther from it than
       ``outlier_sigma`` x the joint's spread (1.4826 x the median distance to the plain fit of
       step 2), and at least ``min_outlier_m``, are treated as missing (a triangulation that picked the wrong views
       moves a joint by decimetres for a frame or two; real motion does not).
    2. At every remaining frame with confidence > 0, a polynomial of ``degree`` is fitted to the
       ``window`` frames around it by least squares weighted with the confidences (missing
       frames weigh 0), and the point becomes the fit's value there. Vectorised through moment
       sums (correlations), one small linear solve per frame and joint; windows with too few
       points fall back to the weighted mean.
    3. Gaps (missing frames and rejected outliers) of at most ``max_gap`` frames with data on
       both sides are bridged by a cubic fitted (weighted least squares) to max(4, window // 2
       + 1) frames on each side; bridged frames get half the smaller confidence of the two
       ends. Longer gaps, and gaps at the ends, stay missing (NaN, confidence 0).

    Args:
        points: (T, ..., 3) positions (NaN or anything where confidence is 0).
        confidence: (T, ...) in [0, 1]; 0 = missing.
        window: odd number of frames (9 = 0.3 s at 30 fps).
        degree: polynomial degree (2 keeps accelerations; 0 is a moving average).
        max_gap: longest gap bridged, in frames (15 = 0.5 s at 30 fps); 0 bridges nothing.
        outlier_sigma: 0 or None disables the outlier step.
    Returns:
        (T, ..., 3) smoothed points (NaN where still missing) and (T, ...) confidences.
    """
    pts = np.asarray(points, dtype=np.float64)
    conf = np.asarray(confidence, dtype=np.float64)
    if pts.shape[:-1] != conf.shape or pts.shape[-1] != 3:
        raise Lift3DError(f"points must be (T, ..., 3) and confidence (T, ...); got {pts.shape} and {conf.shape}")
    if window < 3 or window % 2 == 0:
        raise Lift3DError(f"window must be an odd number of frames >= 3, got {window}")
    T = pts.shape[0]
    shape = pts.shape
    if pts.size == 0:
        return pts.copy(), conf.copy()
    x = pts.reshape(T, -1, 3)
    w = np.where(np.isfinite(x).all(-1), conf.reshape(T, -1), 0.0)
    w = np.clip(w, 0.0, None)
    x = np.where(w[..., None] > 0, x, 0.0)
    valid = w > 0
    cols = np.arange(x.shape[1])[None]
    t = np.arange(T)[:, None]

    half = window // 2
    degree = int(min(degree, window - 2))
    if outlier_sigma and outlier_sigma > 0 and T >= 3 and valid.any():
        # Reference: running median (gaps linearly interpolated). Scale: the median distance to
        # the plain weighted fit (a running median follows noise-free trends exactly, so its
        # own residuals would understate the noise).
        prev, nxt = _gap_ends(valid)
        a, b = np.where(prev >= 0, prev, nxt).clip(0, T - 1), np.where(nxt < T, nxt, prev).clip(0, T - 1)
        span = (b - a).astype(np.float64)
        s = ((t - a) / np.where(span > 0, span, 1.0))[..., None]
        filled = (1 - s) * x[a, cols] + s * x[b, cols]
        size = min(median_window, T) | 1
        ref = median_filter(filled, size=(size, 1, 1), mode="nearest")
        d = np.linalg.norm(x - ref, axis=-1)
        fit0 = _local_poly(x, w, half, degree)
        d0 = np.where(valid, np.linalg.norm(x - fit0, axis=-1), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            spread = 1.4826 * np.nanmedian(d0, axis=0)
        spread = np.where(np.isfinite(spread), spread, 0.0)
        outlier = valid & (d > np.maximum(outlier_sigma * spread, min_outlier_m))
    else:
        outlier = np.zeros_like(valid)
        fit0 = _local_poly(x, w, half, degree)
    keep = valid & ~outlier
    wk = np.where(keep, w, 0.0)
    fit = fit0
    redo = outlier.any(0)  # refit only the trajectories that lost frames
    if redo.any():
        fit = fit0.copy()
        fit[:, redo] = _local_poly(x[:, redo], wk[:, redo], half, degree)
    out = np.where(keep[..., None], fit, np.nan)
    out_conf = np.where(keep, w, 0.0)

    missing = ~keep
    if max_gap > 0 and missing.any() and keep.any():
        prev, nxt = _gap_ends(keep)
        fill = missing & (prev >= 0) & (nxt < T) & (nxt - prev - 1 <= max_gap)
        if fill.any():
            out, out_conf = _bridge(x, wk, out, out_conf, fill, prev, nxt, max(4, half + 1))
    return out.reshape(shape), out_conf.reshape(shape[:-1])


def _filter_defaults(fps: float, options: dict) -> dict:
    """Filter lengths in frames for a frame rate: window 0.3 s, outlier median 0.23 s, longest
    bridged gap 0.5 s (9, 7 and 15 frames at 30 fps); explicit options win."""
    def odd(seconds: float) -> int:
        return max(3, int(round(seconds * fps)) | 1)

    opts = {"window": odd(0.3), "median_window": odd(0.23), "max_gap": int(round(0.5 * fps))}
    opts.update(options)
    return opts


def filter_joints(joints: Joints3D, **options) -> Joints3D:
    """``smooth_trajectories`` applied to a ``Joints3D`` (every person and joint), with the
    window and gap lengths scaled to its frame rate (0.3 s, 0.5 s); missing joints stay at 0
    with confidence 0. Options: window, degree, max_gap, outlier_sigma, ... (in frames)."""
    pts = np.where(joints.confidence[..., None] > 0, joints.data, np.nan)
    out, conf = smooth_trajectories(pts, joints.confidence, **_filter_defaults(joints.fps, options))
    return Joints3D(out, joints.format, joints.fps, joints.frame, conf)
