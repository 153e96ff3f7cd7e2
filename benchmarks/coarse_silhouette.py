"""How close and how fast the silhouette stage's coarse mesh (``render.decimate_faces``) is.

    python benchmarks/coarse_silhouette.py                     # 4,000 / 6,000 (the default) / 8,000 faces

Anny in 8 random poses (every joint turned by ~20 degrees, seeded) stands 3 m from a camera
whose 96-pixel image holds the body about as the fit's silhouette crops do. Per face count:
the pixels where the coarse mesh's hard silhouette (the soft rasteriser at sigma 0.02) and the
full mesh's ray-cast one (open3d, an independent reference) disagree, the coarse mesh's area
against the full one's, and the time of one forward + backward of the silhouette loss over 12
frames at the fit's sigma (0.1 px), one thread, median of 3.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import roma
import torch

import body_models
from lift3d.fitting.render import decimate_faces, rasterize_silhouette, silhouette_loss

SIZE = 96
K = np.array([[140.0, 0, 47.5], [0, 140.0, 47.5], [0, 0, 1]])


def raycast(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(SIZE, SIZE) bool: pixel centres whose ray hits the mesh (open3d)."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(verts.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32)))
    u, v = np.meshgrid(np.arange(SIZE), np.arange(SIZE))
    d = np.linalg.solve(K, np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3).T.astype(float)).T
    rays = np.concatenate([np.zeros_like(d), d], -1).astype(np.float32)
    return np.isfinite(scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()).reshape(SIZE, SIZE)


def hard(verts: torch.Tensor, faces: torch.Tensor) -> np.ndarray:
    return rasterize_silhouette(verts[None], faces, torch.tensor(K), (SIZE, SIZE), sigma=0.02)[0].numpy() > 0.5


def timed(verts: torch.Tensor, faces: torch.Tensor, target: torch.Tensor) -> float:
    times = []
    for _ in range(4):
        v = verts.clone().requires_grad_(True)
        t0 = time.perf_counter()
        silhouette_loss(rasterize_silhouette(v, faces, torch.tensor(K), (SIZE, SIZE), sigma=0.1), target).backward()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", default="4000,6000,8000")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = body_models.load("anny")
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        rest = model(model.rest_pose(1)).vertices[0]
        pose = roma.rotvec_to_rotmat(0.35 * torch.randn(12, model.num_joints, 3, generator=g)).to(model.dtype)
        verts = model(pose, None, torch.tensor([0.0, 0.0, 3.0]).expand(12, 3)).vertices
    full = model.faces
    refs = [raycast(v, full.numpy()) for v in verts[:8].numpy()]
    target = torch.as_tensor(np.stack([raycast(v, full.numpy()) for v in verts.numpy()]), dtype=torch.float32)
    print("| faces | pixels differing from the full mesh's ray-cast outline (8 poses) | area against the full mesh's | "
          "forward + backward, 12 frames (s) |")
    print("|---:|---|---|---:|")
    area = [r.sum() for r in refs]
    own = [(hard(v, full) ^ r).sum() for v, r in zip(verts[:8], refs)]
    print(f"| {len(full):,} (the full mesh, same rasteriser) | {min(own)}-{max(own)} of {min(area)}-{max(area)} | | "
          f"{timed(verts, full, target):.3f} |")
    for n in (int(x) for x in args.faces.split(",")):
        coarse = decimate_faces(rest, full, n)
        sil = [hard(v, coarse) for v in verts[:8]]
        diff = [(s ^ r).sum() for s, r in zip(sil, refs)]
        grow = [100 * (s.sum() / r.sum() - 1) for s, r in zip(sil, refs)]
        print(f"| {len(coarse):,} | {min(diff)}-{max(diff)} | {min(grow):+.1f}% to {max(grow):+.1f}% | "
              f"{timed(verts, coarse, target):.3f} |")


if __name__ == "__main__":
    main()
