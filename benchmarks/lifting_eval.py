"""Held-out evaluation of the lifting network against a single-frame baseline, and its speed.

    python benchmarks/lifting_eval.py --data ../shared/data/cmu-mocap \\
        --baseline benchmarks/weights/lifter_single_frame.pt
    python benchmarks/lifting_eval.py --views tripod     # Human3.6M-like cameras only

Every sequence of the held-out CMU subject (02, never seen in training) is watched by 4 fixed
random cameras (seeded) and lifted whole, once with clean 2D projections and once with
detector-like corruption (jitter, drift, outliers, dropout, left/right swaps); as ``lift`` does by
default, each output averages the lifted input with its lifted mirror image (one row shows the
temporal model without). Errors are in mm
on the 17 h36m joints, root-relative: MPJPE, P-MPJPE (after a similarity Procrustes per frame)
and acceleration error (mm/frame^2, VideoPose3D's definition). When the network has an error
head, a second table sets each joint's expected error against its actual one (noisy 2D).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from lift3d import formats
from lift3d.lifting.data import OUTPUT_FORMAT, ROOT, camera_targets, corrupt, project, sample_camera
from lift3d.lifting.lift import (StreamingLifter, joint_trust, lift_root_relative, lift_with_error, load_lifter,
                                 run_network)
from lift3d.lifting.train import HELD_OUT, load_sequences
from lift3d.metrics import joint_errors


def tripod_camera(rng: np.random.Generator, joints: np.ndarray):
    """A random camera (``sample_camera``) kept only if it is like Human3.6M's, on which the
    lifting literature reports: 1-2 m high, 45-70 degrees wide, 3.5-6.5 m from the motion's centre."""
    ground = joints[:, :, [0, 2]].reshape(-1, 2).mean(0)
    for _ in range(10_000):
        cam = sample_camera(rng, joints)
        eye = cam.center
        fov = 2 * np.degrees(np.arctan(0.5 * cam.image_size[0] / cam.K[0, 0]))
        dist = np.hypot(*(eye[[0, 2]] - ground))
        if 1.0 <= eye[1] <= 2.0 and 45 <= fov <= 70 and 3.5 <= dist <= 6.5:
            return cam
    # sample_camera keeps 0.8 m beyond the motion's extent: a take that roams the room has no such view
    raise SystemExit("no tripod-like camera sees this take from 3.5-6.5 m; use --views random")


def evaluate(net, cases, flip: bool = True, conditions=("clean", "noisy")) -> dict[str, dict[str, float]]:
    out = {}
    for cond in conditions:
        sums, n = {}, 0
        for case in cases:
            pred = lift_root_relative(net, case[cond], case["camera"], flip=flip)
            e = joint_errors(pred, case["target"], root=[ROOT])
            T = len(pred)
            for k, v in e.items():
                sums[k] = sums.get(k, 0.0) + v * T
            n += T
        out[cond] = {k: v / n for k, v in sums.items()}
    return out


def per_take_report(net, cases) -> None:
    """The temporal model's noisy-2D MPJPE / P-MPJPE per take, over its cameras: the ASF/AMC
    takes and their BVH conversions (another skeleton) side by side."""
    print("\n| take | frames x cameras | MPJPE (mm) | P-MPJPE (mm) |")
    print("|---|---:|---:|---:|")
    for take in sorted({c["take"] for c in cases}):
        mine = [c for c in cases if c["take"] == take]
        e = evaluate(net, mine, conditions=("noisy",))["noisy"]
        n = sum(len(c["target"]) for c in mine)
        print(f"| {take} | {n} | {e['root_relative_mpjpe_mm']:.1f} | {e['pa_mpjpe_mm']:.1f} |")


def axes_report(net, cases) -> None:
    """Where the temporal model's error lies: the mean absolute root-relative error along the
    camera's x (right), y (down) and z (depth) axes, and MPJPE after the best per-frame scale
    (N-MPJPE: what is left once size is right)."""
    print("\n| 2D | mean abs x error (mm) | y (mm) | z, depth (mm) | MPJPE (mm) | N-MPJPE, scale fitted (mm) |")
    print("|---|---:|---:|---:|---:|---:|")
    for cond in ("clean", "noisy"):
        sums, n = np.zeros(5), 0
        for case in cases:
            pred = lift_root_relative(net, case[cond], case["camera"])
            p, t = pred - pred[:, [ROOT]], case["target"] - case["target"][:, [ROOT]]
            scale = (p * t).sum((1, 2)) / np.maximum((p * p).sum((1, 2)), 1e-12)
            sums += len(p) * np.r_[np.abs(p - t).mean((0, 1)), np.linalg.norm(p - t, axis=-1).mean(),
                                   np.linalg.norm(p * scale[:, None, None] - t, axis=-1).mean()]
            n += len(p)
        print(f"| {cond} | " + " | ".join(f"{v * 1000 / n:.1f}" for v in sums) + " |")


def error_head_report(net, cases) -> None:
    """Per joint, the error the network's error head expects against the error it makes, noisy 2D
    (``lift_with_error``), and their rank correlation over every joint and frame."""
    errs, expected = [], []
    for case in cases:
        pred, exp = lift_with_error(net, case["noisy"], case["camera"])
        errs.append(np.linalg.norm(pred - case["target"], axis=-1))
        expected.append(exp)
    e, s = np.concatenate(errs), np.concatenate(expected)
    keep = np.arange(e.shape[1]) != ROOT
    rank = spearmanr(e[:, keep].ravel(), s[:, keep].ravel()).statistic
    trust = joint_trust(s)
    print(f"\nerror head, noisy 2D: rank correlation of expected and actual joint errors {rank:.2f}\n")
    print("| joint | expected error (mm) | actual error (mm) | mean trust |")
    print("|---|---:|---:|---:|")
    for j in np.flatnonzero(keep):
        print(f"| {formats.names(OUTPUT_FORMAT)[j]} | {s[:, j].mean() * 1000:.0f} | {e[:, j].mean() * 1000:.0f} | "
              f"{trust[:, j].mean():.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/cmu-mocap")
    ap.add_argument("--weights", default=None, help="temporal lifter (default: the shipped weights)")
    ap.add_argument("--baseline", default="benchmarks/weights/lifter_single_frame.pt")
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--subject", default=HELD_OUT,
                    help="CMU subject to evaluate on (default: the held-out one; a training subject "
                         "shows how well the network fits the motion it trained on)")
    ap.add_argument("--per-take", action="store_true",
                    help="also print the temporal model's noisy-2D errors per take (ASF/AMC and BVH versions)")
    ap.add_argument("--axes", action="store_true",
                    help="also print the temporal model's error along each camera axis and after a scale fit")
    ap.add_argument("--views", choices=["random", "tripod"], default="random",
                    help="random: the training distribution of cameras (the goal's figure); tripod: only "
                         "those of a Human3.6M-like setup (see tripod_camera)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(2026)
    cases = []
    for seq in load_sequences(Path(args.data), subjects={args.subject}, progress=False):
        for _ in range(args.cameras):
            cam = sample_camera(rng, seq["out"]) if args.views == "random" else tripod_camera(rng, seq["out"])
            uv, depth = project(seq["inp"], cam)
            cases.append({
                "clean": corrupt(rng, uv, depth, cam.image_size, noise=0.0),
                "noisy": corrupt(rng, uv, depth, cam.image_size, noise=1.0),
                "camera": cam,
                "take": seq["name"],
                "target": camera_targets(seq["out"], cam),
            })
    frames = sum(len(c["target"]) for c in cases)
    which = "held-out" if args.subject == HELD_OUT else "training"
    print(f"{which} subject {args.subject}: {len(cases)} sequence-camera pairs, {frames} frames at 30 fps\n")
    temporal = load_lifter(args.weights)
    label = f"temporal ({temporal.receptive_field} frames)"
    nets = {label: temporal}
    if Path(args.baseline).is_file():
        nets["single-frame baseline"] = load_lifter(args.baseline)
    print("| model | params | 2D | MPJPE (mm) | P-MPJPE (mm) | accel error (mm/frame^2) |")
    print("|---|---:|---|---:|---:|---:|")
    rows = [(name, net, True) for name, net in nets.items()]
    rows.insert(1, (f"{label}, no flip averaging", temporal, False))
    for name, net, flip in rows:
        res = evaluate(net, cases, flip)
        n_params = sum(p.numel() for p in net.parameters())
        for cond, e in res.items():
            print(f"| {name} | {n_params:,} | {cond} | {e['root_relative_mpjpe_mm']:.1f} | "
              f"{e['pa_mpjpe_mm']:.1f} | {e['accel_mm']:.2f} |")

    net = temporal
    if args.per_take:
        per_take_report(net, cases)
    if args.axes:
        axes_report(net, cases)
    if net.error_head is not None:
        error_head_report(net, cases)
    x = np.random.default_rng(1).standard_normal((64, 1000, 17, 3)).astype(np.float32)
    run_network(net, x[:2, :100])
    t0 = time.perf_counter()
    run_network(net, x, flip=False)
    sec = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_network(net, x, flip=True)
    sec_flip = time.perf_counter() - t0
    stream = StreamingLifter(net)
    kp = np.concatenate([np.random.default_rng(0).uniform(100, 500, (300, 17, 2)), np.ones((300, 17, 1))], -1)
    for k in kp[:30]:
        stream.push(k)
    t0 = time.perf_counter()
    for k in kp[30:]:
        stream.push(k)
    lat = (time.perf_counter() - t0) / (len(kp) - 30)
    n = x.shape[0] * x.shape[1]
    print(f"\nspeed ({args.threads} threads): batch inference {n / sec:,.0f} frames/s ({n / sec_flip:,.0f} with "
          f"flip averaging; 64 sequences x 1000 frames); streaming latency {lat * 1000:.2f} ms per new frame")


if __name__ == "__main__":
    main()
