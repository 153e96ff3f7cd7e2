"""Multi-camera calibration accuracy on a synthetic ChArUco sequence.

Four cameras with known intrinsics, lens distortion and extrinsics look at a volume in which a
ChArUco board takes ~50 random poses. Every view is rendered through the true camera (ray per
sub-pixel, undistorted, intersected with the board, 2x2 supersampling, blur, noise), then the
pipeline runs as a user's would: detect_board -> calibrate (per-camera intrinsics, chained
extrinsics, bundle adjustment). Errors are measured in camera 1's gauge (both true and estimated
rigs expressed in camera 1's frame), so no alignment can hide anything.

A second part perturbs cameras 3-4 by ~2 deg / 5 cm and refines them from noisy synthetic 2D
keypoints of a moving "person" (refine_from_keypoints).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/calibration_eval.py
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
from scipy.spatial.transform import Rotation

from lift3d.fusion.calibration import (
    CharucoBoard, calibrate, detect_board, refine_from_keypoints, render_board_image, transform_world,
)
from lift3d.types import Camera

UP = np.array([0.0, 1.0, 0.0])


def look_at(centre: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera (R, t) of an OpenCV camera at ``centre`` looking at ``target``, Y-up world."""
    z = (target - centre) / np.linalg.norm(target - centre)
    y = -UP + np.dot(UP, z) * z  # image down = world down, made orthogonal to the view direction
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    R = np.stack([x, y, z])
    return R, -R @ centre


def make_rig(n: int, size: tuple[int, int], rng: np.random.Generator, radius: float = 2.3) -> dict[str, Camera]:
    """n cameras on a 110-degree arc around a volume centred 1.2 m above the ground."""
    target = np.array([0.0, 1.2, 0.0])
    cams = {}
    W, H = size
    for i, a in enumerate(np.radians(np.linspace(-55, 55, n))):
        centre = target + radius * np.array([np.sin(a), 0, -np.cos(a)]) + [0, rng.uniform(-0.3, 0.6), 0]
        R, t = look_at(centre, target + rng.normal(0, 0.1, 3))
        f = rng.uniform(900, 1150)
        K = [[f, 0, W / 2 + rng.uniform(-20, 20)],
             [0, f * rng.uniform(0.998, 1.002), H / 2 + rng.uniform(-15, 15)],
             [0, 0, 1]]
        dist = [rng.uniform(-0.25, 0.02), rng.uniform(-0.02, 0.1), *rng.uniform(-1e-3, 1e-3, 2), 0.0]
        cams[f"cam{i + 1}"] = Camera(K=K, dist=dist, R=R, t=t, image_size=size)
    return cams


def board_poses(board: CharucoBoard, cams: dict[str, Camera], n: int,
                rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """n board-to-world poses: centre within +-0.45 m of the volume centre, printed face turned
    towards a random point between the cameras, tilted up to ~40 degrees, rolled up to 30."""
    centre0 = np.array([0.0, 1.2, 0.0])
    cam_centres = np.array([c.center for c in cams.values()])
    half = np.array([board.squares[0] * board.square_size, board.squares[1] * board.square_size, 0]) / 2
    out = []
    for _ in range(n):
        c = centre0 + rng.uniform(-0.45, 0.45, 3)
        w = rng.dirichlet(np.ones(len(cam_centres)))
        face = w @ cam_centres - c
        face /= np.linalg.norm(face)
        tilt = Rotation.from_rotvec(rng.normal(0, 1, 3) * np.radians(22)).as_matrix()
        zb = -(tilt @ face)  # board z points into the board, away from its printed face
        yb = -UP + np.dot(UP, zb) * zb
        yb /= np.linalg.norm(yb)
        xb = np.cross(yb, zb)
        roll = Rotation.from_rotvec(zb * np.radians(rng.uniform(-30, 30))).as_matrix()
        Rb = roll @ np.stack([xb, yb, zb], axis=1)  # columns: board axes in world
        out.append((Rb, c - Rb @ half))
    return out


def render_sequence(board, cam: Camera, poses, rng):
    for Rb, tb in poses:
        R, t = cam.R @ Rb, cam.R @ tb + cam.t  # board -> camera
        yield render_board_image(board, cam, R, t, rng=rng)


def in_gauge(cams: dict[str, Camera], ref: Camera) -> dict[str, Camera]:
    """Cameras re-expressed in the frame of camera ``ref`` (world = that camera)."""
    return transform_world(cams, ref.R, ref.t)


def rotation_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(Ra.T @ Rb) - 1) / 2, -1, 1))))


def person_keypoints(cams: dict[str, Camera], T: int, rng: np.random.Generator, noise_px: float):
    """(C, T, 17, 3) noisy projections of a 17-point 'person' walking through the volume."""
    body = rng.normal(0, 1, (17, 3)) * [0.2, 0.45, 0.12] + [0, 0.9, 0]
    X = np.zeros((T, 17, 3))
    for t in range(T):
        a = 2 * np.pi * t / T
        X[t] = body + [0.6 * np.sin(a), 0.3 + 0.02 * np.sin(5 * a), 0.5 * np.cos(a)]
    kp = []
    for c in cams.values():
        uv = c.project(X) + rng.normal(0, noise_px, (T, 17, 2))
        conf = rng.uniform(0.5, 1.0, (T, 17))
        W, H = c.image_size
        inside = (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H)
        # a detector reports only what lies in the image
        conf = np.where(inside & (c.world_to_camera(X)[..., 2] > 0), conf, 0.0)
        kp.append(np.concatenate([uv, conf[..., None]], axis=-1))
    return np.stack(kp)


def f_error_pct(est: Camera, true: Camera) -> float:
    """Worse of the fx and fy relative errors, in percent."""
    return 100 * max(abs(est.K[0, 0] / true.K[0, 0] - 1), abs(est.K[1, 1] / true.K[1, 1] - 1))


def board_part(args, size, rng) -> tuple[dict[str, Camera], dict[str, Camera]]:
    """Render, detect, calibrate; print the table. Returns (true rig, true rig in camera 1's frame)."""
    board = CharucoBoard(squares=(9, 6), square_size=0.09, marker_size=0.068, dictionary="DICT_5X5_100")
    truth = make_rig(args.cameras, size, rng)
    poses = board_poses(board, truth, args.poses, rng)
    t0 = time.perf_counter()
    dets = {n: detect_board(render_sequence(board, c, poses, rng), board, progress=False) for n, c in truth.items()}
    t_detect = time.perf_counter() - t0
    t1 = time.perf_counter()
    calib = calibrate(dets, board)
    t_calib = time.perf_counter() - t1

    true_g = in_gauge(truth, next(iter(truth.values())))  # calib.cameras are in camera 1's frame too
    cpu = platform.processor() or platform.machine()
    print(f"Synthetic ChArUco calibration: {args.cameras} cameras {size[0]}x{size[1]}, {args.poses} board poses "
          f"(9x6 squares of 9 cm), seed {args.seed}; rendering + detection {t_detect:.1f} s, calibration "
          f"{t_calib:.1f} s ({calib.info['outliers']} of {calib.info['observations']} corners dropped as outliers), "
          f"{os.environ.get('OMP_NUM_THREADS', '?')} thread(s), {cpu}\n")
    print("| camera | frames seen | f true (px) | f error % (intrinsics only) | f error % (after BA) | "
          "pp error px | centre error mm | rotation error deg | RMS reproj px |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in truth:
        T, E, I = true_g[name], calib.cameras[name], calib.info["initial_intrinsics"][name]
        print(f"| {name} | {len(dets[name].seen(6))}/{args.poses} | {T.K[0, 0]:.1f} | {f_error_pct(I, T):.3f} | "
              f"{f_error_pct(E, T):.3f} | {np.linalg.norm(E.K[:2, 2] - T.K[:2, 2]):.2f} | "
              f"{1000 * np.linalg.norm(E.center - T.center):.2f} | {rotation_deg(E.R, T.R):.3f} | "
              f"{calib.rms_px[name]:.3f} |")
    return truth, true_g


def keypoint_part(truth, true_g, seed: int) -> None:
    """Perturb cameras 3.. by 2 deg / 5 cm, refine them from a person's keypoints; print the table."""
    rng = np.random.default_rng(seed)
    perturbed = {}
    for i, (name, c) in enumerate(true_g.items()):
        if i < 2:  # camera 1 fixes the gauge, cameras 1-2 the scale
            perturbed[name] = c
            continue
        axis, dc = rng.normal(size=3), rng.normal(size=3)
        R = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(2.0)).as_matrix() @ c.R
        centre = c.center + 0.05 * dc / np.linalg.norm(dc)
        perturbed[name] = Camera(K=c.K, dist=c.dist, R=R, t=-R @ centre, image_size=c.image_size)
    kp = person_keypoints(truth, 300, rng, noise_px=2.0)  # projections do not depend on the gauge
    t0 = time.perf_counter()
    calib = refine_from_keypoints(perturbed, kp)
    print(f"\nrefine_from_keypoints: cameras 3+ perturbed by 2 deg / 5 cm, 300 frames x 17 keypoints, "
          f"2 px noise, confidences 0.5-1; {time.perf_counter() - t0:.1f} s\n")
    print("| camera | rotation error deg before -> after | centre error mm before -> after | RMS reproj px |")
    print("|---|---|---|---|")
    for name in true_g:
        T, P, E = true_g[name], perturbed[name], calib.cameras[name]
        print(f"| {name} | {rotation_deg(P.R, T.R):.3f} -> {rotation_deg(E.R, T.R):.3f} | "
              f"{1000 * np.linalg.norm(P.center - T.center):.1f} -> {1000 * np.linalg.norm(E.center - T.center):.2f} | "
              f"{calib.rms_px[name]:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--poses", type=int, default=50)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    t0 = time.perf_counter()
    print("command: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/calibration_eval.py " + " ".join(sys.argv[1:]))
    truth, true_g = board_part(args, size, np.random.default_rng(args.seed))
    keypoint_part(truth, true_g, args.seed + 1)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
