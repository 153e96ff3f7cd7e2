"""How level the exported world is: the floor a monocular fit finds, with and without the camera's up.

    python benchmarks/floor_eval.py --clips 8 --frames 150 --threads 2   # the table in docs/BENCHMARKS.md

The clips, cameras and 2D of ``fit_eval.py`` (same seed: CMU subject 02 retargeted onto Anny
with random shapes, random cameras, corrupted openpose25 keypoints, the lifter's 3D target).
Each clip is fitted in the gravity-aligned world (``fit_body(world=True)``: Y up, floor at y = 0)
twice: with the floor's normal found from the feet (the default), and with the camera's up
direction given (``camera_up``: the truth's turned by a random 1 degree, as a levelled or
gravity-sensing camera would know it). Reported: the world's tilt (angle between its up and the
true up, degrees), the soles' height error on the truth's contact frames (|fitted height above
the fitted floor - true height above the true floor|, mm), and, in the camera frame as in
``fit_eval.py``, the root-aligned vertex error and the foot sliding on contact frames. And the
two sizes one camera confuses: the camera's height above the fitted floor and the body's
stature, each as a ratio to the truth's (the floor: where the true body's lowest point is in
most frames). Where the two ratios agree, a known camera height gives the stature
(``fit_body(camera_height=)``).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import body_models
from lift3d.fitting import fit_body, ground
from lift3d.lifting.lift import lift
from lift3d.lifting.train import HELD_OUT
from lift3d.types import Keypoints2D
from mocap_clips import camera_height, clip_arguments, detector_view, known_up, posed, retargeted_windows, stature

SOLES = ["left_heel", "right_heel", "left_big_toe", "right_big_toe"]
UP = np.array([0.0, 1.0, 0.0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    clip_arguments(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(4)  # fit_eval.py's draws
    up_rng = np.random.default_rng(5)
    model = body_models.load("anny")
    names = model.keypoint_names
    soles = [names.index(n) for n in SOLES]
    rows: dict[str, list] = {"floor from the feet (default)": [], "camera's up known to 1 degree": []}
    for take, start, truth, shape in retargeted_windows(args.data, args.clips, args.frames, rng, model):
        verts_w, kp_w, root_w = posed(model, truth, shape)
        cam, noisy = detector_view(rng, kp_w, names)
        verts_c, kp_c, root_c = cam.world_to_camera(verts_w), cam.world_to_camera(kp_w), cam.world_to_camera(root_w)
        k2 = Keypoints2D(noisy[:, None], "openpose25", 30, cam.image_size)
        contact = ground.detect_contacts(kp_w[:, soles], UP, 30.0)
        target = lift(k2, cam)
        true_up = cam.R @ UP  # the world's up in the camera's axes
        true_cam_height = camera_height(cam, verts_w)
        true_stature = stature(model, shape)
        up_1deg = known_up(up_rng, cam)
        for name in rows:
            up = up_1deg if "known" in name else None
            fit = fit_body(k2, cam, target, model=model, progress=False, world=True, camera_up=up)
            fitted_up = fit.camera.R @ UP
            tilt_deg = np.degrees(np.arccos(np.clip(fitted_up @ true_up, -1.0, 1.0)))
            kp = fit.keypoints3d(names, model=model)  # fit's world: y = height above its floor
            height = np.abs(kp[:, soles, 1] - kp_w[:, soles, 1])[contact].mean() * 1000
            # Back in the camera frame, as fit_eval.py measures.
            kp_cf = fit.camera.world_to_camera(kp)
            v = fit.camera.world_to_camera(fit.vertices(model=model))
            j = fit.camera.world_to_camera(fit.joints(model=model))
            vert = np.linalg.norm((v - j[:, :1]) - (verts_c - root_c[:, None]), axis=-1).mean() * 1000
            step = np.linalg.norm(np.diff(kp_cf[:, soles], axis=0), axis=-1)
            both = contact[1:] & contact[:-1]
            slide = step[both].mean() * 1000 if both.any() else np.nan
            cam_ratio = fit.camera.center[1] / true_cam_height
            stature_ratio = fit.standing_height(model)[0] / true_stature
            rows[name].append([tilt_deg, height, vert, slide, cam_ratio, stature_ratio])
            print(f"{take} [{start}:{start + args.frames}] {name}: tilt {tilt_deg:.1f} deg, sole height "
                  f"{height:.0f} mm, vertex {vert:.1f} mm, sliding {slide:.2f} mm/frame, camera height "
                  f"{fit.camera.center[1]:.2f} m for {true_cam_height:.2f} ({cam_ratio:.3f}), stature "
                  f"{stature_ratio:.3f} of the truth's", flush=True)
    print(f"\n{len(rows[next(iter(rows))])} clips x {args.frames} frames of held-out subject {HELD_OUT}\n")
    print("| floor | world tilt (deg), mean | max | sole height error on contacts (mm) | vertex error (mm) "
          "| foot sliding (mm/frame) | camera height / truth | stature / truth | stature from the camera height / truth |")
    print("|---|---:|---:|---:|---:|---:|---|---|---|")
    for name, r in rows.items():
        a = np.array(r)
        implied = a[:, 5] / a[:, 4]  # the stature scaled by true / fitted camera height
        print(f"| {name} | {a[:, 0].mean():.1f} | {a[:, 0].max():.1f} | {np.nanmean(a[:, 1]):.0f} | "
              f"{a[:, 2].mean():.1f} | {np.nanmean(a[:, 3]):.2f} | {a[:, 4].min():.2f}-{a[:, 4].max():.2f} | "
              f"{a[:, 5].min():.2f}-{a[:, 5].max():.2f} | {implied.min():.2f}-{implied.max():.2f} |")


if __name__ == "__main__":
    main()
