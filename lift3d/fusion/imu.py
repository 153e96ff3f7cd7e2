"""Body-worn IMUs: streams, files, synthesis from motion capture, and their alignment to a fit.

Conventions:

- A sensor i is strapped to one body-model segment ``segments[i]`` (a joint name: the sensor
  turns with that joint's world rotation, ``G_j = G_parent @ pose[:, j]``).
- ``orientation[t, i]`` is the sensor's rotation to the IMU system's own world (gravity along
  its -Z, as Xsens/DIP deliver it; its heading is arbitrary and drifts slowly).
- ``acceleration[t, i]`` is the accelerometer's specific force in the sensor frame, m/s^2:
  the sensor point's acceleration minus gravity, so a sensor at rest reads 9.81 upwards.
- The relation to a fit (camera or world frame of lift3d, "fit frame"):

      orientation[t, i] = Q[t] @ G_segment(t) @ M[i]

  ``Q[t]`` (T, 3, 3) turns the fit frame into the IMU world (fixed, up to a slow heading
  drift about the IMU's vertical), ``M[i]`` (N, 3, 3) is the sensor's mounting on its segment.
  ``align_imus`` estimates both from a vision fit; ``fit_body(imu=...)`` then adds orientation
  and acceleration terms.

Files: ``IMUData.load`` reads

- npz: ``segments`` (N,) str, ``quaternion`` (T, N, 4) scalar-first (w, x, y, z),
  ``acceleration`` (T, N, 3) optional, ``fps``; optional ``valid`` (T, N) bool and
  ``calibration_quaternion`` (N, 4) (see ``IMUData.calibration``);
- CSV: a header ``time`` then, per sensor, ``<segment>.qw <segment>.qx <segment>.qy
  <segment>.qz`` and optionally ``<segment>.ax <segment>.ay <segment>.az``; time in seconds,
  any (increasing) spacing, resampled to a uniform rate (``fps`` argument or the median step).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import roma
import torch

from lift3d.io_utils import Lift3DError, LoadError, atomic_path, load_npz
from lift3d.rotations import nearest_rotation, rotation_angle

GRAVITY = 9.81
# The six sensors of sparse-IMU capture (DIP, TransPose, PIP): forearms near the wrists, shins
# near the ankles, head, pelvis; the segment is the body-model joint each one turns with.
SPARSE6 = {
    "anny": ["lowerarm02.L", "lowerarm02.R", "lowerleg02.L", "lowerleg02.R", "head", "root"],
    "smpl": ["left_elbow", "right_elbow", "left_knee", "right_knee", "head", "pelvis"],
}
# lift3d world (Y up) -> an IMU world with Z up (before its own heading).
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


@dataclass
class IMUData:
    """Orientation and acceleration streams of N body-worn sensors (see the module docstring).

    Attributes:
        segments: (N,) body-model joint names the sensors are strapped to.
        orientation: (T, N, 3, 3) sensor-to-IMU-world rotations.
        acceleration: (T, N, 3) specific force in the sensor frame (m/s^2), or None.
        fps: samples per second (the video's rate once resampled).
        valid: (T, N) bool, False for dropped samples.
        calibration: (N, 3, 3) the sensors' orientations while the person held the body
            model's rest pose upright, facing the IMU world's -Y (an N-pose-style calibration, as
            Xsens and DIP-IMU record), or None. With it the mountings are exact
            (``mountings_from_calibration``); without it they are estimated from the video.
    """

    segments: list[str]
    orientation: np.ndarray
    acceleration: np.ndarray | None
    fps: float
    valid: np.ndarray | None = None
    calibration: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.orientation = np.asarray(self.orientation, dtype=np.float64)
        T, N = self.orientation.shape[:2]
        if self.orientation.shape != (T, N, 3, 3) or len(self.segments) != N:
            raise Lift3DError(f"IMU orientation must be (T, {len(self.segments)}, 3, 3), got {self.orientation.shape}")
        if self.acceleration is not None:
            self.acceleration = np.asarray(self.acceleration, dtype=np.float64)
            if self.acceleration.shape != (T, N, 3):
                raise Lift3DError(f"IMU acceleration must be ({T}, {N}, 3), got {self.acceleration.shape}")
        valid = np.ones((T, N), bool) if self.valid is None else np.asarray(self.valid, bool)
        finite = np.isfinite(self.orientation).all((-1, -2))
        if self.acceleration is not None:
            finite &= np.isfinite(self.acceleration).all(-1)
        self.valid = valid & finite  # NaN samples count as dropped, never reach the fit
        self.orientation = np.where(self.valid[..., None, None], self.orientation, np.eye(3))
        if self.acceleration is not None:
            self.acceleration = np.where(self.valid[..., None], self.acceleration, 0.0)
        self.fps = float(self.fps)

    @property
    def num_frames(self) -> int:
        return self.orientation.shape[0]

    def save(self, path: str | Path) -> None:
        """Write the documented npz layout (quaternions scalar-first)."""
        q = roma.rotmat_to_unitquat(torch.as_tensor(self.orientation)).numpy()[..., [3, 0, 1, 2]]
        extra = {} if self.acceleration is None else {"acceleration": self.acceleration}
        if self.calibration is not None:
            extra["calibration_quaternion"] = roma.rotmat_to_unitquat(
                torch.as_tensor(self.calibration)).numpy()[..., [3, 0, 1, 2]]
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez_compressed(tmp, kind="IMUData", segments=np.array(self.segments), quaternion=q,
                                fps=self.fps, valid=self.valid, **extra)

    @classmethod
    def load(cls, path: str | Path, fps: float | None = None) -> "IMUData":
        """Read an npz or CSV file (layouts in the module docstring)."""
        path = Path(path)
        if path.suffix.lower() == ".csv":
            return _read_csv(path, fps)
        z = load_npz(path, ["segments", "quaternion", "fps"])
        q = z["quaternion"]
        if q.ndim != 3 or q.shape[-1] != 4 or q.shape[1] != len(z["segments"]):
            raise LoadError(f"{path}: quaternion must be (T, {len(z['segments'])}, 4), got {q.shape}")
        calib = z.get("calibration_quaternion")
        if calib is not None:
            if calib.shape != (len(z["segments"]), 4):
                raise LoadError(f"{path}: calibration_quaternion must be ({len(z['segments'])}, 4)")
            calib = _quat_wxyz_to_matrix(calib, path)
            if not np.isfinite(calib).all():
                raise LoadError(f"{path}: calibration_quaternion has an invalid quaternion")
        return cls([str(s) for s in z["segments"]], _quat_wxyz_to_matrix(q, path),
                   z.get("acceleration"), float(z["fps"]), z.get("valid"), calib)

    def resampled(self, fps: float, num_frames: int | None = None) -> "IMUData":
        """The streams at another rate (slerp for orientations, linear for accelerations)."""
        t_src = np.arange(self.num_frames) / self.fps
        n = num_frames or int(np.floor(t_src[-1] * fps + 1e-9)) + 1
        return _resample(self, t_src, np.arange(n) / fps, fps)


def _quat_wxyz_to_matrix(q: np.ndarray, where) -> np.ndarray:
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    bad = ~(np.isfinite(q).all(-1)) | (norm[..., 0] < 1e-6)
    if bad.all():
        raise LoadError(f"{where}: no valid quaternion")
    q = np.where(bad[..., None], [1.0, 0.0, 0.0, 0.0], q) / np.where(bad[..., None], 1.0, norm)
    R = roma.unitquat_to_rotmat(torch.as_tensor(q[..., [1, 2, 3, 0]])).numpy()
    R[bad] = np.nan  # marked invalid by IMUData
    return R


def _resample(imu: IMUData, t_src: np.ndarray, t_dst: np.ndarray, fps: float) -> IMUData:
    """Orientations by slerp and accelerations linearly, from times t_src to t_dst."""
    from scipy.spatial.transform import Rotation, Slerp

    N = len(imu.segments)
    t_dst = np.clip(t_dst, t_src[0], t_src[-1])
    R = np.empty((len(t_dst), N, 3, 3))
    for i in range(N):
        R[:, i] = Slerp(t_src, Rotation.from_matrix(imu.orientation[:, i]))(t_dst).as_matrix()
    # A resampled value is valid when both neighbours were.
    k = np.clip(np.searchsorted(t_src, t_dst), 1, len(t_src) - 1)
    valid = imu.valid[k - 1] & imu.valid[k]
    acc = None
    if imu.acceleration is not None:
        acc = np.stack([np.stack([np.interp(t_dst, t_src, imu.acceleration[:, i, c]) for c in range(3)], -1)
                        for i in range(N)], 1)
    return IMUData(imu.segments, R, acc, fps, valid, imu.calibration)


def _read_csv(path: Path, fps: float | None) -> IMUData:
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise LoadError(f"{path}: cannot read ({e})") from None
    if len(rows) < 3 or not rows[0] or rows[0][0].strip().lower() != "time":
        raise LoadError(f"{path}: expected a header starting with 'time' and at least two samples")
    head = [h.strip() for h in rows[0]]
    segments = [h[:-3] for h in head if h.endswith(".qw")]
    if not segments:
        raise LoadError(f"{path}: no '<segment>.qw' column in the header")
    try:
        cols = {h: i for i, h in enumerate(head)}
        q_idx = [[cols[f"{s}.q{c}"] for c in "wxyz"] for s in segments]
        a_ok = all(f"{s}.ax" in cols for s in segments)
        a_idx = [[cols[f"{s}.a{c}"] for c in "xyz"] for s in segments] if a_ok else None
    except KeyError as e:
        raise LoadError(f"{path}: missing column {e.args[0]}") from None
    body = [r for r in rows[1:] if r and any(x.strip() for x in r)]
    if any(len(r) != len(head) for r in body):
        raise LoadError(f"{path}: a row has a different number of fields than the header (truncated file?)")
    try:
        data = np.array([[float(x) if x.strip() else np.nan for x in r] for r in body])
    except ValueError as e:
        raise LoadError(f"{path}: a value is not a number ({e})") from None
    t = data[:, 0]
    if not np.all(np.diff(t) > 0):
        raise LoadError(f"{path}: time must increase from row to row")
    q = np.stack([data[:, idx] for idx in q_idx], 1)
    acc = None if a_idx is None else np.stack([data[:, idx] for idx in a_idx], 1)
    step = float(np.median(np.diff(t)))
    raw = IMUData(segments, _quat_wxyz_to_matrix(q, path), acc, 1.0 / step)
    fps = fps or 1.0 / step
    return _resample(raw, t - t[0], np.arange(int(np.floor((t[-1] - t[0]) * fps + 1e-9)) + 1) / fps, fps)


def segment_rotations(pose: np.ndarray | torch.Tensor, parents: list[int], joints: list[int]):
    """(T, N, 3, 3) world rotations G_j of ``joints`` from (T, J, 3, 3) local rotations."""
    from lift3d.fitting.retarget import global_rotations

    as_torch = isinstance(pose, torch.Tensor)
    p = pose if as_torch else torch.as_tensor(pose)
    G = global_rotations(p, parents, joints)
    out = torch.stack([G[j] for j in joints], 1)
    return out if as_torch else out.numpy()


def sensed_bone_directions(model, imu: "IMUData", alignment: "IMUAlignment") -> np.ndarray | None:
    """(T, 6, 3) directions of the IMU lifter's bones (``lifting.imu_input.SENSOR_BONES``) in the
    fit's (camera) axes, from the rotations the sensors measure (Q^T R M^T): each bone's
    direction in the model's rest pose, in its sensed segment's frame, turned by that rotation.
    This takes the bone as rigid with its segment up to twist (Anny's forearm and shin are two
    twist bones each, the sensor on the second). Zero for a missing sensor or sample; None
    when none of the six ``fusion.imu.SPARSE6`` segments is sensed."""
    from lift3d import formats
    from lift3d.lifting.imu_input import bone_directions

    six = SPARSE6["anny" if model.name == "anny" else "smpl"]
    have = {k: imu.segments.index(s) for k, s in enumerate(six) if s in imu.segments}
    if not have:
        return None
    with torch.no_grad():
        rest = model(model.rest_pose(1), vertices=False)
    joints = formats.convert_points(rest.keypoints[0].double().cpu().numpy(), model.keypoint_names, "h36m17")
    seg = segment_rotations(model.rest_pose(1).double().cpu().numpy(), model.parents,
                            [model.joint_names.index(s) for s in six])[0]  # (6, 3, 3) rest segments
    local = np.einsum("kji,kj->ki", seg, bone_directions(joints))  # rest-pose bones in their segments
    rot = alignment.Q.transpose(0, 2, 1)[:, None] @ imu.orientation @ alignment.M[None].transpose(0, 1, 3, 2)
    dirs = np.zeros((imu.num_frames, len(six), 3))
    for k, n in have.items():
        dirs[:, k] = (rot[:, n] @ local[k]) * (imu.valid[:, n, None] > 0)
    return dirs


def synthesize_imu(fit, segments: list[str] | None = None, person: int = 0, seed: int = 0,
                   heading_drift_deg_per_min: float = 10.0, orientation_noise_deg: float = 1.0,
                   acceleration_noise: float = 0.2, model=None) -> tuple[IMUData, np.ndarray, np.ndarray]:
    """IMU streams that a fit's motion would produce (for tests and benchmarks).

    Each sensor gets a random mounting M_i on its segment, the IMU world a random heading plus a
    random-walk drift, and both streams white noise. The streams carry calibration readings
    of the rest pose (``IMUData.calibration``).

    Args:
        fit: a ``BodyFit`` (a world fit: gravity along its -Y; camera fits are taken as is).
        segments: body-model joint names; ``SPARSE6`` for the fit's model if None.
    Returns:
        (imu, Q (T, 3, 3) fit frame -> IMU world, M (N, 3, 3) mountings): the truth that
        ``align_imus`` should recover.
    """
    rng = np.random.default_rng(seed)
    model = model or fit.body_model()
    segments = segments or SPARSE6["anny" if fit.model_name == "anny" else "smpl"]
    idx = [model.joint_names.index(s) for s in segments]
    T, N = fit.num_frames, len(idx)
    G = segment_rotations(fit.pose[:, person], model.parents, idx)  # (T, N, 3, 3)
    pos = fit.joints(person, model)[:, idx]  # (T, N, 3) sensor points
    from scipy.spatial.transform import Rotation

    M = Rotation.random(N, random_state=rng).as_matrix()  # seeded: the same streams every run
    drift = np.cumsum(rng.standard_normal(T)) * np.radians(heading_drift_deg_per_min) / 60 / np.sqrt(fit.fps)
    drift += np.radians(heading_drift_deg_per_min) / 60 / fit.fps * np.arange(T)
    heading = rng.uniform(-np.pi, np.pi) + drift
    Q = _yaw(heading) @ Y_UP_TO_Z_UP  # (T, 3, 3)
    noise = roma.rotvec_to_rotmat(torch.as_tensor(
        rng.standard_normal((T, N, 3)) * np.radians(orientation_noise_deg))).numpy()
    R = Q[:, None] @ G @ M[None] @ noise
    acc_world = np.gradient(np.gradient(pos, axis=0), axis=0) * fit.fps ** 2  # (T, N, 3) fit frame
    f_world = acc_world + GRAVITY * np.array([0.0, 1.0, 0.0])  # minus gravity (gravity is -Y)
    # An N-pose calibration: the rest pose, upright, facing the IMU world's -Y.
    calib = Y_UP_TO_Z_UP @ M @ noise[0]
    # The accelerometer reads f in the sensor frame: (Q G M)^T (Q f) = (G M)^T f.
    f_sensor = np.einsum("tnji,tnj->tni", G @ M[None], f_world)
    f_sensor += acceleration_noise * rng.standard_normal(f_sensor.shape)
    return IMUData(segments, R, f_sensor, fit.fps, calibration=calib), Q, M


def scale_from_accelerations(points: np.ndarray, measured: np.ndarray, weights: np.ndarray, fps: float,
                             valid: np.ndarray | None = None, window_s: float = 0.5,
                             min_correlation: float = 0.8) -> tuple[float, float]:
    """How much a monocular camera-frame fit must be scaled about the camera centre for its
    sensor points to accelerate as the accelerometers say.

    One camera sees a body twice as large and twice as far away the same: the fit's size is a
    guess, and its motion in metres, so its accelerations, scale with that guess while the
    accelerometers' do not. Only the image-plane axes (camera x, y) are compared, because a
    monocular fit's depth jitters far more than the body accelerates. Both sides are taken over
    +-k frames (k = window_s * fps: ``fitting.losses.stride_accelerations``), since the fit's
    frame-to-frame noise would otherwise swamp the motion.

    Args:
        points: (T, N, 3) the fit's sensor points, camera frame (metres).
        measured: (T, N, 3) the sensors' accelerations in the same axes: specific force turned
            into the fit's frame plus gravity (m/s^2).
        weights: (T, N) trust in each sample (0 for a sensor left out); a window weighs its
            samples' mean trust.
        fps: frames per second.
        valid: (T, N) False for a dropped sample: the windows around it are left out.
        window_s: the averaging half-window in seconds.
        min_correlation: below this correlation between the two sides (a body that barely moves
            or a fit that does not follow it) the answer is 1.
    Returns:
        (scale, correlation): multiply the fit's translation and size by ``scale``.
    """
    from lift3d.fitting.losses import stride_accelerations, window_frames

    k = window_frames(window_s, fps)
    T = len(points)
    if T < 2 * k + 1:
        return 1.0, 0.0
    acc, meas = stride_accelerations(points[..., :2], measured[..., :2], k, fps)
    # A window counts when none of its samples was dropped, by its samples' mean trust: a
    # keypoint missing in one frame (the detector's dropouts) should not discard 2k + 1 frames.
    ok = np.ones(weights.shape, bool) if valid is None else np.asarray(valid, bool)
    span = range(-k, k + 1)
    whole = np.stack([ok[k + j:T - k + j] for j in span]).all(0)  # (T-2k, N)
    w = (whole * np.mean([weights[k + j:T - k + j] for j in span], axis=0))[..., None]
    aa, mm, am = (w * acc * acc).sum(), (w * meas * meas).sum(), (w * acc * meas).sum()
    if aa <= 0 or mm <= 0:
        return 1.0, 0.0
    corr = float(am / np.sqrt(aa * mm))
    # The ratio of the two sides' sizes: the geometric mean of regressing either on the other,
    # which noise on one side would bias down or up.
    return (float(np.sqrt(mm / aa)) if corr >= min_correlation else 1.0), corr


def _yaw(angle: np.ndarray) -> np.ndarray:
    """(T,) angles -> (T, 3, 3) rotations about +Z."""
    c, s = np.cos(angle), np.sin(angle)
    z, o = np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


@dataclass
class IMUAlignment:
    """How an IMU system sits relative to a fit: ``orientation[t, i] = Q[t] @ G_i(t) @ M[i]``.

    Attributes:
        Q: (T, 3, 3) fit frame -> IMU world, per frame (a fixed rotation times a heading drift).
        M: (N, 3, 3) sensor mountings on their segments.
        residual_deg: (N,) mean angle between the IMU orientations and the aligned fit's.
    """

    Q: np.ndarray
    M: np.ndarray
    residual_deg: np.ndarray


def mountings_from_calibration(calibration: np.ndarray) -> np.ndarray:
    """(N, 3, 3) sensor mountings from N-pose readings (``IMUData.calibration``).

    In the rest pose every segment's world rotation is the body's, and the body faces the IMU
    world's -Y upright, i.e. is turned by ``Y_UP_TO_Z_UP``: R_i = Y_UP_TO_Z_UP @ M_i.
    """
    return Y_UP_TO_Z_UP.T @ np.asarray(calibration, dtype=np.float64)


def align_imus(imu: IMUData, segment_rot: np.ndarray, weights: np.ndarray | None = None,
               drift_seconds_per_term: float = 60.0, iters: int = 5,
               mountings: np.ndarray | None = None, up: np.ndarray | None = None) -> IMUAlignment:
    """Estimate the IMU world, heading drift and sensor mountings from a vision fit.

    Args:
        imu: the streams, at the fit's frame rate.
        segment_rot: (T, N, 3, 3) the fit's world rotations of the sensors' segments.
        weights: (T, N) trust in the fit's segment rotations (e.g. keypoint confidence; 0 where
            the limb was occluded); ones if None.
        drift_seconds_per_term: the heading drift is a polynomial in time with one more term
            per this many seconds of recording (degree 0 to 5; see ``_drift``).
        iters: alternations between the mountings and the frame.
        mountings: (N, 3, 3) known mountings (``mountings_from_calibration``): then only Q is
            estimated, as a weighted rotation average plus the drift. Much more accurate: a
            monocular fit's limb rotations are off by 15-40 degrees (forearm twist is not seen
            at all), which estimated mountings absorb while a known one averages it out.
        up: (3,) the world's up direction in the fit's axes, when the camera knows it (a
            levelled camera, a phone's gravity sensor, extrinsics calibrated against the floor):
            then Q's tilt is set by it and only the heading comes from the fit. A monocular fit
            leans towards or away from the camera by a few degrees that the 2D cannot show,
            and every sensor turned into its axes would lean with it (benchmarks/imu_eval.py).
    Returns:
        ``IMUAlignment``. Without mountings, the fixed part of Q comes from the rotation axes of
        the motion (A_t = Q B_t Q^T for relative rotations A of the sensors and B of the
        segments), so no calibration pose is needed, only some motion of the sensed segments.
    """
    R, G = imu.orientation, np.asarray(segment_rot, dtype=np.float64)
    T, N = R.shape[:2]
    w = (np.ones((T, N)) if weights is None else np.asarray(weights, dtype=np.float64)) * imu.valid
    if w.sum() < 3:
        raise Lift3DError("too few valid IMU samples with a visible segment to align the IMUs")
    if mountings is not None:
        M = np.asarray(mountings, dtype=np.float64)
        Y = R @ M[None].transpose(0, 1, 3, 2) @ G.transpose(0, 1, 3, 2)  # (T, N): Q seen at t
        Q = np.repeat(_levelled(_robust_average(Y, w), up)[None], T, 0)
        Q = _drift(R, G, M, Q, w, drift_seconds_per_term, imu.fps)
        return IMUAlignment(Q, M, _residual(R, G, M, Q, w))
    # 1. Fixed frame Q0 from the axes of relative rotations against a well-seen reference frame.
    ref = np.argmax(w.sum(1))
    A = R @ R[ref][None].transpose(0, 1, 3, 2)  # (T, N): sensor turns, IMU world axes
    B = G @ G[ref][None].transpose(0, 1, 3, 2)  # segment turns, fit axes
    a = roma.rotmat_to_rotvec(torch.as_tensor(A)).numpy().reshape(-1, 3)
    b = roma.rotmat_to_rotvec(torch.as_tensor(B)).numpy().reshape(-1, 3)
    wt = (w * w[ref][None]).reshape(-1)
    H = np.einsum("k,ki,kj->ij", wt, a, b)
    Q0 = nearest_rotation(H)
    Q = np.repeat(_levelled(Q0, up)[None], T, 0)
    for _ in range(iters):
        # 2. Mountings: M_i = mean over t of G^T Q^T R, weighted.
        X = G.transpose(0, 1, 3, 2) @ Q.transpose(0, 2, 1)[:, None] @ R  # (T, N): M seen at t
        M = nearest_rotation(np.einsum("tn,tnij->nij", w, X))
        Q = _drift(R, G, M, Q, w, drift_seconds_per_term, imu.fps)
    return IMUAlignment(Q, M, _residual(R, G, M, Q, w))


def unit_up(up) -> np.ndarray:
    """A given up direction (3,) as a unit vector, or one clear Lift3DError."""
    v = np.asarray(up, dtype=np.float64)
    if v.shape != (3,) or not np.isfinite(v).all() or np.linalg.norm(v) < 1e-9:
        raise Lift3DError(f"the camera's up direction must be a non-zero 3-vector, not {v.tolist()}")
    return v / np.linalg.norm(v)


def _levelled(Q: np.ndarray, up: np.ndarray | None) -> np.ndarray:
    """A fit -> IMU world rotation (3, 3) turned by the smallest rotation that makes it map the
    fit's ``up`` (3,) to the IMU world's +Z; its heading is kept. Q itself if ``up`` is None."""
    if up is None:
        return Q
    # S takes Q's up (Q^T z, its last row, in the fit's axes) onto the true one: Q S^T maps ``up`` to +Z.
    S = _smallest_rotation(torch.as_tensor(Q[2].copy())[None], torch.as_tensor(unit_up(up))[None])[0]
    return Q @ S.T


def _smallest_rotation(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """(T, 3, 3) rotations taking the unit vectors a (T, 3) onto b (T, 3) about a x b."""
    axis = torch.linalg.cross(a, b)
    angle = torch.atan2(axis.norm(dim=-1), (a * b).sum(-1))
    # Opposite vectors: any axis at right angles to a does.
    other = torch.linalg.cross(a, torch.eye(3, dtype=a.dtype)[a.abs().argmin(-1)])
    axis = torch.where(axis.norm(dim=-1, keepdim=True) > 1e-9, axis, other)
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return roma.rotvec_to_rotmat(axis * angle[:, None]).numpy()


def _robust_average(Y: np.ndarray, w: np.ndarray, scale_deg: float = 20.0, iters: int = 4) -> np.ndarray:
    """Weighted average of rotation samples (..., 3, 3) that discounts outliers: a monocular
    fit's body sometimes faces the wrong way for a few frames, and those samples must not
    tilt the average."""
    Y, w = Y.reshape(-1, 3, 3), w.reshape(-1)
    Q = nearest_rotation(np.einsum("k,kij->ij", w, Y))
    for _ in range(iters):
        ang = np.degrees(rotation_angle(Y, Q))
        Q = nearest_rotation(np.einsum("k,kij->ij", w / (1 + (ang / scale_deg) ** 2), Y))
    return Q


def _drift(R, G, M, Q, w, seconds_per_term: float, fps: float) -> np.ndarray:
    """Q with the heading drift about the IMU world's vertical put in.

    Per frame, the weighted circular mean of the sensors' residual yaw; then a weighted
    polynomial in time through it, of degree one per ``seconds_per_term`` of recording (0, a
    constant, for shorter clips; at most 5): gyroscope heading drift is a few degrees a minute,
    so over seconds the video's own heading errors would dominate any slope fitted to them.
    """
    T = len(Q)
    C = R @ M[None].transpose(0, 1, 3, 2) @ G.transpose(0, 1, 3, 2) @ Q.transpose(0, 2, 1)[:, None]
    yaw = np.arctan2(C[..., 1, 0] - C[..., 0, 1], C[..., 0, 0] + C[..., 1, 1])  # (T, N)
    s, c = (w * np.sin(yaw)).sum(1), (w * np.cos(yaw)).sum(1)
    weight = np.hypot(s, c)  # agreeing sensors weigh more
    seen = weight > 1e-9
    if seen.sum() < 2:
        return Q
    t = np.arange(T) / fps
    per_frame = np.unwrap(np.arctan2(s[seen], c[seen]))
    degree = int(min(5, (t[-1] - t[0]) // seconds_per_term, seen.sum() - 1))
    coef = np.polynomial.polynomial.polyfit(t[seen], per_frame, degree, w=np.sqrt(weight[seen]))
    return _yaw(np.polynomial.polynomial.polyval(t, coef)) @ Q


def _residual(R, G, M, Q, w) -> np.ndarray:
    """(N,) weighted mean angle (degrees) between the IMU orientations and the aligned fit's."""
    ang = np.degrees(rotation_angle(R, Q[:, None] @ G @ M[None]))
    return (ang * w).sum(0) / np.maximum(w.sum(0), 1e-9)
