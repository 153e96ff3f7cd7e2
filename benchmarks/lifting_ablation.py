"""Short training runs that separate what limits the lifter's accuracy (development tool).

    python benchmarks/lifting_ablation.py --steps 800 --easy 1 --noise 0      # one fixed camera, clean 2D
    python benchmarks/lifting_ablation.py --steps 1500 --virtual 0            # box-normalised input

Trains a fresh network for ``--steps`` steps on the training subjects and prints root-relative
MPJPE / P-MPJPE (mm) on the held-out subject 02 and on training subject 01, with clean and
noisy 2D. ``--easy 1`` replaces the random cameras by one fixed camera (60 degrees, 5 m away,
1.5 m high, any heading) in training and evaluation.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import lift3d.lifting.data as LD
import lift3d.lifting.train as LT
from lift3d.lifting.lift import lift_root_relative
from lift3d.lifting.model import Lifter
from lift3d.metrics import joint_errors


def fixed_cameras(rng: np.random.Generator, joints: np.ndarray):
    """``data.sample_cameras`` with one camera setting: only the heading varies."""
    N = joints.shape[0]
    w = h = 1000.0
    f = 0.5 * w / np.tan(np.radians(30))
    K = np.tile(np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]]), (N, 1, 1))
    c = joints[..., [0, 2]].reshape(N, -1, 2).mean(1)
    yaw = rng.uniform(0, 2 * np.pi, N)
    eye = np.stack([c[:, 0] + 5 * np.sin(yaw), np.full(N, 1.5), c[:, 1] + 5 * np.cos(yaw)], -1)
    target = np.stack([c[:, 0], np.full(N, 0.9), c[:, 1]], -1)
    R, t = LD.look_at(eye, target, np.zeros(N))
    return K, R, t, np.tile([w, h], (N, 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/cmu-mocap")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--virtual", type=int, default=1)
    ap.add_argument("--easy", type=int, default=0)
    ap.add_argument("--noise", type=float, default=1.0, help="corruption level in training")
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.easy:
        LT.sample_cameras = fixed_cameras
    seqs = LT.load_sequences(Path(a.data), exclude={LT.HELD_OUT}, progress=False)
    net = Lifter(dropout=a.dropout, view="virtual" if a.virtual else "box")
    rf = net.receptive_field
    sampler = LT.WindowSampler(seqs)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=a.steps, pct_start=0.1)
    rng = np.random.default_rng(0)
    t0 = time.time()
    for _ in range(a.steps):
        X, Y = map(torch.as_tensor, sampler.sample(rng, a.batch, rf + 1, noise=a.noise, virtual=bool(a.virtual)))
        loss = LT._pairs_loss(net, X, Y, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    res = []
    for subj in (LT.HELD_OUT, "01"):
        erng = np.random.default_rng(7)
        sums = {"clean": np.zeros(2), "noisy": np.zeros(2)}
        n = 0
        for seq in LT.load_sequences(Path(a.data), subjects={subj}, progress=False):
            K, R, t, size = (fixed_cameras if a.easy else LD.sample_cameras)(erng, seq["out"][None])
            cam = LD.Camera(K=K[0], R=R[0], t=t[0], image_size=(int(size[0, 0]), int(size[0, 1])))
            uv, depth = LD.project(seq["inp"], cam)
            target = LD.camera_targets(seq["out"], cam)
            for cond, noise in (("clean", 0.0), ("noisy", 1.0)):
                pred = lift_root_relative(net, LD.corrupt(erng, uv, depth, cam.image_size, noise), cam)
                e = joint_errors(pred, target, root=[LD.ROOT])
                sums[cond] += len(pred) * np.array([e["root_relative_mpjpe_mm"], e["pa_mpjpe_mm"]])
            n += len(seq["out"])
        res += [f"{subj}/{c} {v[0] / n:.1f}/{v[1] / n:.1f}" for c, v in sums.items()]
    print(vars(a), f"{time.time() - t0:.0f} s |", " | ".join(res))


if __name__ == "__main__":
    main()
