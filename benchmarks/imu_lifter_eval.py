"""The IMU lifter against the 2D lifter on held-out motion with hidden joints.

    python benchmarks/imu_lifter_eval.py --threads 2
    python benchmarks/imu_lifter_eval.py --weights /tmp/lifter_imu.pt   # other IMU weights

Every sequence of the held-out CMU subject (02) is watched by 2 fixed random cameras (seeded),
with detector-like 2D (``corrupt``); in every 3-second stretch, for one second, a random 7 of
the 17 keypoints are hidden (confidence 0). The six sensed bones' directions
(``lifting.imu_input.SENSOR_BONES``) come from the truth through ``sensor_like`` (per window an
alignment error of up to 4 degrees, per sensor a 4-degree offset, 1.5 degrees of noise). Errors
in mm, root-relative, h36m17: over the hidden joints while hidden, and over every joint of the
frames seen whole.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from lift3d import formats
from lift3d.lifting.data import camera_targets, corrupt, project, sample_camera
from lift3d.lifting.imu_input import bone_directions, sensor_like
from lift3d.lifting.lift import IMU_WEIGHTS, WEIGHTS, lift_root_relative, load_lifter
from lift3d.lifting.train import HELD_OUT, load_sequences


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/cmu-mocap")
    ap.add_argument("--weights", default=str(IMU_WEIGHTS), help="the IMU lifter")
    ap.add_argument("--cameras", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    imu_net, plain = load_lifter(args.weights), load_lifter(WEIGHTS)
    seqs = load_sequences(Path(args.data), subjects={HELD_OUT}, progress=False)
    if not seqs:
        raise SystemExit(f"no held-out takes under {args.data} (run from the repository root)")
    coco, h36m = formats.names("coco17"), formats.names("h36m17")
    rng = np.random.default_rng(11)
    rows = {"2D lifter": [], "IMU lifter, six sensors": [], "IMU lifter, no sensor (zero inputs)": []}
    for seq in seqs:
        for _ in range(args.cameras):
            cam = sample_camera(rng, seq["out"])
            uv, depth = project(seq["inp"], cam)
            kp = corrupt(rng, uv, depth, cam.image_size, noise=1.0)
            T = len(kp)
            hidden = np.zeros((T, 17), dtype=bool)  # h36m17 joints hidden
            for t0 in range(0, T - 30, 90):
                start = t0 + int(rng.integers(0, 60))
                gone = rng.choice(17, size=7, replace=False)
                kp[start:start + 30, gone] = 0.0
                out = [h36m.index(n) for n in h36m if n in {coco[i] for i in gone}]
                hidden[start:start + 30, out] = True
            whole = ~hidden.any(1)
            true = camera_targets(seq["out"], cam)
            dirs = sensor_like(rng, bone_directions(true)[None], drop=0.0)[0]
            preds = {"2D lifter": lift_root_relative(plain, kp, cam),
                     "IMU lifter, six sensors": lift_root_relative(imu_net, kp, cam, directions=dirs),
                     "IMU lifter, no sensor (zero inputs)": lift_root_relative(imu_net, kp, cam,
                                                                              directions=0 * dirs)}
            for name, pred in preds.items():
                err = np.linalg.norm(pred - true, axis=-1) * 1000
                rows[name].append([err[hidden].sum(), hidden.sum(), err[whole].sum(), err[whole].size])
    print(f"{len(seqs)} held-out sequences x {args.cameras} cameras, subject {HELD_OUT}; "
          f"7 of 17 keypoints hidden for 1 s in every 3 s\n")
    print("| lifter | MPJPE, hidden joints (mm) | MPJPE, frames seen whole (mm) |")
    print("|---|---|---|")
    for name, r in rows.items():
        s = np.sum(r, axis=0)
        print(f"| {name} | {s[0] / s[1]:.1f} | {s[2] / s[3]:.1f} |")


if __name__ == "__main__":
    main()
