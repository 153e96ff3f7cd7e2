"""What six body-worn IMUs say about the joints they do not sense: a learned conditional pose prior.

Six sensors (``imu.SPARSE6``: forearms, shins, head, pelvis) fix six segments' world rotations,
but not the spine between pelvis and head, nor the thighs and upper arms: many poses fit them,
and an unconditional prior (the GMM of ``fitting.prior``) picks the typical one, not the one
that goes with these sensor readings. Sparse-IMU methods (DIP, TransPose, PIP) learn the
mapping from the sensor orientations to the full pose on motion capture; this is the small,
per-frame version of that: an MLP from the sensed orientations to every prior joint's local
rotation and how sure it is of it (a variance per joint: the spine is well determined by pelvis
and head, an upper arm is not by its forearm), trained by ``python -m lift3d.fusion.train_imu_prior`` on CMU mocap retargeted to the
body model (subject 02 held out).

Features are invariant to heading (a turn about the vertical): the five non-pelvis sensors'
rotations in the pelvis frame, and the vertical in the pelvis frame.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import roma
import torch
from torch import nn

from lift3d.io_utils import Lift3DError, atomic_path

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "data" / "imu_prior.pt"
FEATURES = 5 * 9 + 3
_CACHE: dict[str, "IMUPosePrior"] = {}


def imu_features(segment_rot: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Heading-invariant features of the six sensed segments.

    Args:
        segment_rot: (..., 6, 3, 3) world rotations of the segments in ``SPARSE6`` order (pelvis last).
        up: (3,) or (..., 3) the world's unit vertical.
    Returns:
        (..., 48): the other five rotations in the pelvis frame (R_p^T G_s, flattened), then R_p^T up.
    """
    Rp = segment_rot[..., 5, :, :]
    rel = Rp.transpose(-1, -2)[..., None, :, :] @ segment_rot[..., :5, :, :]
    u = (Rp.transpose(-1, -2) @ up.expand(*Rp.shape[:-2], 3)[..., None])[..., 0]
    return torch.cat([rel.flatten(-3), u], -1)


def window_features(features: torch.Tensor, fps: float, offsets: tuple[float, ...]) -> torch.Tensor:
    """(T, F) per-frame features -> (T, F * len(offsets)): each frame's features at the given
    times (s) around it, the nearest frame, clamped at the sequence's ends."""
    T = len(features)
    t = torch.arange(T, device=features.device)
    cols = [features[(t + round(o * fps)).clamp(0, T - 1)] for o in offsets]
    return torch.cat(cols, -1)


class IMUPosePrior(nn.Module):
    """MLP: (..., 48) sensor features -> (..., J, 3, 3) local rotations of ``joint_indices`` and
    (..., J) their variances (expected squared Frobenius error ||R - R_true||_F^2, ~2 theta^2)."""

    def __init__(self, model_name: str, joint_indices: list[int], hidden: int = 512, dropout: float = 0.1,
                 meta: dict | None = None, offsets: tuple[float, ...] = (0.0,)) -> None:
        super().__init__()
        self.model_name = model_name
        # Times (s) around each frame whose sensor features the net sees: a short window tells
        # a limb's swing from its twist better than one frame does.
        self.offsets = tuple(float(o) for o in offsets)
        self.joint_indices = list(joint_indices)
        self.meta = dict(meta or {})
        J = len(self.joint_indices)
        self.net = nn.Sequential(
            nn.Linear(FEATURES * len(self.offsets), hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, 7 * J))
        # Start at the rest pose (identity rotations): the first two columns of I.
        nn.init.zeros_(self.net[-1].weight)
        with torch.no_grad():
            self.net[-1].bias.copy_(torch.tensor([1.0, 0, 0, 0, 1.0, 0, -3.0]).repeat(J))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., 48) -> rotations (..., J, 3, 3), log-variances (..., J)."""
        out = self.net(features).unflatten(-1, (len(self.joint_indices), 7))
        columns = out[..., :6].unflatten(-1, (2, 3)).transpose(-1, -2)  # (..., J, 3, 2)
        return roma.special_gramschmidt(columns), out[..., 6]

    def predict(self, segment_rot: torch.Tensor, up: torch.Tensor, fps: float = 30.0
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(T, 6, 3, 3) sensed world rotations of a sequence at ``fps``, (3,) vertical ->
        (T, J, 3, 3) local rotations and (T, J) their variances."""
        dt = segment_rot.dtype
        with torch.no_grad():
            f = window_features(imu_features(segment_rot.float(), up.float()), fps, self.offsets)
            R, log_var = self.to(f.device).eval()(f)
            return R.to(dt), log_var.exp().to(dt)

    def save(self, path: str | Path) -> None:
        state = {"model_name": self.model_name, "joint_indices": self.joint_indices, "meta": self.meta,
                 "hidden": self.net[0].out_features, "offsets": self.offsets, "state_dict": self.state_dict()}
        with atomic_path(Path(path)) as tmp:
            torch.save(state, tmp)


def load_imu_prior(path: str | Path | None = None, model=None) -> IMUPosePrior:
    """The shipped (or a given) conditional prior, read once per process; checks it was trained
    for ``model``."""
    path = Path(path) if path is not None else DEFAULT_PATH
    net = _CACHE.get(str(path))
    if net is None:
        net = _CACHE[str(path)] = _read(path)
    if model is not None and model.name != net.model_name:
        raise Lift3DError(f"the IMU pose prior {path} was trained for {net.model_name}, not {model.name}")
    return net


def _read(path: Path) -> IMUPosePrior:
    if not path.exists():
        raise Lift3DError(f"no IMU pose prior at {path}; train one with python -m lift3d.fusion.train_imu_prior")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        net = IMUPosePrior(state["model_name"], state["joint_indices"], hidden=state["hidden"], meta=state["meta"],
                           offsets=state.get("offsets", (0.0,)))
        net.load_state_dict(state["state_dict"])
    except (KeyError, RuntimeError, EOFError, OSError, ValueError, TypeError, pickle.UnpicklingError) as e:
        raise Lift3DError(f"{path} is not a lift3d IMU pose prior ({e})") from None
    return net.eval()


def conditional_rotations(model, segment_rot: torch.Tensor, segments: list[int], up: torch.Tensor,
                          fps: float = 30.0, path: str | Path | None = None
                          ) -> tuple[list[int], torch.Tensor, torch.Tensor] | None:
    """The prior's local rotations for ``model`` given its sensed segments, or None when the
    sensors are not the six ``SPARSE6`` segments (in any order) or no prior is installed.

    Args:
        segment_rot: (T, N, 3, 3) world rotations of the sensed segments, in ``segments`` order.
        segments: the N sensed joints' indices in ``model``.
        up: (3,) the unit vertical in the same world.
    Returns:
        (the prior's joint indices, (T, J, 3, 3) their local rotations, (T, J) variances).
    """
    from lift3d.fusion.imu import SPARSE6

    names = SPARSE6.get(model.name)
    path = Path(path) if path is not None else DEFAULT_PATH
    if names is None or not path.exists():
        return None
    wanted = [model.joint_names.index(n) for n in names]
    if sorted(wanted) != sorted(segments):
        return None
    net = load_imu_prior(path, model=model)
    rot = segment_rot[:, [list(segments).index(j) for j in wanted]]
    return (net.joint_indices, *net.predict(rot, up.to(rot), fps))


def mirror_pose(pose: np.ndarray, joint_names: list[str]) -> np.ndarray:
    """(N, J, 3, 3) local rotations of the mirror-image motion (x -> -x): left and right joints
    swap and each rotation R becomes M R M, M = diag(-1, 1, 1)."""
    from lift3d.fitting.prior import mirror_permutation

    M = np.diag([-1.0, 1.0, 1.0]).astype(pose.dtype)
    return M @ pose[:, mirror_permutation(joint_names)] @ M
