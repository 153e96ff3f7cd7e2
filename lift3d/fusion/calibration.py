"""Multi-camera calibration: calibration boards, corner detection, intrinsics, extrinsics by
bundle adjustment, and refinement of extrinsics from people's 2D keypoints.

Conventions (DESIGN.md): metres; OpenCV camera frame (x right, y down, z forward); extrinsics map
world to camera, ``x_cam = R @ x_world + t``; image points in pixels with (0, 0) at the centre
of the top-left pixel (OpenCV's convention).

Typical use::

    board = CharucoBoard(squares=(9, 6), square_size=0.08, marker_size=0.06)
    dets = {name: detect_board(video, board) for name, video in videos.items()}  # synchronised
    calib = calibrate(dets, board)            # intrinsics, extrinsics, bundle adjustment
    print(calib.summary()); calib.save("Calib.toml")

    calib = refine_from_keypoints(calib.cameras, keypoints)   # later, from people in the scene

The world frame of ``calibrate`` is camera 1's (the first camera in the mapping) unless
``world="board"``, which puts the ground plane on the board in one frame, lift3d's Y-up way.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from lift3d.fusion import calib_io
from lift3d.fusion.triangulate import triangulate_dlt
from lift3d.io_utils import Lift3DError
from lift3d.types import Camera, Keypoints2D
from lift3d.rotations import nearest_rotation, rotation_angle

__all__ = [
    "Checkerboard", "CharucoBoard", "BoardDetections", "detect_board", "calibrate_camera", "calibrate",
    "Calibration", "refine_from_keypoints", "transform_world", "Z_UP_TO_Y_UP", "render_board_image",
]

# Rotation taking a Z-up world (Pose2Sim, Blender) to lift3d's Y-up world: x stays, y_new = z_old,
# z_new = -y_old. Use with ``transform_world(cameras, Z_UP_TO_Y_UP)``.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# Board frame (x, y along the board, z into it) -> lift3d world with the board as the ground,
# face up: x_w = x_b, y_w = -z_b (up, out of the board's face), z_w = y_b. Right-handed.
_BOARD_TO_GROUND = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


# =========================================================================== boards


@dataclass(frozen=True)
class Checkerboard:
    """A plain checkerboard.

    Attributes:
        corners: inner corners (columns, rows), i.e. squares minus one in each direction.
        square_size: side of one square, metres.

    Corner ``id = row * columns + col`` lies at board point ``(col * s, row * s, 0)``, in the order
    ``cv2.findChessboardCorners`` returns them. That order can come out rotated by 180 degrees
    from one view to another when the board looks the same both ways up; use ChArUco for
    multi-camera extrinsics, where every corner has an unambiguous id.
    """

    corners: tuple[int, int]
    square_size: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "corners", (int(self.corners[0]), int(self.corners[1])))
        if min(self.corners) < 2 or not self.square_size > 0:
            raise ValueError("a checkerboard needs at least 2x2 inner corners and a positive square size")

    @property
    def num_corners(self) -> int:
        return self.corners[0] * self.corners[1]

    @cached_property
    def object_points(self) -> np.ndarray:
        """(N, 3) corner positions on the board (z = 0), metres."""
        cols, rows = self.corners
        c, r = np.meshgrid(np.arange(cols), np.arange(rows))
        return np.stack([c.ravel(), r.ravel(), np.zeros(c.size)], axis=-1) * self.square_size

    def texture(self, pixels_per_square: int = 64) -> tuple[np.ndarray, np.ndarray, float]:
        """The printable board: (image (H, W) uint8, board point (x, y) of the image's top-left
        pixel edge, pixels per metre). One white square of margin on every side."""
        cols, rows = self.corners
        q = pixels_per_square
        sq = (np.add.outer(np.arange(rows + 1), np.arange(cols + 1)) % 2).astype(np.uint8) * 255
        img = np.full(((rows + 3) * q, (cols + 3) * q), 255, np.uint8)
        img[q:-q, q:-q] = np.kron(sq, np.ones((q, q), np.uint8))
        return img, np.array([-2.0, -2.0]) * self.square_size, q / self.square_size


@dataclass(frozen=True)
class CharucoBoard:
    """A ChArUco board (OpenCV >= 4.6 layout).

    Attributes:
        squares: number of squares (x, y).
        square_size: side of one chessboard square, metres.
        marker_size: side of one ArUco marker, metres.
        dictionary: name of a predefined ArUco dictionary (``cv2.aruco.DICT_*``).
        legacy: True for boards printed with OpenCV < 4.6 that have an even number of rows
            (their pattern is shifted by one square; OpenCV's ``setLegacyPattern``).

    Corner ids and board coordinates are OpenCV's: ``getChessboardCorners()``, origin at the
    board's top-left square corner, x right, y down, z into the board.
    """

    squares: tuple[int, int]
    square_size: float
    marker_size: float
    dictionary: str = "DICT_5X5_100"
    legacy: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "squares", (int(self.squares[0]), int(self.squares[1])))
        if not hasattr(cv2.aruco, self.dictionary):
            raise ValueError(f"unknown ArUco dictionary {self.dictionary!r} (expected e.g. 'DICT_5X5_100')")
        if not 0 < self.marker_size < self.square_size:
            raise ValueError("marker_size must be positive and smaller than square_size")

    @cached_property
    def cv_board(self) -> cv2.aruco.CharucoBoard:
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        board = cv2.aruco.CharucoBoard(tuple(self.squares), self.square_size, self.marker_size, d)
        board.setLegacyPattern(self.legacy)
        return board

    @property
    def num_corners(self) -> int:
        return (self.squares[0] - 1) * (self.squares[1] - 1)

    @cached_property
    def object_points(self) -> np.ndarray:
        """(N, 3) chessboard-corner positions on the board (z = 0), metres; row = corner id."""
        return np.asarray(self.cv_board.getChessboardCorners(), dtype=np.float64).reshape(-1, 3)

    def texture(self, pixels_per_square: int = 64) -> tuple[np.ndarray, np.ndarray, float]:
        """The printable board: (image (H, W) uint8, board point (x, y) of the image's top-left
        pixel edge, pixels per metre). Half a square of white margin on every side."""
        q, m = pixels_per_square, pixels_per_square // 2
        size = (self.squares[0] * q + 2 * m, self.squares[1] * q + 2 * m)
        img = self.cv_board.generateImage(size, marginSize=m, borderBits=1)
        ppm = q / self.square_size
        return img, np.array([-m, -m]) / ppm, ppm


Board = Checkerboard | CharucoBoard


# =========================================================================== detection


@dataclass
class BoardDetections:
    """Board corners found in the frames of one camera.

    Attributes:
        ids: per processed frame, (N_f,) int corner ids (rows of ``board.object_points``);
            empty where the board was not found.
        corners: per processed frame, (N_f, 2) pixel coordinates.
        image_size: (width, height).
        stride: entry i is video frame ``i * stride``.
    """

    ids: list[np.ndarray]
    corners: list[np.ndarray]
    image_size: tuple[int, int]
    stride: int = 1

    @property
    def num_frames(self) -> int:
        return len(self.ids)

    def seen(self, min_corners: int = 6) -> list[int]:
        """Indices of the frames with at least ``min_corners`` corners."""
        return [i for i, ids in enumerate(self.ids) if len(ids) >= min_corners]


def detect_board(frames: str | Path | Iterable[np.ndarray], board: Board, *, stride: int = 1,
                 progress: bool = True, max_frames: int | None = None) -> BoardDetections:
    """Find the board's corners in every ``stride``-th frame.

    Args:
        frames: a video, image or folder path (``lift3d.keypoints.open_frames``), or an iterable
            of (H, W, 3) RGB / (H, W) grey uint8 images.
        board: a ``Checkerboard`` (``findChessboardCorners`` + ``cornerSubPix``) or a
            ``CharucoBoard`` (``CharucoDetector.detectBoard``).
        stride: process one frame in ``stride`` (the same stride in every camera keeps the
            detections of synchronised videos aligned).
        max_frames: stop after this many processed frames.

    Returns:
        BoardDetections with one entry per processed frame.
    """
    from lift3d.keypoints.video import open_frames

    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if isinstance(frames, (str, Path)):
        with open_frames(frames) as source:
            total = (source.num_frames + stride - 1) // stride or None
            return _detect_all(source, board, stride, progress, max_frames, total)
    return _detect_all(frames, board, stride, progress, max_frames, None)


def _detect_all(frames: Iterable[np.ndarray], board: Board, stride: int, progress: bool,
                max_frames: int | None, total: int | None) -> BoardDetections:
    detector = _make_detector(board)
    ids_list, corners_list, size = [], [], None
    count = 0
    if max_frames is not None:
        total = min(total or max_frames, max_frames)
    with tqdm(total=total, desc="board", unit="frame", disable=not progress, leave=False) as bar:
        for i, frame in enumerate(frames):
            if i % stride:
                continue
            frame = np.asarray(frame)
            if frame.ndim == 3:
                frame = cv2.cvtColor(frame, cv2.COLOR_RGBA2GRAY if frame.shape[2] == 4 else cv2.COLOR_RGB2GRAY)
            gray = frame
            if gray.dtype != np.uint8:
                raise ValueError(f"frames must be uint8 images, got {gray.dtype}")
            size = size or (gray.shape[1], gray.shape[0])
            ids, corners = detector(gray)
            ids_list.append(ids)
            corners_list.append(corners)
            bar.update(1)
            count += 1
            if max_frames is not None and count >= max_frames:
                break
    if size is None:
        raise Lift3DError("no frames to detect the calibration board in")
    return BoardDetections(ids_list, corners_list, size, stride)


def _make_detector(board: Board):
    """A function gray image -> (ids (N,) int, corners (N, 2) float64)."""
    empty = (np.zeros(0, int), np.zeros((0, 2)))
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-3)
    if isinstance(board, CharucoBoard):
        det = cv2.aruco.CharucoDetector(board.cv_board)
        # Markers sit this far (in squares) inside their white squares; the corner refinement
        # window must stay closer to the corner than that, or marker edges pull on it.
        inset = (board.square_size - board.marker_size) / (2 * board.square_size)

        def detect(gray: np.ndarray):
            corners, ids, _, _ = det.detectBoard(gray)
            if ids is None or len(ids) == 0:
                return empty
            # detectBoard in OpenCV 4.11 (and the 4.x releases before PR #28380) returns corners
            # shifted by +0.5 px (opencv#25539); refining them again lands on the true saddle
            # point whatever the version.
            pts = corners.reshape(-1, 2).astype(np.float32)
            if len(pts) > 1:
                d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
                spacing = float(np.min(d[np.triu_indices(len(pts), 1)]))
                half = int(np.clip(np.floor(0.9 * inset * spacing), 2, 11))
                pts = cv2.cornerSubPix(gray, pts.reshape(-1, 1, 2), (half, half), (-1, -1), criteria)
            return ids.ravel().astype(int), pts.reshape(-1, 2).astype(np.float64)

        return detect

    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK

    def detect(gray: np.ndarray):
        found, corners = cv2.findChessboardCorners(gray, tuple(board.corners), flags=flags)
        if not found:
            return empty
        grid = corners.reshape(board.corners[1], board.corners[0], 2)
        # The refinement window must stay inside one square, or it locks onto a neighbouring corner.
        spacing = min(np.linalg.norm(np.diff(grid, axis=a), axis=-1).min() for a in (0, 1))
        half = int(np.clip(spacing * 0.4, 2, 11))
        corners = cv2.cornerSubPix(gray, corners, (half, half), (-1, -1), criteria)
        return np.arange(board.num_corners), corners.reshape(-1, 2).astype(np.float64)

    return detect


# =========================================================================== intrinsics


def _usable(obj: np.ndarray, min_corners: int) -> bool:
    """Enough corners, not all on one line (a line of corners gives no homography)."""
    if len(obj) < min_corners:
        return False
    s = np.linalg.svd(obj[:, :2] - obj[:, :2].mean(0), compute_uv=False)
    return s[1] > 1e-3 * s[0]


def _views(det: BoardDetections, board: Board, min_corners: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{frame: (object points (N, 3), image points (N, 2))} for the usable frames."""
    out = {}
    for f, (ids, uv) in enumerate(zip(det.ids, det.corners)):
        obj = board.object_points[ids] if len(ids) else np.zeros((0, 3))
        if _usable(obj, min_corners):
            out[f] = (obj, uv)
    return out


def calibrate_camera(detections: BoardDetections, board: Board, image_size: tuple[int, int] | None = None, *,
                     fix_k3: bool = True, max_views: int = 60, min_corners: int = 6) -> tuple[Camera, float]:
    """Intrinsics of one camera from its board detections (``cv2.calibrateCamera``).

    Args:
        detections: corners of the board in this camera's frames.
        board: the board they were detected with.
        image_size: (width, height); the detections' own when None.
        fix_k3: keep the 6th-order radial term at 0: a planar board rarely constrains it unless
            views fill the image corners, and left free it trades off against k1/k2 and
            extrapolates badly at the borders.
        max_views: at most this many frames (evenly spread) enter the solver, which is cubic in
            the number of views.
        min_corners: frames with fewer corners are skipped.

    Returns:
        (camera with R = I, t = 0 and 5 distortion coefficients, RMS reprojection error in px).
    """
    size = tuple(image_size or detections.image_size)
    views = _views(detections, board, min_corners)
    if len(views) < 3:
        raise Lift3DError(f"the board was found in only {len(views)} frame(s) with >= {min_corners} corners; "
                          f"intrinsic calibration needs at least 3 (10+ varied views recommended)")
    keys = sorted(views)
    if len(keys) > max_views:
        keys = [keys[i] for i in np.linspace(0, len(keys) - 1, max_views).round().astype(int)]
    obj = [views[k][0].astype(np.float32) for k in keys]
    img = [views[k][1].astype(np.float32) for k in keys]
    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)
    rms, K, dist, _, _ = cv2.calibrateCamera(obj, img, size, None, None, flags=flags, criteria=criteria)
    dist = np.zeros(5) if dist is None else dist.ravel()[:5]
    return Camera(K=K, dist=dist, image_size=size), float(rms)


# =========================================================================== poses and small geometry


def _board_pose(obj: np.ndarray, uv: np.ndarray, cam: Camera) -> tuple[np.ndarray, np.ndarray, float]:
    """Board-to-camera (R, t) from one view of a planar board, and its RMS error in px.

    IPPE gives the two poses a plane can have; the better one is refined by Levenberg-Marquardt.
    """
    ok, rvecs, tvecs, _ = cv2.solvePnPGeneric(obj, uv, cam.K, cam.dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok or not len(rvecs):
        return np.eye(3), np.zeros(3), np.inf
    rvec, tvec = cv2.solvePnPRefineLM(obj, uv, cam.K, cam.dist, rvecs[0].copy(), tvecs[0].copy())
    proj = cv2.projectPoints(obj, rvec, tvec, cam.K, cam.dist)[0].reshape(-1, 2)
    rms = float(np.sqrt(np.mean(np.sum((proj - uv) ** 2, axis=-1))))
    return cv2.Rodrigues(rvec)[0], tvec.ravel(), rms


def _robust_mean_pose(Rs: np.ndarray, ts: np.ndarray, max_deg: float = 5.0) -> tuple[np.ndarray, np.ndarray, int]:
    """Consensus of relative poses (n, 3, 3), (n, 3): the candidate agreeing with most others
    (IPPE's occasional flipped solutions disagree with everyone), averaged with its agreeing set.
    Returns (R, t, number of agreeing candidates)."""
    ang = np.degrees(rotation_angle(Rs[:, None], Rs[None, :]))
    scale = max(float(np.median(np.linalg.norm(ts, axis=-1))), 1e-6)
    dist = np.linalg.norm(ts[:, None] - ts[None, :], axis=-1)
    agree = (ang < max_deg) & (dist < 0.1 * scale)
    best = int(np.argmax(agree.sum(1) - 1e-9 * ang.sum(1)))
    inl = agree[best]
    return nearest_rotation(Rs[inl].sum(0)), np.median(ts[inl], axis=0), int(inl.sum())


def transform_world(cameras: Mapping[str, Camera], R: np.ndarray, t: np.ndarray | None = None) -> dict[str, Camera]:
    """The same cameras in a new world frame, ``x_new = R @ x_old + t``.

    E.g. ``transform_world(cams, Z_UP_TO_Y_UP)`` turns a Z-up calibration (Pose2Sim, Blender)
    into lift3d's Y-up world. Returns new Camera objects; R (3, 3) rotation, t (3,) metres.
    """
    R = np.asarray(R, dtype=np.float64)
    t = np.zeros(3) if t is None else np.asarray(t, dtype=np.float64)
    out = {}
    for name, c in cameras.items():
        Rn = c.R @ R.T  # x_cam = R_c x_old + t_c = R_c R^T (x_new - t) + t_c
        out[name] = Camera(K=c.K.copy(), dist=c.dist.copy(), R=Rn, t=c.t - Rn @ t, image_size=c.image_size)
    return out


# =========================================================================== projection used by the solvers

# scipy's default LSMR tolerances leave the trust-region steps of these badly conditioned
# problems (intrinsics, poses and points all correlate) inexact enough that trf crawls for
# hundreds of iterations; solved tightly, a few iterations converge.
_LSMR_OPTIONS = {"atol": 1e-12, "btol": 1e-12, "maxiter": 2000}


def _intrinsics_vector(cam: Camera) -> np.ndarray:
    """(10,) fx, fy, cx, cy, skew, k1, k2, p1, p2, k3."""
    d = np.zeros(5)
    d[: min(5, cam.dist.size)] = cam.dist[:5]
    K = cam.K
    return np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1], *d])


def _project(xc: np.ndarray, intr: np.ndarray) -> np.ndarray:
    """Camera-frame points (M, 3) -> pixels (M, 2) through per-point intrinsics (M, 10) with
    OpenCV's 5-coefficient distortion (the model ``Camera.project`` uses, vectorised here over
    observations of different cameras with intrinsics that change during the solve)."""
    z = np.where(np.abs(xc[:, 2]) < 1e-9, 1e-9, xc[:, 2])
    x, y = xc[:, 0] / z, xc[:, 1] / z
    k1, k2, p1, p2, k3 = intr[:, 5], intr[:, 6], intr[:, 7], intr[:, 8], intr[:, 9]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([intr[:, 0] * xd + intr[:, 4] * yd + intr[:, 2], intr[:, 1] * yd + intr[:, 3]], axis=-1)


def _rotate(Rs: np.ndarray, idx: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Rotate points (M, 3) by Rs[idx] ((K, 3, 3) indexed per point)."""
    return np.einsum("mij,mj->mi", Rs[idx], pts)


def _sparsity(n_res_per_obs: int, blocks: Sequence[tuple[np.ndarray, np.ndarray]], n_params: int,
              extra_rows: Sequence[np.ndarray] = ()) -> coo_matrix:
    """Jacobian sparsity: observation m's residual rows depend on parameter columns
    ``start[m] : start[m] + width`` for each (start (M,), width) block; start < 0 means none."""
    rows, cols = [], []
    for start, width in blocks:
        m = np.flatnonzero(start >= 0)
        for r in range(n_res_per_obs):
            for w in range(int(width)):
                rows.append(m * n_res_per_obs + r)
                cols.append(start[m] + w)
    n_obs = len(blocks[0][0])
    n_rows = n_obs * n_res_per_obs
    for extra in extra_rows:  # extra residuals appended after the observations: their columns
        rows.append(np.full(len(extra), n_rows))
        cols.append(np.asarray(extra))
        n_rows += 1
    r, c = np.concatenate(rows), np.concatenate(cols)
    return coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(n_rows, n_params))


def _per_camera_rms(err: np.ndarray, cam_idx: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """RMS of per-point reprojection distances (px) per camera, as cv2.calibrateCamera reports."""
    out = {}
    for c, name in enumerate(names):
        e = err[cam_idx == c]
        out[name] = float(np.sqrt(np.mean(e**2))) if e.size else float("nan")
    return out


# =========================================================================== result


@dataclass
class Calibration:
    """A multi-camera calibration.

    Attributes:
        cameras: {name: Camera}, world-to-camera extrinsics in metres.
        rms_px: per camera RMS reprojection error (px) of the final adjustment.
        num_observations: per camera number of 2D points the adjustment used.
        intrinsic_rms_px: per camera RMS of the single-camera intrinsic calibration, if any.
        board_poses: {frame: (R (3, 3), t (3,))} board-to-world poses, for board calibrations.
        info: solver details (iterations, time, world frame).
    """

    cameras: dict[str, Camera]
    rms_px: dict[str, float] = field(default_factory=dict)
    num_observations: dict[str, int] = field(default_factory=dict)
    intrinsic_rms_px: dict[str, float] = field(default_factory=dict)
    board_poses: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path, fmt: str | None = None, units: float = 1.0) -> Path:
        """Write the cameras with ``lift3d.fusion.calib_io.save_calibration`` (atomically);
        the format comes from ``fmt`` or the extension (.toml = Pose2Sim, .yml/.xml = OpenCV,
        .json = lift3d, a folder = EasyMocap)."""
        return calib_io.save_calibration(self.cameras, path, fmt, units=units)

    write = save

    @classmethod
    def load(cls, path: str | Path, fmt: str | None = None, units: float | None = None) -> "Calibration":
        return cls(calib_io.load_calibration(path, fmt, units))

    def summary(self) -> str:
        """A small text table: focal, principal point, camera centre, RMS per camera."""
        lines = [f"{'camera':<12} {'fx':>8} {'fy':>8} {'cx':>7} {'cy':>7}   {'centre (m)':<24} "
                 f"{'rms px':>7} {'points':>7}"]
        for name, c in self.cameras.items():
            ctr = ", ".join(f"{v:+.3f}" for v in c.center)
            rms, n = self.rms_px.get(name, float("nan")), self.num_observations.get(name, 0)
            lines.append(f"{name:<12} {c.K[0, 0]:8.1f} {c.K[1, 1]:8.1f} {c.K[0, 2]:7.1f} {c.K[1, 2]:7.1f}   "
                         f"{ctr:<24} {rms:7.3f} {n:7d}")
        return "\n".join(lines)


# =========================================================================== board calibration


def calibrate(detections: Mapping[str, BoardDetections], board: Board, *,
              intrinsics: Mapping[str, Camera] | None = None, refine_intrinsics: bool = True,
              fix_k3: bool = True, world: str = "camera0", world_frame: int | None = None,
              min_corners: int = 6, max_pnp_rms: float = 3.0, loss_scale_px: float = 1.0,
              min_outlier_px: float = 0.5, max_frames: int | None = 200) -> Calibration:
    """Calibrate synchronised cameras from board detections: intrinsics, extrinsics, then a joint
    bundle adjustment.

    1. Intrinsics per camera with ``calibrate_camera`` (unless given in ``intrinsics``).
    2. Board pose per camera per frame (``solvePnP``, IPPE + LM); frames where two cameras see
       the board give their relative pose; the consensus over frames of each pair, chained along
       the pairs sharing the most frames (a maximum spanning tree), places every camera relative
       to the first.
    3. Bundle adjustment (``scipy.optimize.least_squares``, sparse finite-difference Jacobian)
       over the extrinsics of cameras 2..C, the board pose of every frame and, if
       ``refine_intrinsics``, fx, fy, cx, cy and distortion of every camera: a soft-L1 pass,
       then corners far off the fit are dropped, then a Huber pass. Camera 1 is held at the
       origin (it fixes the gauge); the board's known square size fixes the scale.

    Args:
        detections: {camera name: BoardDetections}; entry f of every camera is the same instant.
            The first camera anchors the world.
        board: the board.
        intrinsics: known intrinsics per camera (extrinsics ignored) instead of step 1.
        refine_intrinsics: let the adjustment refine the intrinsics too.
        fix_k3: keep k3 at zero (see ``calibrate_camera``).
        world: "camera0": world = the first camera's frame (R = I, t = 0; y points down).
            "board": world = the board in frame ``world_frame`` taken as the ground plane, Y up
            (out of the board's printed face), X along the board's x, origin at the board's
            origin (ChArUco: the outer top-left corner of the squares; checkerboard: the first
            inner corner).
        world_frame: frame for ``world="board"``; default the frame whose board most cameras see.
        min_corners: frames with fewer corners in a camera are not used for that camera.
        max_pnp_rms: single-view board poses worse than this (px) are dropped as misdetections.
        loss_scale_px: robust loss scale (px); residuals above it count less than quadratically.
        min_outlier_px: after a first solve, corners reprojecting further than
            max(5 x the median error, this) are dropped and the adjustment runs again.
        max_frames: at most this many frames (evenly spread) enter the adjustment.

    Returns:
        Calibration with per-camera RMS reprojection errors after the adjustment.
    """
    t0 = time.perf_counter()
    names = list(detections)
    if len(names) < 1:
        raise ValueError("no cameras to calibrate")
    if world not in ("camera0", "board"):
        raise ValueError(f"world must be 'camera0' or 'board', got {world!r}")
    n_frames = {detections[n].num_frames for n in names}
    if len(n_frames) > 1:
        raise Lift3DError(f"the cameras' detections have different frame counts {sorted(n_frames)}; "
                          f"calibration needs synchronised videos processed with the same stride")

    cams, intr_rms = {}, {}
    for name in names:
        if intrinsics is not None and name in intrinsics:
            c = intrinsics[name]
            cams[name] = Camera(K=c.K, dist=c.dist, image_size=c.image_size)
        else:
            try:
                cams[name], intr_rms[name] = calibrate_camera(detections[name], board, fix_k3=fix_k3,
                                                              min_corners=min_corners)
            except Lift3DError as e:
                raise Lift3DError(f"camera {name!r}: {e}") from None

    # Board-to-camera poses: poses[c][f] = (R, t).
    poses: list[dict[int, tuple[np.ndarray, np.ndarray]]] = []
    views: list[dict[int, tuple[np.ndarray, np.ndarray]]] = []
    for name in names:
        v = _views(detections[name], board, min_corners)
        p = {}
        for f, (obj, uv) in v.items():
            R, t, rms = _board_pose(obj, uv, cams[name])
            if rms <= max_pnp_rms:
                p[f] = (R, t)
        poses.append(p)
        views.append({f: v[f] for f in p})

    extr = _chain_extrinsics(poses, names)
    frames = sorted(set().union(*[p.keys() for p in poses]))
    if max_frames is not None and len(frames) > max_frames:
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, max_frames).round().astype(int)]
    board_world = _initial_board_poses(frames, poses, views, extr, cams)

    result = _board_bundle_adjust(names, cams, extr, board_world, views, refine_intrinsics, fix_k3, loss_scale_px,
                                  min_outlier_px)
    cams_out, board_out, rms, counts, stats = result
    if world == "board":
        if world_frame is None:
            seen_by = {f: sum(f in p for p in poses) for f in board_out}
            world_frame = max(board_out, key=lambda f: (seen_by[f], -f))
        if world_frame not in board_out:
            raise Lift3DError(f"world_frame {world_frame} has no board pose (the board was not seen then)")
        Rb, tb = board_out[world_frame]
        A = _BOARD_TO_GROUND @ Rb.T  # world_old -> board -> ground frame
        cams_out = transform_world(cams_out, A, -A @ tb)
        board_out = {f: (A @ R, A @ t - A @ tb) for f, (R, t) in board_out.items()}
    return Calibration(cams_out, rms, counts, intr_rms, board_out,
                       {"world": world, "world_frame": world_frame, "frames": len(board_out),
                        "initial_intrinsics": cams,
                        **stats, "seconds": time.perf_counter() - t0})


def _chain_extrinsics(poses: list[dict[int, tuple[np.ndarray, np.ndarray]]],
                      names: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """World (= camera 0) to camera (R, t) for every camera, from per-frame board poses.

    Pairs of cameras seeing the board in the same frames give relative poses; a maximum spanning
    tree over the pair graph (edge weight = frames agreeing on the pose) chains them to camera 0.
    """
    C = len(names)
    rel: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, int]] = {}
    for i in range(C):
        for j in range(C):
            if i == j:
                continue
            shared = sorted(poses[i].keys() & poses[j].keys())
            if not shared:
                continue
            # camera j -> camera i through the board: T_i,b * T_j,b^-1
            Rs = np.array([poses[i][f][0] @ poses[j][f][0].T for f in shared])
            ts = np.array([poses[i][f][1] - Rs[k] @ poses[j][f][1] for k, f in enumerate(shared)])
            rel[i, j] = _robust_mean_pose(Rs, ts)
    extr: list[tuple[np.ndarray, np.ndarray] | None] = [None] * C
    extr[0] = (np.eye(3), np.zeros(3))
    # Prim's algorithm: repeatedly attach the unplaced camera with the strongest link.
    while any(e is None for e in extr):
        best = None
        for (i, j), (_, _, n) in rel.items():
            if extr[j] is not None and extr[i] is None and (best is None or n > best[2]):
                best = (i, j, n)
        if best is None:
            lost = [names[k] for k in range(C) if extr[k] is None]
            raise Lift3DError(f"camera(s) {lost} never see the board in the same frame as the others; "
                              f"record the board where neighbouring cameras see it together")
        i, j, _ = best
        Rij, tij, _ = rel[i, j]
        Rj, tj = extr[j]
        extr[i] = (Rij @ Rj, Rij @ tj + tij)
    return extr  # type: ignore[return-value]


def _initial_board_poses(frames, poses, views, extr, cams) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Board-to-world pose per frame: of the cameras' single-view estimates, the one that
    reprojects best into all cameras seeing the board then."""
    names = list(cams)
    out = {}
    for f in frames:
        cands = []
        for c, p in enumerate(poses):
            if f in p:
                Rc, tc = extr[c]
                R, t = p[f]
                cands.append((Rc.T @ R, Rc.T @ (t - tc)))
        best, best_err = None, np.inf
        for Rw, tw in cands:
            err = 0.0
            for c, v in enumerate(views):
                if f not in v:
                    continue
                obj, uv = v[f]
                cam = cams[names[c]]
                Rc, tc = extr[c]
                proj = cam.project((obj @ Rw.T + tw) @ Rc.T + tc)  # cam: intrinsics only, R = I
                err += float(np.sum((proj - uv) ** 2))
            if err < best_err:
                best, best_err = (Rw, tw), err
        out[f] = best
    return out


def _board_bundle_adjust(names, cams, extr, board_world, views, refine_intrinsics, fix_k3, loss_scale,
                         min_outlier_px):
    """Joint least squares over extrinsics (cameras 1..), board poses and optional intrinsics.

    Rotations are parameterised as small rotation vectors applied to the initial rotations
    (R = exp(d) R0), far from the singularity of absolute rotation vectors at 180 degrees.
    """
    C, frames = len(names), sorted(board_world)
    fidx = {f: k for k, f in enumerate(frames)}
    cam_idx, frm_idx, obj, uv = [], [], [], []
    for c, v in enumerate(views):
        for f, (o, u) in v.items():
            if f in fidx:
                cam_idx.append(np.full(len(o), c))
                frm_idx.append(np.full(len(o), fidx[f]))
                obj.append(o)
                uv.append(u)
    cam_idx, frm_idx = np.concatenate(cam_idx), np.concatenate(frm_idx)
    obj, uv = np.concatenate(obj), np.concatenate(uv)
    F = len(frames)

    R0c = np.array([e[0] for e in extr])
    t0c = np.array([e[1] for e in extr])
    R0b = np.array([board_world[f][0] for f in frames])
    t0b = np.array([board_world[f][1] for f in frames])
    intr0 = np.array([_intrinsics_vector(cams[n]) for n in names])
    # Refined intrinsics: fx, fy, cx, cy, k1, k2, p1, p2 (+ k3); skew stays as calibrated (0).
    free_intr = [0, 1, 2, 3, 5, 6, 7, 8] + ([] if fix_k3 else [9])
    n_in = len(free_intr) if refine_intrinsics else 0
    n_ext = 6 * (C - 1)
    off_in = n_ext
    off_b = n_ext + n_in * C

    def unpack(x):
        d = x[:n_ext].reshape(C - 1, 6)
        Rc, tc = R0c.copy(), t0c.copy()
        if C > 1:
            Rc[1:] = Rotation.from_rotvec(d[:, :3]).as_matrix() @ R0c[1:]
            tc[1:] = t0c[1:] + d[:, 3:]
        intr = intr0.copy()
        if n_in:
            intr[:, free_intr] = x[off_in:off_b].reshape(C, n_in)
        b = x[off_b:].reshape(F, 6)
        Rb = Rotation.from_rotvec(b[:, :3]).as_matrix() @ R0b
        return Rc, tc, intr, Rb, t0b + b[:, 3:]

    def residuals(x, keep):
        Rc, tc, intr, Rb, tb = unpack(x)
        xw = _rotate(Rb, frm_idx[keep], obj[keep]) + tb[frm_idx[keep]]
        xc = _rotate(Rc, cam_idx[keep], xw) + tc[cam_idx[keep]]
        return (_project(xc, intr[cam_idx[keep]]) - uv[keep]).ravel()

    def solve(x, keep, loss):
        ci, fi = cam_idx[keep], frm_idx[keep]
        blocks = [(np.where(ci > 0, 6 * (ci - 1), -1), 6), (off_b + 6 * fi, 6)]
        if n_in:
            blocks.append((off_in + n_in * ci, n_in))
        return least_squares(residuals, x, jac_sparsity=_sparsity(2, blocks, len(x)), loss=loss,
                             f_scale=loss_scale, x_scale="jac", method="trf", tr_solver="lsmr",
                             tr_options=_LSMR_OPTIONS, max_nfev=100, args=(keep,))

    x0 = np.zeros(off_b + 6 * F)
    if n_in:
        x0[off_in:off_b] = intr0[:, free_intr].ravel()
    everything = np.ones(len(uv), bool)
    # First pass with the smooth soft-L1 loss: with some residuals in Huber's linear part (where
    # it has no curvature) scipy's trf crawls for dozens of iterations; soft-L1 converges in a few.
    sol = solve(x0, everything, "soft_l1")
    # Corners found on steeply slanted boards are sometimes 1-3 px off; a robust loss only damps
    # them, so they are dropped (beyond 5x the median error, ~4 sigma of clean corner noise) and
    # the adjustment (Huber) runs again from where it stopped.
    err = np.linalg.norm(residuals(sol.x, everything).reshape(-1, 2), axis=-1)
    keep = err < max(5 * float(np.median(err)), min_outlier_px)
    sol2 = solve(sol.x, keep, "huber")
    nfev = sol.nfev + sol2.nfev
    sol = sol2
    Rc, tc, intr, Rb, tb = unpack(sol.x)
    err = np.linalg.norm(residuals(sol.x, keep).reshape(-1, 2), axis=-1)
    out = {}
    for c, n in enumerate(names):
        fx, fy, cx, cy, s = intr[c, :5]
        K = np.array([[fx, s, cx], [0, fy, cy], [0, 0, 1.0]])
        out[n] = Camera(K=K, dist=intr[c, 5:], R=Rc[c], t=tc[c], image_size=cams[n].image_size)
    boards = {f: (Rb[k], tb[k]) for k, f in enumerate(frames)}
    counts = {n: int(np.sum(cam_idx[keep] == c)) for c, n in enumerate(names)}
    return out, boards, _per_camera_rms(err, cam_idx[keep], names), counts, {
        "function_evals": int(nfev), "outliers": int((~keep).sum()), "observations": int(len(keep))}


# =========================================================================== refinement from people


def _keypoint_array(cameras: Mapping[str, Camera], keypoints: Any) -> np.ndarray:
    """(C, T, N, 3) x, y, confidence from Keypoints2D per camera (mapping by name or list in the
    cameras' order) or an array (C, T, J, 3) / (C, T, P, J, 3)."""
    names = list(cameras)
    if isinstance(keypoints, Mapping):
        missing = [n for n in names if n not in keypoints]
        if missing:
            raise ValueError(f"no keypoints for camera(s) {missing}")
        keypoints = [keypoints[n] for n in names]
    if isinstance(keypoints, np.ndarray):
        arr = np.asarray(keypoints, dtype=np.float64)
        if arr.ndim == 4:
            arr = arr[:, :, None]
        if arr.ndim != 5 or arr.shape[-1] != 3:
            raise ValueError(f"keypoint array must be (C, T, J, 3) or (C, T, P, J, 3), got {arr.shape}")
    else:
        keypoints = list(keypoints)
        for name, k in zip(names, keypoints):
            if isinstance(k, Keypoints2D) and tuple(k.image_size) != tuple(cameras[name].image_size):
                raise ValueError(f"keypoints for camera {name!r} are in {k.image_size[0]}x{k.image_size[1]} "
                                 f"images but the camera is {cameras[name].image_size[0]}x"
                                 f"{cameras[name].image_size[1]}; detect on full-size frames or rescale")
        datas = [k.data if isinstance(k, Keypoints2D) else np.asarray(k, dtype=np.float64) for k in keypoints]
        datas = [d[:, None] if d.ndim == 3 else d for d in datas]
        shapes = {d.shape for d in datas}
        if len(shapes) != 1:
            raise ValueError(f"keypoints of the cameras differ in shape {sorted(shapes)}: they must be "
                             f"synchronised (same frames) with the same people in the same order")
        arr = np.stack(datas)
    if arr.shape[0] != len(names):
        raise ValueError(f"{arr.shape[0]} cameras of keypoints for {len(names)} cameras")
    arr = np.where(np.isfinite(arr), arr, 0.0)
    C, T, P, J, _ = arr.shape
    return arr.reshape(C, T, P * J, 3)


def refine_from_keypoints(cameras: Mapping[str, Camera], keypoints_per_camera: Any, *,
                          min_confidence: float = 0.3, baseline: float | None = None,
                          loss_scale_px: float = 3.0, max_points: int = 20000,
                          max_reprojection_px: float = 100.0) -> Calibration:
    """Refine the extrinsics of calibrated cameras from people seen by several of them.

    Bundle adjustment over the extrinsics of cameras 2..C and the 3D keypoints (first
    triangulated by DLT), minimising confidence-weighted reprojection errors with a Huber loss.
    Intrinsics stay fixed.

    Gauge and scale: camera 1 (the first in the mapping) stays where it is; people's keypoints
    carry no absolute size, so the scale is held by keeping the distance between the centres of
    cameras 1 and 2 at ``baseline`` (default: their current distance) -- a soft constraint during
    the solve, made exact by rescaling about camera 1 afterwards.

    Args:
        cameras: {name: Camera}, at least 2, roughly calibrated (within a few degrees / cm).
        keypoints_per_camera: {name: Keypoints2D} or a list in the cameras' order, or an array
            (C, T, J, 3) / (C, T, P, J, 3) of pixel x, y, confidence. All cameras must cover the
            same frames, and person p must be the same person in every camera.
        min_confidence: keypoints below it are ignored; above it, each residual is weighted by
            sqrt(confidence).
        baseline: distance (metres) to keep between cameras 1 and 2.
        loss_scale_px: Huber scale in px (detector noise is a few px).
        max_points: at most this many 3D points (frames evenly subsampled).
        max_reprojection_px: initial points reprojecting worse than this (mismatched people,
            detector failures) are left out.

    Returns:
        Calibration with the refined cameras and per-camera RMS reprojection error (px) of the
        keypoints that fit: those beyond max(5 x the median error, 2 x ``loss_scale_px``) are
        left out of it and counted in ``info["outliers"]``.
    """
    t0 = time.perf_counter()
    names = list(cameras)
    if len(names) < 2:
        raise ValueError("refining extrinsics needs at least 2 cameras")
    cams = [cameras[n] for n in names]
    kp = _keypoint_array(cameras, keypoints_per_camera)  # (C, T, N, 3)
    C, T, N, _ = kp.shape
    if T * N > max_points:
        step = int(np.ceil(T * N / max_points))
        kp = kp[:, ::step]
        T = kp.shape[1]
    w = np.where(kp[..., 2] >= min_confidence, kp[..., 2], 0.0)
    X0, err0 = triangulate_dlt(kp[..., :2], cams, w)
    ok = np.isfinite(err0) & (err0 < max_reprojection_px)
    for c, cam in enumerate(cams):  # a point behind a camera that sees it is a mismatch, not a point
        depth = cam.world_to_camera(np.nan_to_num(X0))[..., 2]
        ok &= ~((depth <= 0) & (w[c] > 0))
    pts = np.argwhere(ok)  # (Np, 2) (t, n)
    if len(pts) < 10:
        raise Lift3DError(f"only {len(pts)} keypoints are seen by 2+ cameras with confidence >= "
                          f"{min_confidence}; cannot refine the extrinsics")
    X0 = X0[pts[:, 0], pts[:, 1]]
    obs_c, obs_p = np.nonzero(w[:, pts[:, 0], pts[:, 1]] > 0)  # (M,) camera, point
    per_cam = np.bincount(obs_c, minlength=C)
    if per_cam.min() < 6:
        few = [f"{n} ({k})" for n, k in zip(names, per_cam) if k < 6]
        raise Lift3DError(f"camera(s) {', '.join(few)} see too few keypoints that other cameras also see "
                          f"(confidence >= {min_confidence}) to place them; need at least 6 each")
    uv = kp[obs_c, pts[obs_p, 0], pts[obs_p, 1], :2]
    sw = np.sqrt(w[obs_c, pts[obs_p, 0], pts[obs_p, 1]])[:, None]

    R0 = np.array([c.R for c in cams])
    t0c = np.array([c.t for c in cams])
    intr = np.array([_intrinsics_vector(c) for c in cams])[obs_c]
    c0 = cams[0].center
    b = float(np.linalg.norm(cams[1].center - c0)) if baseline is None else float(baseline)
    if not b > 1e-6:
        raise ValueError(f"cameras {names[0]!r} and {names[1]!r} are at the same place; pass the baseline "
                         f"(metres) to keep between them")
    n_ext, Np = 6 * (C - 1), len(X0)
    # The scale residual is weighted like many observations so that it acts as a constraint.
    scale_w = 10.0 * np.sqrt(len(uv)) * intr[0, 0]

    def unpack(x):
        d = x[:n_ext].reshape(C - 1, 6)
        Rc, tc = R0.copy(), t0c.copy()
        Rc[1:] = Rotation.from_rotvec(d[:, :3]).as_matrix() @ R0[1:]
        tc[1:] = t0c[1:] + d[:, 3:]
        return Rc, tc, X0 + x[n_ext:].reshape(Np, 3)

    def residuals(x):
        Rc, tc, X = unpack(x)
        xc = _rotate(Rc, obs_c, X[obs_p]) + tc[obs_c]
        r = (sw * (_project(xc, intr) - uv)).ravel()
        c1 = -Rc[1].T @ tc[1]
        return np.append(r, scale_w * (np.linalg.norm(c1 - c0) - b) / max(b, 1e-9))

    x0 = np.zeros(n_ext + 3 * Np)
    blocks = [(np.where(obs_c > 0, 6 * (obs_c - 1), -1), 6), (n_ext + 3 * obs_p, 3)]
    sparsity = _sparsity(2, blocks, len(x0), extra_rows=[np.arange(6)])
    # When the cameras start a few degrees off, most residuals lie beyond the Huber scale, where
    # Huber has no curvature: scipy's trf then stalls far from the solution (seen: stopping at
    # 50x the final cost). A first pass with the smooth soft-L1 loss at the scale of the initial
    # residuals gets close; the Huber pass at the detector-noise scale finishes.
    start_scale = max(loss_scale_px, float(np.median(np.abs(residuals(x0)[:-1]))) * 2)
    nfev = 0
    for loss, f_scale in [("soft_l1", start_scale), ("huber", loss_scale_px)]:
        sol = least_squares(residuals, x0, jac_sparsity=sparsity, loss=loss, f_scale=f_scale,
                            x_scale="jac", method="trf", tr_solver="lsmr", tr_options=_LSMR_OPTIONS,
                            max_nfev=100)
        x0, nfev = sol.x, nfev + sol.nfev
    Rc, tc, X = unpack(sol.x)
    # Exact scale: scale the scene about camera 1's centre (camera 1 itself is unchanged).
    s = b / max(float(np.linalg.norm(-Rc[1].T @ tc[1] - c0)), 1e-12)
    tc = s * tc + (s - 1) * np.einsum("cij,j->ci", Rc, c0)  # R (c0 + s (X - c0)) + t_new = s (R X + t)
    X = c0 + s * (X - c0)
    out = {n: Camera(K=c.K.copy(), dist=c.dist.copy(), R=Rc[i], t=tc[i], image_size=c.image_size)
           for i, (n, c) in enumerate(zip(names, cams))}
    xc = _rotate(Rc, obs_c, X[obs_p]) + tc[obs_c]
    err = np.linalg.norm(_project(xc, intr) - uv, axis=-1)
    # Report the fit of the keypoints that agree: a few mismatched detections would dominate an RMS.
    inl = err < max(5 * float(np.median(err)), 2 * loss_scale_px)
    counts = {n: int(np.sum(obs_c[inl] == i)) for i, n in enumerate(names)}
    return Calibration(out, _per_camera_rms(err[inl], obs_c[inl], names), counts,
                       info={"points": Np, "outliers": int((~inl).sum()), "baseline_m": b,
                             "function_evals": int(nfev), "seconds": time.perf_counter() - t0})


# =========================================================================== synthetic images

_RAY_CACHE: dict[tuple, np.ndarray] = {}


def _pixel_rays(cam: Camera, supersample: int) -> np.ndarray:
    """(H*s, W*s, 2) undistorted normalised coordinates of the (supersampled) pixel centres."""
    key = (cam.K.tobytes(), cam.dist.tobytes(), cam.image_size, supersample)
    if key not in _RAY_CACHE:
        W, H = cam.image_size
        s = supersample
        # Sub-pixel centres of an s x s grid inside each pixel, in pixel coordinates.
        u = (np.arange(W * s) + 0.5) / s - 0.5
        v = (np.arange(H * s) + 0.5) / s - 0.5
        uu, vv = np.meshgrid(u, v)
        pts = np.stack([uu.ravel(), vv.ravel()], -1).reshape(-1, 1, 2)
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)
        xy = cv2.undistortPointsIter(pts, cam.K, cam.dist, None, None, crit).reshape(H * s, W * s, 2)
        if len(_RAY_CACHE) > 8:
            _RAY_CACHE.clear()
        _RAY_CACHE[key] = xy.astype(np.float64)
    return _RAY_CACHE[key]


def render_board_image(board: Board, camera: Camera, R: np.ndarray, t: np.ndarray, *,
                       supersample: int = 2, pixels_per_square: int = 64, blur_sigma: float = 0.7,
                       noise_sigma: float = 2.0, background: int = 100,
                       rng: np.random.Generator | None = None) -> np.ndarray:
    """A synthetic grey photo of the board through a camera, lens distortion included
    (for tests and benchmarks).

    Each (supersampled) pixel's ray is undistorted, intersected with the board plane and looked
    up in the board's printed texture; the result is averaged down, blurred and given noise.

    Args:
        board: the board.
        camera: intrinsics, distortion and size of the image (its extrinsics are not used).
        R, t: board-to-camera pose, ``x_cam = R @ x_board + t``.
        supersample: rays per pixel along each axis (anti-aliasing).

    Returns:
        (H, W) uint8 image.
    """
    rays = _pixel_rays(camera, supersample)
    tex, origin, ppm = _texture(board, pixels_per_square)
    Hm = np.column_stack([R[:, 0], R[:, 1], t])  # board plane (x, y, 1) -> camera ray
    Hinv = np.linalg.inv(Hm)
    q = rays @ Hinv[:, :2].T + Hinv[:, 2]  # (h, w, 3) homogeneous board points
    front = q[..., 2] > 1e-12  # the ray meets the plane in front of the camera
    with np.errstate(divide="ignore", invalid="ignore"):
        bx, by = q[..., 0] / q[..., 2], q[..., 1] / q[..., 2]
    # Texture pixel centres are at (edge + 0.5) / ppm from its top-left edge.
    mx = np.where(front, (bx - origin[0]) * ppm - 0.5, -1e6).astype(np.float32)
    my = np.where(front, (by - origin[1]) * ppm - 0.5, -1e6).astype(np.float32)
    img = cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=background)
    W, H = camera.image_size
    img = cv2.resize(img.astype(np.float32), (W, H), interpolation=cv2.INTER_AREA)
    if blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
    if noise_sigma > 0:
        rng = rng or np.random.default_rng(0)
        img = img + rng.normal(0, noise_sigma, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


_TEXTURES: dict[tuple, tuple[np.ndarray, np.ndarray, float]] = {}


def _texture(board: Board, pixels_per_square: int):
    key = (board, pixels_per_square)
    if key not in _TEXTURES:
        _TEXTURES[key] = board.texture(pixels_per_square)
    return _TEXTURES[key]
