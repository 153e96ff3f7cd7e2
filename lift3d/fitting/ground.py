"""Foot contacts, the ground plane and the gravity-aligned world frame of a monocular fit.

A single camera sees the body in its own frame; animators want a world whose Y axis is up and
whose floor is y = 0 (DESIGN.md). The floor is found from the feet: points that stop moving
near the lowest height the foot reaches are in contact, and the contact points of a sequence
lie on one plane. Everything here is numpy on (T, F, 3) camera-frame foot points.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter

FOOT_POINTS = ["left_heel", "right_heel", "left_big_toe", "right_big_toe", "left_small_toe",
               "right_small_toe", "left_ankle", "right_ankle"]


@dataclass
class GroundPlane:
    """The floor in camera coordinates: points x on it satisfy normal . x + offset = 0, and
    ``normal`` (unit) points up, away from the floor towards the body."""

    normal: np.ndarray
    offset: float

    def height(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame points -> (...,) signed height above the floor (metres)."""
        return np.asarray(points) @ self.normal + self.offset


def body_up(shoulders_mid: np.ndarray, hips_mid: np.ndarray) -> np.ndarray:
    """A gravity guess from the torso: the mean hips-to-shoulders direction over the sequence.

    Args:
        shoulders_mid, hips_mid: (T, 3) camera-frame points.
    Returns:
        (3,) unit vector (people stand mostly upright, so the mean torso axis is near vertical).
    """
    v = shoulders_mid - hips_mid
    v = v / np.linalg.norm(v, axis=-1, keepdims=True).clip(min=1e-9)
    m = v.mean(0)
    return m / max(np.linalg.norm(m), 1e-9)


def detect_contacts(feet: np.ndarray, up: np.ndarray, fps: float, max_speed: float = 0.3,
                    max_height: float = 0.06, speed: np.ndarray | None = None) -> np.ndarray:
    """Which foot points touch the ground in which frames.

    A point is in contact when it moves slower than ``max_speed`` (m/s, over a 3-frame median)
    and is within ``max_height`` of the lowest height that point reaches (its 5th percentile
    along ``up``), so a foot swinging slowly through the air at the top of a step is not taken.

    Args:
        feet: (T, F, 3) foot points (heels, toes, ankles), camera frame.
        up: (3,) unit up direction.
        fps: frames per second of the sequence.
        speed: optional (T, F) speeds (m/s) measured otherwise, e.g. from the 2D keypoints' image
            motion (``image_speed``), which a monocular fit's depth jitter does not reach; NaN
            entries fall back to the 3D points' own speed.
    Returns:
        (T, F) bool.
    """
    T = feet.shape[0]
    if T < 2:
        return np.ones(feet.shape[:2], dtype=bool)
    own = _per_frame(np.linalg.norm(np.diff(feet, axis=0), axis=-1) * fps)
    speed = own if speed is None else np.where(np.isfinite(speed), speed, own)
    speed = median_filter(speed, size=(min(3, T), 1), mode="nearest")
    h = feet @ up
    low = np.percentile(h, 5, axis=0)  # per point: an ankle in contact is higher than a toe
    return (speed < max_speed) & (h - low < max_height)


def _per_frame(step_values: np.ndarray) -> np.ndarray:
    """(T-1, F) values between frames -> (T, F) per frame (mean of the two neighbours)."""
    v = step_values
    return np.concatenate([v[:1], 0.5 * (v[1:] + v[:-1]), v[-1:]])


def image_speed(uv: np.ndarray, depth: np.ndarray, focal: float, fps: float,
                min_conf: float = 0.3) -> np.ndarray:
    """Speeds (m/s) of points from their image motion, at their depth, for a static camera.

    Args:
        uv: (T, F, 3) pixels + confidence; depth: (T, F) camera depth (m); focal: pixels.
    Returns:
        (T, F) speed across the line of sight; NaN where either neighbour frame is not confident.
    """
    step = np.linalg.norm(np.diff(uv[..., :2], axis=0), axis=-1) * fps * depth[1:] / focal
    ok = (uv[1:, :, 2] > min_conf) & (uv[:-1, :, 2] > min_conf)
    return _per_frame(np.where(ok, step, np.nan))


def fit_plane(points: np.ndarray, up_prior: np.ndarray, prior_m: float = 0.05) -> GroundPlane:
    """Least-squares plane through contact points, regularised towards ``up_prior``.

    Minimises sum_i (n . p_i + d)^2 + lambda (1 - (n . up)^2) over unit n: the smallest
    eigenvector of scatter + lambda (I - up up^T). With ``lambda = N * prior_m^2`` the prior
    only matters along directions in which the contacts spread less than about ``prior_m``
    (a person stepping in place gives a line of contacts, which leaves the tilt about that line
    free). Feet that err by centimetres in depth, as a monocular fit's do, tilt a plane that
    trusts them: ``fit_body`` uses 0.2 m there (``FitOptions.floor_prior_m``).

    Args:
        points: (N, 3) contact points, camera frame (N >= 1).
        up_prior: (3,) unit up guess.
    Returns:
        GroundPlane with the normal on the side of ``up_prior``.
    """
    c = points.mean(0)
    q = points - c
    lam = len(points) * prior_m**2
    M = q.T @ q + lam * (np.eye(3) - np.outer(up_prior, up_prior))
    w, V = np.linalg.eigh(M)
    n = V[:, 0]
    if n @ up_prior < 0:
        n = -n
    return GroundPlane(normal=n, offset=float(-n @ c))


def level_plane(points: np.ndarray, up: np.ndarray) -> GroundPlane:
    """The plane with normal ``up`` (3,) (unit) through the mean height of (N, 3) points."""
    return GroundPlane(normal=np.asarray(up, dtype=np.float64), offset=float(-(points @ up).mean()))


def estimate_ground(feet: np.ndarray, up_prior: np.ndarray, fps: float, rounds: int = 2,
                    speed: np.ndarray | None = None, contact: np.ndarray | None = None,
                    up_known: bool = False, prior_m: float = 0.05) -> tuple[GroundPlane, np.ndarray]:
    """Contacts and floor, alternated: contacts under the current up, plane through them.

    Robust to a few wrong contacts by dropping points more than 3 cm (or 2.5 robust sigmas)
    off the first plane before the final fit.

    Args:
        feet: (T, F, 3) foot points, camera frame; up_prior: (3,) unit; fps: frame rate.
        speed: optional (T, F) speeds for ``detect_contacts``.
        contact: optional (T, F) bool contacts known otherwise (e.g. from
            ``lift3d.lifting.contact``): the plane goes through them and they are returned as
            they are.
        up_known: ``up_prior`` is the true up (the camera knows it): the floor's normal is
            held to it and only its height comes from the contacts.
        prior_m: otherwise, how strongly ``fit_plane`` holds the normal to ``up_prior``.
    Returns:
        (GroundPlane, (T, F) bool contacts).
    """
    fit = level_plane if up_known else lambda pts, up: fit_plane(pts, up, prior_m)
    up = up_prior
    plane = None
    known = contact
    for _ in range(rounds):
        contact = detect_contacts(feet, up, fps, speed=speed) if known is None else known
        pts = feet[contact]
        if len(pts) < 3:  # nobody stands still: the lowest points of each frame are the floor
            pts = feet[np.arange(len(feet)), np.argmin(feet @ up, axis=1)]
        plane = fit(pts, up_prior)
        r = np.abs(plane.height(pts))
        keep = r < max(0.03, 2.5 * 1.4826 * np.median(r))
        if keep.sum() >= 3:
            plane = fit(pts[keep], up_prior)
        up = plane.normal
    return plane, detect_contacts(feet, up, fps, speed=speed) if known is None else known


def world_from_camera(plane: GroundPlane, origin_above: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The world frame of a fit: Y = the floor's normal, floor at y = 0, origin on the floor
    below ``origin_above`` (e.g. the first frame's pelvis), Z towards the camera along the floor (so a body
    facing the camera faces +Z, as the body models do at rest).

    Returns:
        A (3, 3), o (3,): world = (x_cam - o) @ A.T; the camera's extrinsics in that world are
        R = A.T, t = o (x_cam = R @ x_world + t).
    """
    y = plane.normal
    o = origin_above - plane.height(origin_above) * y
    z = -o - (-o @ y) * y  # from the origin towards the camera (at 0), levelled
    if np.linalg.norm(z) < 1e-6:  # camera looking straight down: any heading will do
        z = np.array([0.0, 1.0, 0.0]) - y[1] * y
    z = z / np.linalg.norm(z)
    x = np.cross(y, z)
    return np.stack([x, y, z]), o
