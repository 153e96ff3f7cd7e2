"""Export on real motion: a CMU take retargeted onto Anny, written as BVH, FBX and GLB, then read
back by independent tools over every frame.

    python benchmarks/export_check.py --frames 300       # the table in docs/BENCHMARKS.md

For each format: write time, file size, and what Blender (bpy, in a subprocess) sees after
importing it: bone count, frame range, the largest bone-head error against the fitted joints
over all frames, and the largest skinned-vertex error against the body model's own mesh at a
few frames. FBX is also read by Assimp (`assimp info`), GLB by the Khronos glTF validator.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def blender(path: Path, frames: list[int], out: Path, vertices: bool) -> dict:
    cmd = [sys.executable, str(ROOT / "tests" / "blender_read.py"), str(path), str(out),
           "--frames", ",".join(map(str, frames))] + (["--vertices"] if vertices else [])
    subprocess.run(cmd, check=True, capture_output=True)
    return dict(np.load(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/cmu-mocap")
    ap.add_argument("--take", default="02_05", help="CMU take (subject_trial) to retarget")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--naming", default="mixamo")
    args = ap.parse_args()
    torch.set_num_threads(2)

    import body_models
    from lift3d import formats
    from lift3d.export import export_fit, rig_from_fit
    from lift3d.fitting.retarget import retarget
    from lift3d.lifting.train import load_sequences
    from lift3d.types import BodyFit

    model = body_models.load("anny")
    seqs = [s for s in load_sequences(Path(args.data), subjects={args.take.split("_")[0]}, progress=False)
            if s["name"].endswith("/" + args.take)]
    if not seqs:
        raise SystemExit(f"take {args.take} not found under {args.data}")
    seq = seqs[0]
    n = min(args.frames, len(seq["inp"]))
    both = np.concatenate([seq["inp"][:n], seq["out"][:n]], 1)
    t0 = time.perf_counter()
    r = retarget(both, formats.names("coco17") + formats.names("h36m17"), model, progress=True)
    print(f"retargeted {seq['name']} ({n} frames) in {time.perf_counter() - t0:.0f} s, "
          f"{r['error_mm']:.1f} mm from the mocap joints")
    fit = BodyFit("anny", r["pose"][:, None], r["shape"][None], r["transl"][:, None], 30.0, frame="world")
    joints = rig_from_fit(fit, mesh=False, model=model).joint_positions()  # (T, J, 3) what files must hold
    verts = fit.vertices(model=model)
    check_frames = [0, n // 3, n - 1]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for fmt in ("bvh", "fbx", "glb"):
            path = tmp / f"take.{fmt}"
            t0 = time.perf_counter()
            export_fit(fit, path, fmt, naming=args.naming)
            sec = time.perf_counter() - t0
            first = 0 if fmt == "glb" else 1  # Blender starts BVH and FBX animations at frame 1
            all_frames = blender(path, [f + first for f in range(n)], tmp / "a.npz", False)
            some = blender(path, [f + first for f in check_frames], tmp / "b.npz", fmt != "bvh")
            names = list(all_frames["names"])
            rig_names = rig_from_fit(fit, mesh=False, naming=args.naming, model=model).names
            idx = [names.index(nm) for nm in rig_names]
            joint_err = np.abs(all_frames["heads"][:, idx] - joints).max() * 1000
            vert_err = (np.linalg.norm(some["vertices"] - verts[check_frames], axis=-1).max() * 1000
                        if "vertices" in some else float("nan"))
            extra = ""
            if fmt == "fbx" and shutil.which("assimp"):
                info = subprocess.run(["assimp", "info", str(path)], capture_output=True, text=True).stdout
                keep = {}
                for ln in info.splitlines():
                    key, _, val = ln.strip().partition(":")
                    if key in ("Meshes", "Vertices", "Bones", "Animations", "Animation Channels") and \
                            key not in keep and val.strip():
                        keep[key] = val.strip()
                extra = "assimp: " + ", ".join(f"{k.lower()} {v}" for k, v in keep.items())
            if fmt == "glb" and (ROOT / "tools/gltf_validator/node_modules").is_dir():
                rep = json.loads(subprocess.run(["node", str(ROOT / "tools/gltf_validator/validate.js"), str(path)],
                                                capture_output=True, text=True, check=True).stdout)
                extra = (f"validator: {rep['issues']['numErrors']} errors, {rep['issues']['numWarnings']} "
                         f"warnings, {rep['issues']['numInfos']} infos")
            rows.append((fmt, sec, path.stat().st_size / 1e6, len(names),
                         f"{int(all_frames['frame_start'])}-{int(all_frames['frame_end'])}",
                         joint_err, vert_err, extra))
    print(f"\n{n} frames of {seq['name']}, Anny (104 bones, 13,718 vertices), naming {args.naming}\n")
    print("| format | write s | MB | bones in Blender | frames in Blender | max joint error, all frames (mm) "
          "| max vertex error, 3 frames (mm) | other reader |")
    print("|---|---|---|---|---|---|---|---|")
    for fmt, sec, mb, nb, fr, je, ve, extra in rows:
        print(f"| {fmt} | {sec:.2f} | {mb:.1f} | {nb} | {fr} | {je:.3f} | {ve:.3f} | {extra} |")


if __name__ == "__main__":
    main()
