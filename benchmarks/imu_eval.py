"""One camera vs one camera + 6 IMUs under heavy occlusion, on real motion.

    python benchmarks/imu_eval.py --clips 5 --frames 150 --threads 1   # the table in docs/BENCHMARKS.md
    python benchmarks/imu_eval.py --rows 0,1 --no-imu-only --set w_3d_imu=2   # a setting tried
    python benchmarks/imu_eval.py --clips 10 ...   # all six long-enough takes, other windows
    python benchmarks/imu_eval.py --rows 0,1,6 --no-imu-only --heights   # the true alignment; statures
    python benchmarks/imu_eval.py --rows 0,1 --no-imu-only --true-height  # every fit knows the height
    python benchmarks/imu_eval.py --clips 10 --seed 11 --rows 0,1 --no-imu-only   # fresh windows

Each clip (CMU subject 02, held out from the lifter and the pose prior) is retargeted onto Anny
with a random shape: that posed body is the truth. A random camera sees it as corrupted
openpose25 keypoints (``lifting.data.corrupt``), and for one second in the middle half of the
keypoints (a random half) are hidden (confidence 0). Six IMUs (forearms, shins, head, pelvis;
``fusion.imu.SPARSE6``) are synthesised from the truth with random mountings, a random heading
with drift, 1 degree orientation noise and 0.2 m/s^2 accelerometer noise.

All fits get the same keypoints and the lifter's 3D target. The IMU fits align the sensors to
their own vision-only pass (``align_imus``), size the body by the head sensor's accelerations
(``fusion.imu.scale_from_accelerations``) and refine with them (sensor orientations, and the
accelerometers relative to each other: ``losses.imu_relative_acceleration``): once with the
mountings from an N-pose calibration recording (``IMUData.calibration``, as Xsens and DIP-IMU
capture it), once with the mountings estimated from the video as well; and once with the N-pose
mountings and the IMU-conditional pose prior (``FitOptions.w_imu_prior = 0.01``; off by
default: ``fusion.imu_prior``);
and once with the N-pose mountings but the 2D lifter's target throughout
(``FitOptions.imu_lifter = False``: the IMU refinement otherwise re-lifts with the sensed bone
directions, ``lifting.imu_input``); and once with the N-pose mountings and the camera's up
direction known to 1 degree (``fit_body(camera_up=)``: a levelled camera or a phone's gravity
sensor), so that only the IMU world's heading comes from the video; and, as a bound on what the
alignment costs, with the true mountings and IMU world given (``fit_body(imu_alignment=)``).
Reported: root-relative MPJPE and PA-MPJPE of coco17 joints (mm) over the occluded second and
over the whole clip, and the error of the fitted stature (cm); and, for the six IMUs alone
(``fusion.imu_fit.fit_imu_only``: no camera, the IMU-conditional prior and the mocap GMM fill
the unsensed joints), PA-MPJPE (its heading is the IMU world's).
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

import body_models
from lift3d import formats
from lift3d.fitting import FitOptions, fit_body
from lift3d.fusion.imu import IMUAlignment
from lift3d.fusion.imu_fit import fit_imu_only
from lift3d.lifting.lift import lift
from lift3d.lifting.train import HELD_OUT
from lift3d.metrics import joint_errors
from mocap_clips import clip_arguments, imu_windows, known_up, option_value


def short(row: str) -> str:
    """A row's name as the per-clip lines print it: 'camera + 6 IMUs (N-pose calibration)' -> 'N-pose calibration'."""
    return row.split(" (")[-1].rstrip(")")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    clip_arguments(ap)
    ap.add_argument("--w-orientation", type=float, default=None, help="FitOptions.w_imu_orientation (default: its default)")
    ap.add_argument("--w-acceleration", type=float, default=None, help="FitOptions.w_imu_acceleration")
    ap.add_argument("--w-prior", type=float, default=None, help="FitOptions.w_prior (mocap GMM pose prior) for every fit")
    ap.add_argument("--w-imu-prior", type=float, default=None, help="FitOptions.w_imu_prior (IMU-conditional prior)")
    ap.add_argument("--imu-prior-floor", type=float, default=None, help="FitOptions.imu_prior_floor")
    ap.add_argument("--seed", type=int, default=6,
                    help="the windows' and views' seed (6: the tables in docs/BENCHMARKS.md; others: fresh windows "
                         "to check that settings chosen on those hold)")
    ap.add_argument("--rows", default=None, help="comma-separated row numbers to run (default: all; 0 = camera)")
    ap.add_argument("--no-imu-only", action="store_true", help="skip the IMU-only fit")
    ap.add_argument("--heights", action="store_true", help="print each clip's true and fitted statures")
    ap.add_argument("--true-height", action="store_true",
                    help="every fit, the camera alone too, gets the truth's stature (fit_body(height=)), as "
                         "IMU suits ask for the wearer's body height")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="change a FitOptions field for every fit (repeatable)")
    args = ap.parse_args()
    overrides = {"w_imu_orientation": args.w_orientation, "w_imu_acceleration": args.w_acceleration,
                 "w_prior": args.w_prior, "w_imu_prior": args.w_imu_prior, "imu_prior_floor": args.imu_prior_floor}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    changes = dict(option_value(x) for x in args.set)
    if overrides.keys() & changes.keys():
        raise SystemExit(f"set twice (a flag and --set): {', '.join(sorted(overrides.keys() & changes.keys()))}")
    opts = FitOptions(**overrides, **changes)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    model = body_models.load("anny")
    names = model.keypoint_names
    rows = {"camera": [], "camera + 6 IMUs (N-pose calibration)": [],
            "camera + 6 IMUs (N-pose calibration, IMU-conditional prior 0.01)": [],
            "camera + 6 IMUs (mountings from the video)": [],
            "camera + 6 IMUs (N-pose calibration, 2D lifter's target)": [],
            "camera + 6 IMUs (N-pose calibration, camera's up known to 1 degree)": [],
            "camera + 6 IMUs (true mountings and IMU world: an oracle)": []}
    if args.rows is not None:
        keep = {int(i) for i in args.rows.split(",")} | {0}
        rows = {k: v for i, (k, v) in enumerate(rows.items()) if i in keep}
    imu_only = []
    clips = 0
    up_rng = np.random.default_rng(7)  # its own draws: the other rows see the same clips as before
    for win in imu_windows(args.data, args.clips, args.frames, rng, model):
        clips += 1
        take, start, true_fit, cam, k2, occ, imu = (win.take, win.start, win.truth, win.camera, win.keypoints,
                                                    win.occluded, win.imu)
        T, true_h = true_fit.num_frames, win.true_height
        kp_w = win.keypoints_world
        kp_c = cam.world_to_camera(kp_w)
        target = lift(k2, cam)
        true17 = formats.convert_points(kp_c, names, "coco17")
        uncalibrated = dataclasses.replace(imu, calibration=None)
        camera_up = known_up(up_rng, cam)
        # The truth's alignment in the fit's (camera) axes: what align_imus would ideally find.
        oracle = IMUAlignment(win.Q @ cam.R.T[None], win.M, np.zeros(len(win.M)))
        heights = {}
        for name in rows:
            t0 = time.perf_counter()
            use = None if "IMU" not in name else uncalibrated if "from the video" in name else imu
            o = dataclasses.replace(opts, w_imu_prior=0.01) if "IMU-conditional prior" in name else opts
            o = dataclasses.replace(o, imu_lifter=False) if "2D lifter" in name else o
            up = camera_up if "up known" in name else None
            fit = fit_body(k2, cam, target, model=model, progress=False, options=o, imu=use, camera_up=up,
                           imu_alignment=oracle if "oracle" in name else None,
                           height=true_h if args.true_height else None)
            sec = time.perf_counter() - t0
            heights[name] = fit.standing_height(model)[0]
            pred = formats.convert_points(fit.keypoints3d(names, model=model), names, "coco17")
            e_occ = joint_errors(pred[occ], true17[occ])
            e_all = joint_errors(pred, true17)
            rows[name].append([e_occ["root_relative_mpjpe_mm"], e_occ["pa_mpjpe_mm"],
                               e_all["root_relative_mpjpe_mm"], e_all["pa_mpjpe_mm"], sec / T * 1000,
                               100 * abs(heights[name] - true_h)])
        # No camera at all: the six IMUs with the mocap priors (its frame has the IMU world's
        # heading, so only the Procrustes-aligned error compares).
        if args.no_imu_only:
            imu_only.append([np.nan] * 3)
        else:
            t0 = time.perf_counter()
            alone = fit_imu_only(imu, model, progress=False)
            sec = time.perf_counter() - t0
            pred = formats.convert_points(alone.keypoints3d(names, model=model), names, "coco17")
            world17 = formats.convert_points(kp_w, names, "coco17")
            imu_only.append([joint_errors(pred[occ], world17[occ])["pa_mpjpe_mm"],
                             joint_errors(pred, world17)["pa_mpjpe_mm"], sec / T * 1000])
        print(f"{take} [{start}:{start + T}]: " + ", ".join(
            f"{short(k)} {rows[k][-1][0]:.0f}/{rows[k][-1][2]:.0f} mm" for k in rows), flush=True)
        if args.heights:
            print(f"    stature: truth {true_h:.2f} m; " + ", ".join(
                f"{short(k)} {h:.2f}" for k, h in heights.items()), flush=True)

    print(f"\n{clips} clips x {args.frames} frames, CMU subject {HELD_OUT}; occluded second = "
          "half the keypoints hidden for 30 frames\n")
    print("| input | MPJPE occluded (mm) | PA-MPJPE occluded | MPJPE all frames | PA-MPJPE all | ms/frame "
          "| stature error (cm) |")
    print("|---|---|---|---|---|---|---|")
    means = {k: np.mean(v, axis=0) for k, v in rows.items()}
    for k, m in means.items():
        print(f"| {k} | {m[0]:.1f} | {m[1]:.1f} | {m[2]:.1f} | {m[3]:.1f} | {m[4]:.0f} | {m[5]:.1f} |")
    m = np.mean(imu_only, axis=0)
    print(f"| 6 IMUs alone (N-pose calibration, mocap priors; no camera) | — | {m[0]:.1f} | — | {m[1]:.1f} | {m[2]:.0f} | — |")
    cam_only = means["camera"]
    for k, fused in list(means.items())[1:]:
        print(f"\n{k}: the occluded second's MPJPE {100 * (1 - fused[0] / cam_only[0]):.0f}% lower "
              f"(PA-MPJPE {100 * (1 - fused[1] / cam_only[1]):.0f}%) than the camera alone")


if __name__ == "__main__":
    main()
