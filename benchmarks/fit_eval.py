"""Body-fit accuracy on real motion: CMU takes retargeted onto Anny, seen through random cameras.

    python benchmarks/fit_eval.py --clips 3 --frames 150
    python benchmarks/fit_eval.py --clips 8 --frames 150 --variants 0,9,10,11   # some rows, more clips
    python benchmarks/fit_eval.py --variants 0 --set w_smooth=100 --set w_slide=300   # one more row
    python benchmarks/fit_eval.py --variants 0 --target truth    # what a perfect lifter would give

Each clip (held-out subject 02, so neither the lifter nor the pose prior saw it) is retargeted
onto Anny with a random body shape (``lift3d.fitting.retarget``); that posed body is the truth.
A random camera (``lifting.data.sample_camera``) sees it; its openpose25 keypoints (body + feet)
get detector-like corruption (``lifting.data.corrupt``); the lifting network gives the 3D target;
then ``fit_body`` runs in several variants, side by side on the same input. Errors, in the camera
frame: mean per-vertex error after subtracting each frame's root joint (also with each frame's
size matched, and Procrustes-aligned: ``metrics.vertex_errors``; the rotation that Procrustes
takes off, about the camera's axes: ``metrics.orientation_error``), PA-MPJPE on coco17,
acceleration error, foot sliding (mean per-frame displacement of heels and toes over the
frames in which the truth has them in contact, from ``ground.detect_contacts`` on the truth),
and the root joint's distance from the truth in the camera frame (placement, mostly depth).
The silhouette variant also gets person masks: the true mesh rendered at a quarter resolution.
``--clean-2d`` gives every fit (and the lifter) the exact projections instead, and ``--target
truth`` the true 3D joints in place of the lifter's: bounds that split the error between the 2D
and the lifter.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import body_models
from lift3d import formats
from lift3d.fitting import fit_body, ground, render
from lift3d.fitting.fit import FitOptions
from lift3d.lifting import data as LD
from lift3d.lifting.lift import lift, load_lifter
from lift3d.lifting.train import HELD_OUT
from lift3d.metrics import joint_errors, orientation_error, vertex_errors
from lift3d.types import Joints3D, Keypoints2D
from mocap_clips import (camera_height, clip_arguments, detector_view, known_up, option_value, posed,
                         retargeted_windows, stature)

LONG = dict(iters_global=40, iters_full=200, iters_ground=60)  # the schedule before the warm start
# The fit before the coarse-to-fine parameters (2026-12-05): smoothness 30, foot hold 100, one scale.
ONE_SCALE = dict(w_smooth=30.0, w_slide=100.0, multiscale=False)
# The defaults before the learned foot contacts: contacts from the fitted feet's motion, the
# floor term at 100 and the smoothness at 10.
MOTION = dict(ONE_SCALE, contacts="motion", w_ground=100.0, w_smooth=10.0)
HEIGHT_GIVEN = "default, the true height given (fit_body(height=))"  # fit_body gets the truth's stature
# The camera's up (the truth's, turned by a random 1 degree, as floor_eval.py does), and with it
# the camera's true height above the floor.
UP_GIVEN = "default, the camera's up given to 1 degree (fit_body(camera_up=))"
CAMERA_HEIGHT_GIVEN = "default, the camera's up and height given (fit_body(camera_up=, camera_height=))"
VARIANTS = {
    "default (learned contacts, warm start, 20 + 100 + 30 iterations)": FitOptions(),
    "contacts from the fitted feet's motion, w_ground 100, w_smooth 10 (the defaults before 2026-12-01)": FitOptions(**MOTION),
    "learned contacts, w_smooth 10, w_slide 100, one scale": FitOptions(**{**ONE_SCALE, "w_smooth": 10.0}),
    "warm start, 40 + 200 + 60 iterations": FitOptions(**LONG),
    "+ mocap GMM prior (w_prior 5e-4, w_limits 1), 40 + 200 + 60": FitOptions(w_prior=5e-4, w_limits=1.0, **LONG),
    "no feet/floor stage, 40 + 200": FitOptions(**{**LONG, "iters_ground": 0}),
    "no warm start, 20 + 100 + 30": FitOptions(warm_start=False),
    "default + silhouettes (40 Adam steps, true masks)": FitOptions(iters_silhouette=40),
    HEIGHT_GIVEN: FitOptions(),
    "the defaults before 2026-12-05 (w_smooth 30, w_slide 100, one scale)": FitOptions(**ONE_SCALE),
    "coarse-to-fine, w_smooth 30, w_slide 100": FitOptions(w_smooth=30.0, w_slide=100.0),
    "one scale (no coarse-to-fine), w_smooth 300, w_slide 1000": FitOptions(multiscale=False),
    UP_GIVEN: FitOptions(),
    CAMERA_HEIGHT_GIVEN: FitOptions(),
}
SOLES = ["left_heel", "right_heel", "left_big_toe", "right_big_toe"]
# Joints the lifter's h36m17 set and the body's keypoints both have, to compare their orientation.
LIMBS = [f"{side}_{j}" for side in ("left", "right") for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")]


def true_masks(model, verts_cam: np.ndarray, cam, scale: float = 0.25) -> np.ndarray:
    """(T, H/4, W/4) person masks: the true mesh rendered (hard) through the camera at a
    quarter of its resolution, as a segmentation network's mask would be given."""
    K, size = render.scale_intrinsics(torch.as_tensor(cam.K), cam.image_size, scale)
    out = []
    with torch.no_grad():
        for a in range(0, len(verts_cam), 16):
            _, m = render.render_depth(torch.as_tensor(verts_cam[a:a + 16]), model.faces, K, size)
            out.append(m.numpy())
    return np.concatenate(out).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    clip_arguments(ap)
    ap.add_argument("--variants", default=None,
                    help="comma-separated row numbers of VARIANTS to run (0 = default; \"\" = only the --set row); all if omitted")
    ap.add_argument("--target", choices=["lifter", "truth"], default="lifter",
                    help="the fit's 3D target: the lifting network's (as in the pipeline) or the true joints")
    ap.add_argument("--lifter", default=None, help="the lifting network's weights (default: the shipped ones)")
    ap.add_argument("--no-trust", action="store_true",
                    help="the target's confidence without the lifter's trust in each joint (lift(trust=False))")
    ap.add_argument("--clean-2d", action="store_true", help="exact projections, every joint seen, for the lifter and the fit")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="add a row: the default FitOptions with these fields changed (repeatable)")
    args = ap.parse_args()
    variants = dict(VARIANTS.items() if args.variants is None else
                    (list(VARIANTS.items())[int(i)] for i in args.variants.split(",") if i))
    if args.set:
        changes = dict(option_value(s) for s in args.set)
        variants["default, " + ", ".join(f"{k} {v}" for k, v in changes.items())] = FitOptions(**changes)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(4)
    tilt_rng = np.random.default_rng(5)
    model = body_models.load("anny")
    names = model.keypoint_names
    sums: dict[str, dict[str, float]] = {v: {} for v in variants}
    frames = clips = 0
    target_turn = first_turn = np.zeros(3)  # lean / turn / roll (deg) on LIMBS, times frames
    for take, start, truth, shape in retargeted_windows(args.data, args.clips, args.frames, rng, model):
        clips += 1
        verts_w, kp_w, root_w = posed(model, truth, shape)
        cam, noisy = detector_view(rng, kp_w, names)
        to_cam = cam.world_to_camera
        verts_c, kp_c, root_c = to_cam(verts_w), to_cam(kp_w), to_cam(root_w)
        if args.clean_2d:
            uv, _ = LD.project(kp_w, cam)
            noisy = np.concatenate([formats.convert_points(uv, names, "openpose25"), np.ones((len(uv), 25, 1))], -1)
        k2 = Keypoints2D(noisy[:, None], "openpose25", 30, cam.image_size)
        soles = [names.index(n) for n in SOLES]
        contact = ground.detect_contacts(kp_w[:, soles], np.array([0.0, 1.0, 0.0]), 30.0)
        target = lift(k2, cam, net=load_lifter(args.lifter), trust=not args.no_trust)
        if args.target == "truth":
            target = Joints3D(formats.convert_points(kp_c, names, "h36m17")[:, None], "h36m17", 30)
        limbs_c = formats.convert_points(kp_c, names, LIMBS)
        limbs_c -= limbs_c.mean(1, keepdims=True)
        limbs_t = formats.convert_points(target.data[:, 0], target.format, LIMBS)
        turn_t = np.degrees(np.abs(orientation_error(limbs_t - limbs_t.mean(1, keepdims=True), limbs_c))).mean(0)
        target_turn = target_turn + turn_t * args.frames
        true_height = stature(model, shape)
        masks = true_masks(model, verts_c, cam) if any(o.iters_silhouette for o in variants.values()) else None
        up = known_up(tilt_rng, cam)  # its own generator: the windows and cameras stay as before
        cam_height = camera_height(cam, verts_w)
        for name, opts in variants.items():
            t0 = time.perf_counter()
            fit = fit_body(k2, cam, target, model=model, options=opts, progress=False,
                           masks=masks if opts.iters_silhouette > 0 else None,
                           height=true_height if name == HEIGHT_GIVEN else None,
                           camera_up=up if name in (UP_GIVEN, CAMERA_HEIGHT_GIVEN) else None,
                           camera_height=cam_height if name == CAMERA_HEIGHT_GIVEN else None)
            sec = time.perf_counter() - t0
            v = fit.vertices(model=model)
            j = fit.joints(model=model)
            kp = fit.keypoints3d(names, model=model)
            ve = vertex_errors(v - j[:, :1], verts_c - root_c[:, None])
            turn = np.degrees(np.abs(orientation_error(kp - j[:, :1], kp_c - root_c[:, None]))).mean(0)
            if name == next(iter(variants)):
                limbs = formats.convert_points(kp, names, LIMBS)
                turn_f = np.degrees(np.abs(orientation_error(limbs - limbs.mean(1, keepdims=True), limbs_c))).mean(0)
                first_turn = first_turn + turn_f * args.frames
                print(f"{take} [{start}:{start + args.frames}] lean / turn / roll on the 12 limb joints (deg): "
                      f"the lifter's target {turn_t[0]:.1f} / {turn_t[1]:.1f} / {turn_t[2]:.1f}, "
                      f"the fit ({name}) {turn_f[0]:.1f} / {turn_f[1]:.1f} / {turn_f[2]:.1f}")
            e = joint_errors(formats.convert_points(kp, names, "coco17"), formats.convert_points(kp_c, names, "coco17"))
            step = np.linalg.norm(np.diff(kp[:, soles], axis=0), axis=-1)  # (T-1, 4)
            both_c = contact[1:] & contact[:-1]
            slide = step[both_c].mean() * 1000 if both_c.any() else np.nan
            true_step = np.linalg.norm(np.diff(kp_c[:, soles], axis=0), axis=-1)[both_c].mean() * 1000
            root = np.linalg.norm(j[:, 0] - root_c, axis=-1).mean() * 1000
            row = {"vertex_mm": ve["pve_mm"], "size_matched_mm": ve["size_matched_pve_mm"],
                   "pa_vertex_mm": ve["pa_pve_mm"], "lean_deg": turn[0], "turn_deg": turn[1],
                   "roll_deg": turn[2], "pa_mpjpe_mm": e["pa_mpjpe_mm"], "accel_mm": e["accel_mm"],
                   "slide_mm": slide, "root_mm": root, "truth_slide_mm": true_step, "seconds": sec,
                   "height_cm": 100 * fit.standing_height(model)[0], "true_height_cm": 100 * true_height}
            row["height_error_cm"] = abs(row["height_cm"] - row["true_height_cm"])
            for k, val in row.items():
                sums[name][k] = sums[name].get(k, 0.0) + val * args.frames
            print(f"{take} [{start}:{start + args.frames}] {name}: " +
                  ", ".join(f"{k} {val:.1f}" for k, val in row.items()), flush=True)
        frames += args.frames
    print(f"\n{clips} clips x {args.frames} frames of held-out subject {HELD_OUT}, {args.threads} threads; "
          f"3D target: {'the true joints' if args.target == 'truth' else 'the lifter'}"
          f"{' without its trust in each joint' if args.no_trust and args.target == 'lifter' else ''}; "
          f"2D: {'exact' if args.clean_2d else 'detector-like'}\n")
    print("| variant | vertex error (mm) | PA-MPJPE (mm) | accel error (mm/frame^2) | foot sliding (mm/frame) "
          "| root placement (mm) | fitted frames/s | vertex error, size matched | PA vertex error "
          "| orientation error: lean / turn / roll (deg) | stature error (cm) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in sums.items():
        m = {k: v / frames for k, v in s.items()}
        print(f"| {name} | {m['vertex_mm']:.1f} | {m['pa_mpjpe_mm']:.1f} | {m['accel_mm']:.2f} | "
              f"{m['slide_mm']:.2f} | {m['root_mm']:.0f} | {args.frames / m['seconds']:.1f} | "
              f"{m['size_matched_mm']:.1f} | {m['pa_vertex_mm']:.1f} | "
              f"{m['lean_deg']:.1f} / {m['turn_deg']:.1f} / {m['roll_deg']:.1f} | {m['height_error_cm']:.1f} |")
    t = {k: v / frames for k, v in next(iter(sums.values())).items()}
    print(f"\n(truth's own sole motion on its contact frames: {t['truth_slide_mm']:.2f} mm/frame)")
    a, b = target_turn / frames, first_turn / frames
    print(f"(lean / turn / roll on the 12 limb joints: the lifter's target {a[0]:.1f} / {a[1]:.1f} / {a[2]:.1f} deg, "
          f"the first row's fit {b[0]:.1f} / {b[1]:.1f} / {b[2]:.1f})")


if __name__ == "__main__":
    main()
