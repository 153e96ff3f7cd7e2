"""Held-out evaluation of the foot-contact network against a 2D speed rule.

    python benchmarks/contact_eval.py --data ../shared/data/cmu-mocap

Every take of the held-out CMU subject (02, never trained on) is watched by 4 seeded random
cameras, with clean 2D and with detector-like corruption (``lifting.data.corrupt``). Labels:
``contact.contact_labels`` on the mocap (ankle slower than 0.3 m/s and within 8 cm of the
floor). Scores per foot and frame: accuracy, precision, recall and F1 of "planted".

The rule it is compared with sees the same 2D: a foot is planted when its ankle's image speed
(``contact.image_motion``, 3-frame median) is below 0.15 person sizes per second (about
0.25 m/s for a 1.7 m person) and the ankle is in the lowest 15% of the person's height.
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import median_filter

from lift3d import formats
from lift3d.lifting import contact
from lift3d.lifting.data import corrupt, project, sample_camera
from lift3d.lifting.train import FPS, HELD_OUT, load_sequences
from lift3d.lifting.train_contact import scores

ANKLES = [formats.index("coco17", f"{s}_ankle") for s in contact.SIDES]


def speed_rule(xyc: np.ndarray, fps: float, max_speed: float = 0.15, low: float = 0.15) -> np.ndarray:
    """(T, 17, 3) normalised image coordinates + confidence -> (T, 2) planted feet."""
    v = np.linalg.norm(contact.image_motion(xyc)[:, ANKLES], axis=-1) * fps  # sizes per second
    v = median_filter(v, size=(3, 1), mode="nearest")
    ok = xyc[..., 2] > 0
    y = np.where(ok, xyc[..., 1], np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames without any keypoint
        top, bottom = np.nanmin(y, axis=1), np.nanmax(y, axis=1)
        near_bottom = xyc[:, ANKLES, 1] > (bottom - low * (bottom - top))[:, None]
    return (v < max_speed) & near_bottom & ok[:, ANKLES]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/cmu-mocap")
    ap.add_argument("--weights", default=None, help="contact network (default: the shipped weights)")
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net = contact.load_contact_net(args.weights)
    rng = np.random.default_rng(2026)
    preds: dict[str, dict[str, list]] = {}
    labels, frames, sec = [], 0, 0.0
    for seq in load_sequences(Path(args.data), subjects={HELD_OUT}, progress=False):
        lab = contact.contact_labels(seq["out"], FPS)
        for _ in range(args.cameras):
            cam = sample_camera(rng, seq["out"])
            uv, depth = project(seq["inp"], cam)
            labels.append(lab)
            frames += len(lab)
            for cond, noise in (("clean", 0.0), ("noisy", 1.0)):
                kp = corrupt(rng, uv, depth, cam.image_size, noise=noise)
                t0 = time.perf_counter()
                p = contact.contact_probabilities(kp, cam, net)
                sec += time.perf_counter() - t0
                xyc = np.concatenate([cam.normalized(kp[..., :2]), kp[..., 2:]], -1)
                xyc = np.where(kp[..., 2:] > 0, xyc, 0.0)
                preds.setdefault(("network", cond), []).append(p > 0.5)
                preds.setdefault(("2D speed rule", cond), []).append(speed_rule(xyc, FPS))
    true = torch.as_tensor(np.concatenate(labels), dtype=torch.float32)
    print(f"held-out subject {HELD_OUT}: {len(labels)} sequence-camera pairs, {frames} frames, "
          f"{true.mean():.0%} of foot-frames planted\n")
    print("| method | 2D | accuracy | precision | recall | F1 |")
    print("|---|---|---:|---:|---:|---:|")
    for (name, cond), p in preds.items():
        s = scores(torch.as_tensor(np.concatenate(p)).float() * 2 - 1, true)
        print(f"| {name} | {cond} | {s['accuracy']:.3f} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} |")
    print(f"\nnetwork: {2 * frames / sec:,.0f} frames/s ({args.threads} threads, including its input)")


if __name__ == "__main__":
    main()
