"""Per-stage speed, fit accuracy and peak memory of ``lift3d run`` on the built-in demo clip.

    python benchmarks/pipeline_speed.py --seconds 60      # the 1-minute figure in docs/BENCHMARKS.md
    python benchmarks/pipeline_speed.py --silhouettes     # with BlazePose's masks fitted as silhouettes

Renders the demo clip (the Anny body walking, waving and turning, 640x480, 30 fps) for the
given length, then times each stage of the pipeline in this process and reports peak resident
memory (ru_maxrss) after each stage, so growth with video length is visible.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the build machine has 2 cores)")
    ap.add_argument("--silhouettes", action="store_true",
                    help="detect person masks too and fit them (lift3d run --silhouettes)")
    ap.add_argument("--silhouette-faces", type=int, default=None,
                    help="faces of the mesh the silhouette stage renders (FitOptions.silhouette_faces; 0 = all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from lift3d.demo import make_demo_clip
    from lift3d.fitting import FitOptions, fit_body
    from lift3d.keypoints import detect_keypoints, open_frames, write_openpose
    from lift3d.metrics import joint_errors
    from lift3d.pipeline import MASK_SIDE, SILHOUETTE_STEPS, write_preview

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        clip = make_demo_clip(tmp / "clip.mp4", seconds=args.seconds, progress=False)
        T = len(clip.keypoints3d)
        rows.append(("render demo clip (not part of run)", time.perf_counter() - t0, T, peak_mb()))

        t0 = time.perf_counter()
        with open_frames(clip.path) as frames:
            det = detect_keypoints(frames, progress=False, with_world=True, with_masks=args.silhouettes,
                                   mask_side=MASK_SIDE)
        rows.append(("2D detection (BlazePose, complexity 1)" + (", person masks" if args.silhouettes else ""),
                     time.perf_counter() - t0, T, peak_mb()))

        t0 = time.perf_counter()
        det.keypoints.save(tmp / "keypoints.npz")
        write_openpose(det.keypoints, tmp / "openpose")
        rows.append(("write keypoints (npz + OpenPose JSON)", time.perf_counter() - t0, T, peak_mb()))

        t0 = time.perf_counter()
        opts, masks, stage = FitOptions(), None, "body fit (Anny, 20 + 100 + 30 L-BFGS iterations)"
        if args.silhouettes:
            masks = det.mask_array()
            opts = FitOptions(iters_silhouette=SILHOUETTE_STEPS, **(
                {} if args.silhouette_faces is None else {"silhouette_faces": args.silhouette_faces}))
            stage += (f", then {SILHOUETTE_STEPS} silhouette steps on {opts.silhouette_faces or 'all'} faces"
                      f" and {opts.iters_ground} smoothing")
        fit = fit_body(det.keypoints, clip.camera, det.world, progress=False, options=opts, masks=masks)
        rows.append((stage, time.perf_counter() - t0, T, peak_mb()))

        t0 = time.perf_counter()
        write_preview(clip.path, det.keypoints, fit, tmp / "preview.mp4", progress=False)
        rows.append(("preview video (mesh + skeleton overlay)", time.perf_counter() - t0, T, peak_mb()))

        err = joint_errors(fit.keypoints3d("coco17"), clip.keypoints3d)
        reproj = np.nanmean(fit.quality["reprojection_px"])
        iou = fit.quality.get("silhouette_iou")

    print(f"\nclip: {T} frames ({args.seconds:g} s at 30 fps, 640x480), torch threads {args.threads}\n")
    print("| stage | seconds | frames/s | peak RSS after stage (MB) |")
    print("|---|---:|---:|---:|")
    for name, sec, n, mb in rows:
        print(f"| {name} | {sec:.1f} | {n / sec:.1f} | {mb:.0f} |")
    print(f"\nfit: mean reprojection error {reproj:.2f} px; against ground truth (coco17): "
          f"MPJPE {err['mpjpe_mm']:.0f} mm, root-relative {err['root_relative_mpjpe_mm']:.0f} mm, "
          f"PA-MPJPE {err['pa_mpjpe_mm']:.0f} mm" + (
              f"; silhouette IoU with the masks {np.nanmean(iou):.3f}" if iou is not None else ""))


if __name__ == "__main__":
    main()
