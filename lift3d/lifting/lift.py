"""Lift tracked 2D keypoints to 3D joints with the shipped temporal network."""
from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import torch

from lift3d import formats
from lift3d.io_utils import LoadError
from lift3d.lifting.data import (INPUT_FORMAT, OUTPUT_FORMAT, ROOT, at_training_rate, canonical_2d, fill_gaps,
                                 mirror_joints, mirror_order, normalize_2d)
from lift3d.lifting.imu_input import NUM_SENSORS, mirror_directions
from lift3d.lifting.model import Lifter
from lift3d.types import Camera, Joints3D, Keypoints2D

WEIGHTS = Path(__file__).resolve().parents[1] / "data" / "lifter.pt"
IMU_WEIGHTS = WEIGHTS.with_name("lifter_imu.pt")  # the lifter that also sees six sensed bones
_CACHE: dict[tuple[str, str], Lifter] = {}
# A joint whose expected error (the error head's) is this or less keeps its full confidence;
# beyond, confidence falls as (ERROR_REF / expected error)^2, a Gaussian's inverse variance.
ERROR_REF = 0.03


def joint_trust(expected_error: np.ndarray) -> np.ndarray:
    """(...) expected joint errors (metres) -> (...) trust in [0, 1]: min(1, (ERROR_REF / e)^2)."""
    return np.minimum(1.0, (ERROR_REF / np.maximum(expected_error, 1e-6)) ** 2)


def load_lifter(path: str | Path | None = None, device: str | torch.device = "cpu") -> Lifter:
    """The lifting network with its weights (the shipped ones by default), in eval mode."""
    path = Path(path) if path else WEIGHTS
    key = (str(path), str(device))
    if key in _CACHE:
        return _CACHE[key]
    if not path.is_file():
        raise LoadError(f"lifting weights not found at {path}; train them with "
                        "`python -m lift3d.lifting.train` (see docs/BENCHMARKS.md)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        net = Lifter(**{"view": "box", **ckpt["config"]})  # the first weights had no "view"
        net.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()})
    except (RuntimeError, KeyError, TypeError, EOFError, OSError) as e:
        raise LoadError(f"cannot read lifting weights {path} ({e})") from None
    net = net.to(device).eval()
    _CACHE[key] = net
    return net


def root_translation(rel3d: np.ndarray, kp2d: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame root positions that best explain the 2D keypoints given root-relative 3D.

    For each joint, u = f (X + tx) / (Z + tz) + c is linear in t once multiplied out, so t is a
    confidence-weighted linear least-squares solution per frame.

    Args:
        rel3d: (T, J, 3) root-relative joints, camera axes.
        kp2d: (T, J, 3) the same joints' pixels + confidence.
        K: (3, 3) intrinsics.
    Returns:
        (T, 3) root positions; frames without enough confident joints are interpolated.
    """
    T = rel3d.shape[0]
    f = np.array([K[0, 0], K[1, 1]])
    c = K[:2, 2]
    out = np.full((T, 3), np.nan)
    for t in range(T):
        w = kp2d[t, :, 2]
        ok = w > 0.05
        if ok.sum() < 3:
            continue
        d = kp2d[t, ok, :2] - c  # (n, 2)
        P = rel3d[t, ok]
        A = np.zeros((2 * ok.sum(), 3))
        b = np.zeros(2 * ok.sum())
        for k in range(2):
            A[k::2, k] = f[k]
            A[k::2, 2] = -d[:, k]
            b[k::2] = d[:, k] * P[:, 2] - f[k] * P[:, k]
        sw = np.repeat(np.sqrt(w[ok]), 2)
        out[t] = np.linalg.lstsq(A * sw[:, None], b * sw, rcond=None)[0]
    valid = np.isfinite(out).all(1)
    return fill_gaps(out, valid) if valid.any() else np.zeros_like(out)


def _network_input(net: Lifter, kp: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray | None]:
    """(..., T, 17, 3) pixels -> the network's input and the per-frame view rotations (None
    for a "box" network, whose output is already in the camera's axes)."""
    if net.config.get("view", "box") == "virtual":
        return canonical_2d(kp, camera)
    return normalize_2d(kp), None


def _mirror_input(x: np.ndarray) -> np.ndarray:
    """The network input of the mirror image: the 17 keypoints, then any sensed bone directions."""
    J = len(formats.names(INPUT_FORMAT))
    if x.shape[-2] == J:
        return mirror_joints(x, INPUT_FORMAT)
    return np.concatenate([mirror_joints(x[..., :J, :], INPUT_FORMAT), mirror_directions(x[..., J:, :])], -2)


def run_network(net: Lifter, x: np.ndarray, flip: bool = True) -> np.ndarray:
    """(B, T, 17 + E, 3) network input -> (B, T, 17, 3) float64 output, on the network's
    device. ``flip``: averaged with the output for the mirrored input, mirrored back."""
    return _run(net, x, flip)[0]


def _run(net: Lifter, x: np.ndarray, flip: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``run_network``, and the (B, T, 17) expected joint errors (metres) when the network has
    an error head (else None), flip-averaged alike."""
    dev = next(net.parameters()).device

    def once(inp: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        t = torch.as_tensor(inp, dtype=torch.float32, device=dev)
        if net.error_head is None:
            return net(t).double().cpu().numpy(), None
        joints, err = net.forward_with_error(t)
        return joints.double().cpu().numpy(), err.double().cpu().numpy()

    with torch.no_grad():
        out, err = once(x)
        if flip:
            out_f, err_f = once(_mirror_input(x))
            out = 0.5 * (out + mirror_joints(out_f, OUTPUT_FORMAT))
            if err is not None:
                err = 0.5 * (err + err_f[..., mirror_order(OUTPUT_FORMAT)])
    return out, err


def lift_root_relative(net: Lifter, kp: np.ndarray, camera: Camera, flip: bool = True,
                       directions: np.ndarray | None = None) -> np.ndarray:
    """Run the network on (..., T, 17, 3) coco17 pixels + confidence of tracked people:
    (..., T, 17, 3) root-relative h36m17 joints in ``camera``'s axes (``lift_with_error``)."""
    return lift_with_error(net, kp, camera, flip, directions)[0]


def lift_with_error(net: Lifter, kp: np.ndarray, camera: Camera, flip: bool = True,
                    directions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Run the network on (..., T, 17, 3) coco17 pixels + confidence of tracked people.

    Returns (..., T, 17, 3) root-relative h36m17 joints in ``camera``'s axes, and the (..., T, 17)
    expected error of each (metres) when the network has an error head, else None. A network trained
    on the virtual view (``data.canonicalize``) needs the intrinsics to undo the view rotation;
    without calibration a guessed field of view costs little (the rotation is the angle of the
    person's viewing ray, which a wrong focal length changes only slightly). ``flip`` also
    lifts the mirrored input and averages it, mirrored back, with the direct output (the
    network was trained on mirrored people too; held out: -1.2 mm MPJPE, -15% acceleration
    error with noisy 2D, at twice the cost; docs/BENCHMARKS.md). ``directions``: (..., T, 6, 3)
    sensed bone directions in ``camera``'s axes for an IMU lifter (``lifting.imu_input``).
    """
    kp = np.asarray(kp, dtype=np.float64)
    shape = kp.shape
    x, R = _network_input(net, kp.reshape((-1,) + shape[-3:]), camera)
    extra = net.config.get("extra_inputs", 0)
    if directions is not None and not extra:
        raise ValueError("sensed bone directions need the IMU lifter (IMU_WEIGHTS), not a 2D lifter")
    if extra:
        if directions is None or R is None:
            raise ValueError("an IMU lifter needs the sensed bone directions and a virtual-view network")
        d = np.asarray(directions, dtype=np.float64).reshape(x.shape[:-2] + (extra, 3))
        x = np.concatenate([x, np.einsum("...ij,...kj->...ki", R, d)], -2)  # into the virtual axes
    # The "box" weights' output axes are the real camera's, which the mirror does not map.
    rel, err = _run(net, x, flip and R is not None)
    if R is not None:
        rel = rel @ R  # virtual camera axes -> real camera axes, per frame
    rel = rel - rel[..., ROOT:ROOT + 1, :]
    if err is not None:
        err[..., ROOT] = 0.0  # the root is the origin of root-relative joints: never wrong
        err = err.reshape(shape[:-1])
    return rel.reshape(shape[:-1] + (3,)), err


def lift(keypoints2d: Keypoints2D, camera: Camera | None = None, net: Lifter | None = None,
         device: str | torch.device = "cpu", flip: bool = True,
         bone_directions: np.ndarray | None = None, trust: bool = True,
         detector_weight: bool = True) -> Joints3D:
    """Lift every tracked person's 2D keypoints to 3D h36m17 joints.

    Args:
        keypoints2d: (T, P, J, 3) in any format that can give coco17, at any frame rate (the
            network runs at its training rate of 30 fps: other rates are resampled there and back).
        camera: intrinsics of the video. With it, the joints are absolute camera-frame
            positions (root trajectory solved from the 2D); without it, root-relative
            (pelvis at the origin) in the axes of a 60-degree camera of the keypoints' image size.
        net: a Lifter; the shipped one by default.
        device: torch device.
        flip: average with the lifted mirror image (see ``lift_root_relative``).
        bone_directions: (T, P, 6, 3) directions of the bones six body-worn IMUs ride on
            (``lifting.imu_input.SENSOR_BONES``), in the camera's axes, zero where a person or
            sensor has none: then the IMU lifter (``IMU_WEIGHTS``) is the default network.
        trust: scale each joint's confidence by the network's trust in it (below), when the
            network has an error head; False leaves the detector's part alone.
        detector_weight: False gives every joint of a frame where the person was detected the
            full detector part (1), seen or not: an IMU lifter places the unseen ones from the
            sensors rather than guessing them.
    Returns:
        Joints3D (T, P, 17, 3), format h36m17, frame "camera"; confidence 0 on frames where the
        person was not detected at all, 0.25 + 0.75 x the detector's confidence of the joint(s)
        each output joint is made from otherwise; times min(1, (ERROR_REF / e)^2) where the
        network has an error head and e is the error it expects of the joint.
    """
    net = net or load_lifter(IMU_WEIGHTS if bone_directions is not None else None, device=device)
    kp = formats.convert(keypoints2d.data, keypoints2d.format, INPUT_FORMAT)  # (T, P, 17, 3)
    cam = camera or Camera.from_fov(*keypoints2d.image_size)
    if bone_directions is not None:
        bone_directions = np.asarray(bone_directions, dtype=np.float64)
        if bone_directions.shape != kp.shape[:2] + (NUM_SENSORS, 3):
            raise ValueError(f"bone_directions of shape {bone_directions.shape} for {kp.shape[0]} frames of "
                             f"{kp.shape[1]} people: expected (T, P, 6, 3)")

    def run(k, d=None):  # (T, P, ...) -> (P, T, ...) for the network, and back
        d = None if d is None else d.transpose(1, 0, 2, 3)
        rel, err = lift_with_error(net, k.transpose(1, 0, 2, 3), cam, flip, d)
        err = np.full(rel.shape[:-1], ERROR_REF) if err is None or not trust else err
        return np.concatenate([rel, err[..., None]], -1).transpose(1, 0, 2, 3)  # resampled together

    both = at_training_rate(run, kp, keypoints2d.fps, extra=bone_directions).transpose(1, 0, 2, 3)
    rel, err = both[..., :3], both[..., 3]  # (P, T, 17, 3), (P, T, 17)
    P = kp.shape[1]
    seen = (kp[..., 2] > 0).any(-1).T  # (P, T)
    # A joint the detector missed is the network's guess from context: it keeps a quarter of
    # the weight, so a fit can let other evidence (IMUs, smoothness) decide it.
    Wc, _ = formats.conversion_matrix(INPUT_FORMAT, OUTPUT_FORMAT)  # (17 out, 17 in)
    observed = np.where(Wc[None, None] > 0, kp[..., None, :, 2].clip(0, 1), 1.0).min(-1)  # (T, P, 17)
    trusted = joint_trust(err)  # 1 where there is no head
    detector = 0.25 + 0.75 * observed.transpose(1, 0, 2) if detector_weight else 1.0
    conf = seen[..., None] * detector * trusted
    out = rel.copy()
    if camera is not None:
        W, avail = formats.conversion_matrix(OUTPUT_FORMAT, INPUT_FORMAT)
        for p in range(P):
            rel_in = np.einsum("ds,tsc->tdc", W, rel[p])  # output joints at the input's names
            kp_p = kp[:, p].copy()
            kp_p[:, ~avail, 2] = 0.0
            out[p] = rel[p] + root_translation(rel_in, kp_p, camera.K)[:, None]
    return Joints3D(out.transpose(1, 0, 2, 3), OUTPUT_FORMAT, keypoints2d.fps, "camera",
                    conf.transpose(1, 0, 2))


class StreamingLifter:
    """Lift one new frame at a time from the last ``receptive_field`` frames (online use).

    The newest frame sits at the right edge of the window, padded by repetition, so the output
    has no delay; accuracy is a little below the offline ``lift`` which also sees the future.
    ``camera`` gives the intrinsics (else a 60-degree camera of ``image_size``).
    """

    def __init__(self, net: Lifter | None = None, fmt: str = INPUT_FORMAT, camera: Camera | None = None,
                 image_size: tuple[int, int] = (1920, 1080)) -> None:
        self.net = net or load_lifter()
        self.fmt = fmt
        self.camera = camera or Camera.from_fov(*image_size)
        self.window: deque[np.ndarray] = deque(maxlen=self.net.receptive_field // 2 + 1)

    def push(self, keypoints: np.ndarray) -> np.ndarray:
        """(J, 3) pixels + confidence of one frame -> (17, 3) root-relative h36m17 joints."""
        self.window.append(formats.convert(np.asarray(keypoints)[None], self.fmt, INPUT_FORMAT)[0])
        x, R = _network_input(self.net, np.stack(self.window), self.camera)
        # Only the newest frame's output is needed: one centre evaluation on the last
        # receptive field, the future half padded with the newest frame as ``forward`` does.
        x = np.concatenate([x, np.repeat(x[-1:], self.net.pad, 0)])[-self.net.receptive_field:]
        x = np.concatenate([np.repeat(x[:1], self.net.receptive_field - len(x), 0), x])
        dev = next(self.net.parameters()).device
        with torch.no_grad():
            y = self.net.forward_center(torch.as_tensor(x[None], dtype=torch.float32, device=dev))
        y = y[0].double().cpu().numpy()
        if R is not None:
            y = y @ R[-1]
        return y - y[ROOT]
