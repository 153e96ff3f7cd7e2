"""How well the accelerometers size a monocular fit: which sensors, over what window.

    python benchmarks/imu_scale_eval.py --clips 5 --threads 1    # the table in docs/BENCHMARKS.md
    python benchmarks/imu_scale_eval.py --clips 10 --threads 1

The windows, camera views and IMU streams of ``benchmarks/imu_eval.py`` (same seeds, same
order). For each, the vision-only fit (imu_eval's "camera" row, which the IMU refinement starts
from), the IMUs aligned to it as ``fit_body`` aligns them (N-pose mountings), then
``fusion.imu.scale_from_accelerations`` with each choice of sensors and averaging window,
without its correlation gate. Reported per choice: the RMS over windows of log(estimate / true
ratio) in percent, where the true ratio is the truth's stature over the fit's; and the
same for no estimate (1.0: the camera's own guess). Lower is better.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import body_models
from lift3d.fitting import fit_body
from lift3d.fitting.fit import _imu_targets, _segment_visibility
from lift3d.fusion.imu import (SPARSE6, align_imus, mountings_from_calibration, scale_from_accelerations,
                               segment_rotations)
from lift3d.lifting.lift import lift
from mocap_clips import clip_arguments, imu_windows

CHOICES = {"head": ["head"], "pelvis": ["root"], "head + pelvis": ["head", "root"],
           "all six": SPARSE6["anny"]}
WINDOWS = (0.3, 0.4, 0.5, 0.7)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    clip_arguments(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(6)  # imu_eval's seed and draw order: the same windows
    model = body_models.load("anny")
    errors = {(c, w): [] for c in CHOICES for w in WINDOWS}
    none = []
    for win in imu_windows(args.data, args.clips, args.frames, rng, model):
        k2, imu = win.keypoints, win.imu
        fit = fit_body(k2, win.camera, lift(k2, win.camera), model=model, progress=False)
        idx = [model.joint_names.index(s) for s in imu.segments]
        vis = _segment_visibility(model, k2, idx)
        G = segment_rotations(fit.pose[:, 0], model.parents, idx)
        al = align_imus(imu, G, vis, mountings=mountings_from_calibration(imu.calibration))
        terms = _imu_targets((imu, al, idx), lambda x: torch.as_tensor(x, dtype=torch.float64), k2.fps)
        measured = (terms["force"] + terms["gravity"][:, None]).numpy()
        points = fit.joints(0, model)[:, idx]
        ratio = win.true_height / fit.standing_height(model)[0]
        none.append(np.log(ratio))
        line = []
        for c, segs in CHOICES.items():
            use = np.array([s in segs for s in imu.segments])
            for w in WINDOWS:
                s, corr = scale_from_accelerations(points, measured, vis * use[None], k2.fps, imu.valid,
                                                   window_s=w, min_correlation=-1.0)
                errors[c, w].append(np.log(s / ratio))
                if w == 0.5:
                    line.append(f"{c} {s:.2f} (r {corr:.2f})")
        print(f"{win.take} [{win.start}:{win.start + k2.num_frames}]: true ratio {ratio:.2f}; at 0.5 s: "
              + ", ".join(line), flush=True)
    rms = lambda e: 100 * np.sqrt(np.mean(np.square(e)))  # noqa: E731
    print(f"\n{len(none)} windows; RMS of log(estimate / true stature ratio), %; the camera's own guess "
          f"{rms(none):.1f}%\n")
    print("| sensors | " + " | ".join(f"{w} s" for w in WINDOWS) + " |")
    print("|---|" + "---:|" * len(WINDOWS))
    for c in CHOICES:
        print(f"| {c} | " + " | ".join(f"{rms(errors[c, w]):.1f}" for w in WINDOWS) + " |")


if __name__ == "__main__":
    main()
