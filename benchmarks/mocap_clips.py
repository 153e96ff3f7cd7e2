"""Shared by benchmarks/fit_eval.py, imu_eval.py, imu_scale_eval.py and floor_eval.py: windows of
real CMU motion (held-out subject 02) retargeted onto Anny with random shapes (the truth), a
random camera's detector-like view of them, and (imu_windows) occlusion and six IMUs. Both draw from the caller's generator in a fixed order, so
a seeded benchmark stays deterministic."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Iterator

import numpy as np
import roma
import torch

from lift3d import formats
from lift3d.fitting import FitOptions
from lift3d.fitting.retarget import retarget
from lift3d.lifting import data as LD
from lift3d.lifting.train import HELD_OUT, load_sequences
from lift3d.types import BodyFit, Camera, Keypoints2D


def clip_arguments(ap: argparse.ArgumentParser) -> None:
    """The options every clip benchmark takes: --data, --clips, --frames, --threads."""
    ap.add_argument("--data", default="../shared/data/cmu-mocap")
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)


def stature(model, shape: np.ndarray) -> float:
    """The standing height (m) of the body with (S,) ``shape``."""
    with torch.no_grad():
        return float(model.standing_height(torch.as_tensor(shape[None], dtype=model.dtype))[0])


def known_up(rng: np.random.Generator, cam: Camera, degrees: float = 1.0) -> np.ndarray:
    """The world's up (+Y) in ``cam``'s axes as a levelled or gravity-sensing camera knows it:
    turned by ``degrees`` about a random axis (one ``rng.normal(size=3)`` draw)."""
    axis = rng.normal(size=3)
    tilt = roma.rotvec_to_rotmat(torch.as_tensor(axis / np.linalg.norm(axis) * np.radians(degrees))).numpy()
    return tilt @ cam.R @ np.array([0.0, 1.0, 0.0])


def camera_height(cam: Camera, verts_world: np.ndarray) -> float:
    """The camera's height above the floor of a (T, V, 3) world-frame body (Y up): the floor is
    where the body's lowest point is in most frames."""
    return float(cam.center[1] - np.median(verts_world[..., 1].min(1)))


def posed(model, truth: dict, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The true body of a ``retargeted_windows`` window in the world: (T, V, 3) vertices,
    (T, K, 3) keypoints (the model's) and (T, 3) root joint."""
    dt = model.dtype
    with torch.no_grad():
        out = model(torch.as_tensor(truth["pose"], dtype=dt), torch.as_tensor(shape[None], dtype=dt),
                    torch.as_tensor(truth["transl"], dtype=dt))
    return out.vertices.double().numpy(), out.keypoints.double().numpy(), out.joints[:, 0].double().numpy()


def retargeted_windows(data: str | Path, clips: int, frames: int, rng: np.random.Generator,
                       model) -> Iterator[tuple[str, int, dict, np.ndarray]]:
    """Yield (take name, first frame, ``retarget`` result, (S,) shape) for ``clips`` random
    windows of ``frames`` frames of held-out takes (ASF/AMC), each on a random body shape."""
    seqs = [s for s in load_sequences(Path(data), subjects={HELD_OUT}, progress=False)
            if s["name"].startswith("asfamc") and len(s["inp"]) >= frames]
    if not seqs:
        raise SystemExit(f"no ASF/AMC take of CMU subject {HELD_OUT} with {frames} frames under {data} "
                         "(run from the repository root, or give --data)")
    seqs = [seqs[i] for i in rng.choice(len(seqs), size=min(clips, len(seqs)), replace=False)]
    for seq in seqs:
        start = int(rng.integers(0, len(seq["inp"]) - frames + 1))
        sl = slice(start, start + frames)
        both = np.concatenate([seq["inp"][sl], seq["out"][sl]], 1)
        shape = rng.uniform(-0.3, 0.3, model.num_shape)
        truth = retarget(both, formats.names("coco17") + formats.names("h36m17"), model, shape=shape,
                         progress=False)
        yield seq["name"], start, truth, shape


def detector_view(rng: np.random.Generator, keypoints_world: np.ndarray, names: list[str]
                  ) -> tuple[Camera, np.ndarray]:
    """A random camera on the (T, K, 3) world keypoints (the model's ``names``) and its
    detector-like (T, 25, 3) openpose25 keypoints (``lifting.data.corrupt``)."""
    cam = LD.sample_camera(rng, keypoints_world)
    uv, depth = LD.project(keypoints_world, cam)
    noisy = LD.corrupt(rng, formats.convert_points(uv, names, "openpose25"),
                       formats.convert_points(depth[..., None], names, "openpose25")[..., 0], cam.image_size)
    return cam, noisy


@dataclasses.dataclass
class IMUWindow:
    """One window of ``imu_windows``: the truth, the camera's occluded view and six IMUs."""

    take: str
    start: int
    truth: BodyFit          # world frame, one person
    true_height: float      # the truth's stature (m)
    keypoints_world: np.ndarray  # (T, K, 3) the truth's model keypoints
    camera: Camera
    keypoints: Keypoints2D  # openpose25, a random half hidden during ``occluded``
    occluded: slice
    imu: "IMUData"
    Q: np.ndarray           # synthesize_imu's truth: fit frame -> IMU world, (T, 3, 3)
    M: np.ndarray           # and the mountings, (N, 3, 3)


def imu_windows(data: str | Path, clips: int, frames: int, rng: np.random.Generator, model
                ) -> Iterator[IMUWindow]:
    """``retargeted_windows`` seen by a random camera (``detector_view``) with one second in the
    middle where a random half of the keypoints is hidden, and six IMUs (``fusion.imu.SPARSE6``)
    synthesised from the truth: benchmarks/imu_eval.py's and imu_scale_eval.py's windows, the
    same for the same generator."""
    from lift3d.fusion.imu import SPARSE6, synthesize_imu

    names = model.keypoint_names
    for take, start, truth, shape in retargeted_windows(data, clips, frames, rng, model):
        T = len(truth["pose"])
        true_fit = BodyFit("anny", truth["pose"][:, None], shape[None], truth["transl"][:, None], 30.0,
                           frame="world")
        kp_w = true_fit.keypoints3d(names, model=model)
        cam, noisy = detector_view(rng, kp_w, names)
        occ = slice(T // 2 - 15, T // 2 + 15)
        hidden = rng.choice(noisy.shape[1], size=noisy.shape[1] // 2, replace=False)
        noisy[occ, hidden, 2] = 0.0
        k2 = Keypoints2D(noisy[:, None], "openpose25", 30, cam.image_size)
        imu, Q, M = synthesize_imu(true_fit, SPARSE6["anny"], seed=int(rng.integers(1 << 30)), model=model)
        yield IMUWindow(take, start, true_fit, stature(model, shape), kp_w, cam, k2, occ, imu, Q, M)


def option_value(text: str) -> tuple[str, object]:
    """'w_smooth=100' -> ('w_smooth', 100.0): a FitOptions field and its value, typed as the
    field's default is."""
    name, _, value = text.partition("=")
    fields = {f.name: f for f in dataclasses.fields(FitOptions)}
    if name not in fields or not value:
        raise SystemExit(f"--set {text}: expected NAME=VALUE with NAME one of {', '.join(fields)}")
    kind = type(getattr(FitOptions(), name))
    if kind is bool:
        return name, value.lower() in ("1", "true", "yes")
    return name, kind(value)
