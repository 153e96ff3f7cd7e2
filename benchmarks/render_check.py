"""Speed and peak memory of the differentiable renderer (lift3d.fitting.render) on Anny.

    python benchmarks/render_check.py                 # the table in the render report
    python benchmarks/render_check.py --threads 2     # on an otherwise idle 2-core machine

A batch of 8 Anny bodies (13,718 vertices, 27,420 faces; each turned a little differently)
stands 3 m in front of the camera (40 degree field of view), 3/4 of the image high. Each
row is one forward + backward of a scalar loss (1 - soft IoU against a box mask for the
silhouette; mean squared depth for depth), timed as the median of ``--repeats`` runs after
one warm-up, with the CPU time of this process alongside (wall time is inflated when other
jobs share the cores). Every row runs in a fresh subprocess so that its ru_maxrss peak,
minus the peak after building the bodies, is the extra memory of that render alone.

Threads default to 1: with 2 threads on a machine whose other core is busy, every parallel
op waits for a descheduled worker and a render can take 10x longer.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

CONFIGS = {
    "silhouette 256x256": dict(kind="sil", res=256, scale=1.0),
    "silhouette 1024x1024": dict(kind="sil", res=1024, scale=1.0),
    "silhouette 1024 at scale 1/4": dict(kind="sil", res=1024, scale=0.25),
    "depth 256x256": dict(kind="depth", res=256, scale=1.0),
    "depth 1024x1024": dict(kind="depth", res=1024, scale=1.0),
}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bodies(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, V, 3) world vertices of Anny in the rest pose, turned by 0..35 degrees, and faces."""
    import body_models

    model = body_models.load("anny")
    pose = model.rest_pose(batch)
    yaw = torch.deg2rad(torch.linspace(0.0, 35.0, batch))
    c, s = torch.cos(yaw), torch.sin(yaw)
    z, o = torch.zeros_like(c), torch.ones_like(c)
    pose[:, 0] = torch.stack([c, z, s, z, o, z, -s, z, c], -1).view(batch, 3, 3)
    with torch.no_grad():
        verts = model.forward(pose).vertices
    return verts, model.faces


def run_one(name: str, batch: int, repeats: int, sigma: float) -> dict:
    from lift3d.fitting.render import Renderer, silhouette_loss
    from lift3d.types import Camera

    cfg = CONFIGS[name]
    verts, faces = bodies(batch)
    res = cfg["res"]
    # Camera 3 m in front of the body (world Y up, body facing +Z): R flips Y and Z.
    K = Camera.from_fov(res, res, 40.0).K
    cam = Camera(K=K, image_size=(res, res), R=np.diag([1.0, -1.0, -1.0]), t=[0.0, -0.05, 3.0])
    renderer = Renderer(cam, scale=cfg["scale"], sigma=sigma)
    W, H = renderer.image_size
    target = torch.zeros(batch, H, W)
    target[:, H // 8: 7 * H // 8, W // 3: 2 * W // 3] = 1.0  # a stand-in person mask
    base = peak_mb()

    def step() -> float:
        """One forward + backward; returns the fraction of pixels the bodies cover."""
        v = verts.clone().requires_grad_(True)
        if cfg["kind"] == "sil":
            sil = renderer.silhouette(v, faces)
            loss, cover = silhouette_loss(sil, target), (sil > 0.5).float().mean()
        else:
            depth, mask = renderer.depth(v, faces)
            loss = (depth - 3.0).square().sum() / mask.sum().clamp(min=1)
            cover = mask.float().mean()
        loss.backward()
        assert torch.isfinite(v.grad).all()
        return float(cover)

    cover = step()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return dict(name=name, size=f"{W}x{H}", wall=float(np.median(wall)), cpu=float(np.median(cpu)),
                extra_mb=peak_mb() - base, cover=cover)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sigma", type=float, default=1.0, help="silhouette softness, pixels")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one row, print JSON
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(run_one(args.one, args.batch, args.repeats, args.sigma)))
        return
    print(f"Anny x {args.batch}, sigma {args.sigma} px, {args.threads} thread(s), "
          f"forward + backward, median of {args.repeats}")
    print(f"{'render':30s} {'image':>10s} {'covered':>8s} {'wall s':>7s} {'cpu s':>7s} "
          f"{'extra MB':>9s}")
    for name in CONFIGS:
        cmd = [sys.executable, __file__, "--one", name, "--batch", str(args.batch),
               "--repeats", str(args.repeats), "--sigma", str(args.sigma),
               "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        print(f"{row['name']:30s} {row['size']:>10s} {row['cover']:8.1%} {row['wall']:7.2f} "
              f"{row['cpu']:7.2f} {row['extra_mb']:9.0f}")


if __name__ == "__main__":
    main()
