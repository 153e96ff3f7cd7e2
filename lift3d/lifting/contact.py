"""Foot contacts from 2D keypoints: a small temporal network trained on real motion capture.

A monocular fit's feet jitter in depth by more than a planted foot moves, so contacts read off
the fitted 3D feet are mostly missed (on benchmarks/fit_eval.py the speed-and-height rule found
under a tenth of the true contact frames). The 2D sequence says more: a planted foot's
ankle stays put in the image while the body moves over it, whatever the depth. This network
reads the lifter's input (coco17 keypoints in the virtual view, ``data.canonicalize``) plus each
joint's image velocity in person heights (``image_motion``: the box normalisation moves a still
ankle whenever the arms widen the box) and gives, per frame, the probability that each foot
is planted.

Labels come from the mocap itself (``contact_labels``): a foot is planted when its ankle is
slow and near the floor under it. Shapes: T frames, P people; the two outputs are (left, right).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import median_filter, percentile_filter
from torch import nn

from lift3d import formats
from lift3d.io_utils import LoadError
from lift3d.lifting.data import INPUT_FORMAT, OUTPUT_FORMAT, VIRTUAL_FOCAL, _box, at_training_rate, canonicalize
from lift3d.lifting.model import TemporalBlock
from lift3d.types import Camera, Keypoints2D

WEIGHTS = Path(__file__).resolve().parents[1] / "data" / "contact.pt"
SIDES = ("left", "right")
_ANKLES = [formats.index(OUTPUT_FORMAT, f"{s}_ankle") for s in SIDES]
_CACHE: dict[tuple[str, str], "ContactNet"] = {}


def contact_labels(joints: np.ndarray, fps: float, max_speed: float = 0.3, max_height: float = 0.08,
                   floor_window: float = 2.0) -> np.ndarray:
    """Which feet are planted in mocap joints (world frame, Y up, metres).

    A foot is planted when its ankle moves slower than ``max_speed`` (m/s, central difference,
    3-frame median) and is within ``max_height`` of the floor under the person. The floor is
    local (the 5th percentile of the lower ankle's height over ``floor_window`` seconds), so
    stairs, slopes and takes whose floor is not at y = 0 are handled.

    Args:
        joints: (T, 17, 3) h36m17 joints.
    Returns:
        (T, 2) bool, (left, right).
    """
    ank = np.asarray(joints, dtype=np.float64)[:, _ANKLES]  # (T, 2, 3)
    T = len(ank)
    if T < 3:
        return np.zeros((T, 2), dtype=bool)
    vel = np.gradient(ank, axis=0) * fps
    speed = median_filter(np.linalg.norm(vel, axis=-1), size=(3, 1), mode="nearest")
    h = ank[..., 1]
    win = max(3, int(round(floor_window * fps)) | 1)
    floor = percentile_filter(h.min(1), 5, size=min(win, T | 1), mode="nearest")
    return (speed < max_speed) & (h - floor[:, None] < max_height)


def image_motion(xyc: np.ndarray, smooth: int = 31) -> np.ndarray:
    """Per-joint image velocity in units of the person's size.

    Args:
        xyc: (..., T, J, 3) normalised image coordinates (x/z, y/z) + confidence.
        smooth: frames over which the person's size (larger box side) is median-filtered.
    Returns:
        (..., T, J, 2) central-difference velocity per frame / size; 0 where the joint or a
        neighbouring frame is missing.
    """
    ok = xyc[..., 2] > 0
    xy = xyc[..., :2]
    # _box works in pixels (its smallest side is 1): give it the virtual camera's.
    _, side = _box(xy * VIRTUAL_FOCAL, ok, smooth)
    side = side / VIRTUAL_FOCAL  # (..., T)
    T = xy.shape[-3]
    if T < 2:
        return np.zeros_like(xy)
    prev = np.concatenate([xy[..., :1, :, :], xy[..., :-1, :, :]], -3)
    nxt = np.concatenate([xy[..., 1:, :, :], xy[..., -1:, :, :]], -3)
    ok_prev = np.concatenate([ok[..., :1, :], ok[..., :-1, :]], -2)
    ok_next = np.concatenate([ok[..., 1:, :], ok[..., -1:, :]], -2)
    v = 0.5 * (nxt - prev) / side[..., None, None]
    return np.where((ok & ok_prev & ok_next)[..., None], v, 0.0)


def network_input(xyc: np.ndarray) -> np.ndarray:
    """(..., T, 17, 3) normalised image coordinates + confidence at 30 fps -> (..., T, 17, 5)
    input of ``ContactNet``: the lifter's virtual-view keypoints and ``image_motion``."""
    xyc = np.where(xyc[..., 2:] > 0, xyc, 0.0)
    return np.concatenate([canonicalize(xyc)[0], image_motion(xyc)], -1)


class ContactNet(nn.Module):
    """Dilated temporal convolutions (receptive field 27 frames with the defaults) from the
    (B, T, 17, 5) ``network_input`` to (B, T, 2) contact logits (left, right foot).

    Any length works: the sequence is padded by repeating its first and last frames."""

    def __init__(self, num_joints: int = 17, channels: int = 128, kernel: int = 3,
                 dilations: tuple[int, ...] = (3, 9), dropout: float = 0.1, features: int = 5) -> None:
        super().__init__()
        self.config = {"num_joints": num_joints, "channels": channels, "kernel": kernel,
                       "dilations": list(dilations), "dropout": dropout, "features": features}
        self.expand = nn.Conv1d(features * num_joints, channels, kernel, bias=False)
        self.bn = nn.BatchNorm1d(channels)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TemporalBlock(channels, kernel, d, dropout) for d in dilations)
        self.head = nn.Conv1d(channels, len(SIDES), 1)
        self.pad = (kernel - 1) // 2 + sum((kernel - 1) * d // 2 for d in dilations)

    @property
    def receptive_field(self) -> int:
        return 2 * self.pad + 1

    def forward_valid(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, J, F) -> (B, L - receptive_field + 1, 2) logits where the whole field is inside."""
        B, L = x.shape[:2]
        h = self.drop(torch.relu(self.bn(self.expand(x.reshape(B, L, -1).transpose(1, 2)))))
        for block in self.blocks:
            h = block(h)
        return self.head(h).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, J, F) ``network_input`` -> (B, T, 2) logits, any T >= 1."""
        first = x[:, :1].expand(-1, self.pad, -1, -1)
        last = x[:, -1:].expand(-1, self.pad, -1, -1)
        return self.forward_valid(torch.cat([first, x, last], dim=1))


def load_contact_net(path: str | Path | None = None, device: str | torch.device = "cpu") -> ContactNet:
    """The foot-contact network with its weights (the shipped ones by default), in eval mode."""
    path = Path(path) if path else WEIGHTS
    key = (str(path), str(device))
    if key not in _CACHE:
        if not path.is_file():
            raise LoadError(f"foot-contact weights not found at {path}; train them with "
                            "`python -m lift3d.lifting.train_contact` (see docs/BENCHMARKS.md)")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            net = ContactNet(**ckpt["config"])
            net.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()})
        except (RuntimeError, KeyError, TypeError, EOFError, OSError) as e:
            raise LoadError(f"cannot read foot-contact weights {path} ({e})") from None
        _CACHE[key] = net.to(device).eval()
    return _CACHE[key]


def contact_probabilities(kp: np.ndarray, camera: Camera, net: ContactNet | None = None) -> np.ndarray:
    """(..., T, 17, 3) coco17 pixels + confidence at 30 fps (the training rate; ``foot_contacts``
    resamples other rates) -> (..., T, 2) probability that each foot (left, right) is planted.
    Frames without any confident keypoint get probability 0."""
    net = net or load_contact_net()
    kp = np.asarray(kp, dtype=np.float64)
    shape = kp.shape
    xyc = np.concatenate([camera.normalized(kp[..., :2]), kp[..., 2:]], -1)
    x = network_input(xyc.reshape((-1,) + shape[-3:]))
    dev = next(net.parameters()).device
    with torch.no_grad():
        p = torch.sigmoid(net(torch.as_tensor(x, dtype=torch.float32, device=dev))).double().cpu().numpy()
    p = p.reshape(shape[:-2] + (2,))
    return np.where((kp[..., 2] > 0).any(-1, keepdims=True), p, 0.0)


def foot_contacts(keypoints2d: Keypoints2D, camera: Camera | None = None,
                  net: ContactNet | None = None) -> np.ndarray:
    """Per-frame planted-foot probabilities of every tracked person.

    Args:
        keypoints2d: (T, P, J, 3) in any format that gives coco17, at any frame rate (resampled
            to the network's 30 fps and back).
        camera: the video's intrinsics (a 60-degree camera of the image size if None).
    Returns:
        (T, P, 2) probabilities, (left foot, right foot).
    """
    kp = formats.convert(keypoints2d.data, keypoints2d.format, INPUT_FORMAT)  # (T, P, 17, 3)
    cam = camera or Camera.from_fov(*keypoints2d.image_size)
    run = lambda k: contact_probabilities(k.transpose(1, 0, 2, 3), cam, net).transpose(1, 0, 2)  # noqa: E731
    return at_training_rate(run, kp, keypoints2d.fps)
