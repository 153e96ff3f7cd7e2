"""Frame-offset recovery between unsynchronised cameras, on real motion.

    python benchmarks/sync_eval.py --clips 10      # the table in docs/BENCHMARKS.md

Each clip (CMU subject 02, 10 s windows) is seen by 4 cameras on a ring (3-5 m, 1920x1080,
60 degree lens) through detector-like noise (``lifting.data.corrupt``); cameras 2-4 start a
random -45..45 frames late. Offsets are estimated with the calibration (epipolar consistency)
and without it (per-joint image motion), and compared with the truth.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from lift3d import formats
from lift3d.fusion.sync import estimate_offsets
from lift3d.lifting import data as LD
from lift3d.lifting.train import HELD_OUT, load_sequences
from lift3d.types import Camera, Keypoints2D


def ring(rng, n: int, centre: np.ndarray) -> list[Camera]:
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n + rng.uniform(-0.3, 0.3)
        r = rng.uniform(3.0, 5.0)
        eye = centre + np.array([r * np.sin(a), rng.uniform(0.3, 1.5), r * np.cos(a)])
        R, t = LD.look_at(eye, centre)
        base = Camera.from_fov(1920, 1080, 60.0)
        cams.append(Camera(K=base.K, image_size=(1920, 1080), R=R, t=t))
    return cams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/cmu-mocap")
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    rng = np.random.default_rng(11)
    n = int(args.seconds * 30)
    seqs = [s for s in load_sequences(Path(args.data), subjects={HELD_OUT}, progress=False)
            if s["name"].startswith("asfamc") and len(s["inp"]) >= n + 90]
    errs = {"epipolar (calibrated)": [], "motion (uncalibrated)": []}
    secs = {k: 0.0 for k in errs}
    for c in range(args.clips):
        seq = seqs[c % len(seqs)]
        start = rng.integers(0, len(seq["inp"]) - n - 90 + 1)
        world = seq["inp"][start:start + n + 90]  # (T, 17, 3) coco17, 90 spare frames for the shifts
        cams = ring(rng, 4, world[:, :, :].reshape(-1, 3).mean(0))
        true = np.concatenate([[0], rng.integers(-45, 46, 3)])
        kps = []
        for cam, off in zip(cams, true):
            uv, depth = LD.project(world, cam)
            noisy = LD.corrupt(rng, uv, depth, cam.image_size)
            # Camera frame t shows world frame 45 + t - off: the reference (off 0) starts at 45.
            kps.append(Keypoints2D(noisy[45 - off:45 - off + n, None], "coco17", 30.0, cam.image_size))
        for name in errs:
            t0 = time.perf_counter()
            est = estimate_offsets(kps, cams if "epipolar" in name else None, max_offset=60)
            secs[name] += time.perf_counter() - t0
            errs[name].extend(np.abs(est[1:] - true[1:]))
    print(f"\n{args.clips} clips x {args.seconds:.0f} s, 4 cameras, 3 offsets each in -45..45 frames\n")
    print("| method | exact | within 1 frame | mean abs error (frames) | s per clip |")
    print("|---|---|---|---|---|")
    for name, e in errs.items():
        e = np.array(e)
        print(f"| {name} | {100 * np.mean(e == 0):.0f}% | {100 * np.mean(e <= 1):.0f}% | {e.mean():.2f} | "
              f"{secs[name] / args.clips:.2f} |")


if __name__ == "__main__":
    main()
