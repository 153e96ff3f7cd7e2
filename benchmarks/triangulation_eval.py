"""Multi-view triangulation accuracy and speed on real motion, side by side with aniposelib.

    OMP_NUM_THREADS=1 python benchmarks/triangulation_eval.py --data ../shared/data/cmu-mocap

Motion: every ASF/AMC clip of CMU subject 02 (the subject the lifter never trains on), 30 fps,
coco17 joints (3,208 frames). Cameras: a ring of 4 around each clip's centre (45 + 90k degrees
plus a random turn; 3-5 m away, 1.0-2.4 m high, aimed at 1 m), 1920x1080, 60 degree horizontal
field of view, mild radial/tangential distortion; the 2-camera case uses two neighbours of the
ring (90 degrees apart). 2D detections: ``lift3d.lifting.data.corrupt`` at ``--noise`` (default
0.25: Gaussian jitter of ~1-4 px plus slow drift, rare outliers, left/right swaps, zero
confidence outside the image), then extra detector failures: 4 % dropped joints, 1 % outliers
(~100 px, still confident), occlusions (runs of 5-40 frames with confidence 0, about one per
joint per view every 10 s). The outlier case: camera 0 gives garbage (uniform random pixels,
confidence 0.8-1.0) on a random 20 % of the frames.

Errors: MPJPE in mm against the true 3D joints, over the joints each method returns
(coverage = the share of true joints it returns). aniposelib (``CameraGroup.triangulate``, its
vectorised JAX DLT; ``triangulate_ransac`` and ``triangulate_optim`` are per-point Python loops /
a large least-squares, so they run on a 150-frame window only) gets the same distorted pixels,
NaN where the detector confidence is below ``--min-confidence``; it has no confidence weights.
Timings are CPU (process) time of the whole call, best of ``--repeats``, after a warm-up call
(aniposelib's JAX JIT compiles once per array shape: the first pass over the clips is excluded by
taking the best run).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

if "--threads" not in sys.argv or sys.argv[sys.argv.index("--threads") + 1] == "1":
    # single-threaded numpy and XLA unless asked otherwise (must precede their imports)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np

from lift3d.fusion.triangulate import smooth_trajectories, triangulate_dlt, triangulate_points
from lift3d.lifting.data import corrupt, look_at
from lift3d.lifting.train import HELD_OUT, load_sequences
from lift3d.types import Camera

WIDTH, HEIGHT, FOV = 1920, 1080, 60.0


def ring_cameras(rng: np.random.Generator, joints: np.ndarray, n: int = 4) -> list[Camera]:
    """n cameras in a ring around the motion (T, J, 3): 3-5 m from its centre, 1.0-2.4 m high,
    aimed at 1 m height near the centre, 1920x1080, 60 degree FOV, mild distortion."""
    centre = joints[..., [0, 2]].reshape(-1, 2).mean(0)
    f = 0.5 * WIDTH / np.tan(np.radians(FOV) / 2)
    K = np.array([[f, 0, WIDTH / 2], [0, f, HEIGHT / 2], [0, 0, 1.0]])
    turn = rng.uniform(0, 2 * np.pi)
    cams = []
    for k in range(n):
        a = turn + np.radians(45 + 90 * k)
        r = rng.uniform(3.0, 5.0)
        eye = np.array([centre[0] + r * np.sin(a), rng.uniform(1.0, 2.4), centre[1] + r * np.cos(a)])
        target = np.array([centre[0], 1.0, centre[1]]) + rng.normal(0, 0.1, 3)
        R, t = look_at(eye, target)
        dist = np.array([rng.uniform(-0.08, 0.04), rng.uniform(-0.02, 0.02), *rng.normal(0, 5e-4, 2), 0.0])
        cams.append(Camera(K=K, image_size=(WIDTH, HEIGHT), dist=dist, R=R, t=t))
    return cams


def detect(rng: np.random.Generator, cam: Camera, joints: np.ndarray, noise: float) -> np.ndarray:
    """Detector-like (T, J, 3) pixels + confidence of true joints (T, J, 3) seen by ``cam``."""
    uv, depth = cam.project(joints), cam.world_to_camera(joints)[..., 2]
    kp = corrupt(rng, uv, depth, cam.image_size, noise=noise)
    T, J = kp.shape[:2]
    conf = kp[..., 2]
    height = np.ptp(uv[..., 1], axis=-1).clip(min=10)[:, None]
    out = rng.random((T, J)) < 0.01  # confident outliers ~0.15 x the person's height
    kp[..., :2] += out[..., None] * rng.normal(0, 0.15, (T, J, 2)) * height[..., None]
    conf[rng.random((T, J)) < 0.04] = 0.0  # dropped joints
    for j in range(J):  # occlusions: runs of 5-40 frames, about one per 300 frames
        for start in np.flatnonzero(rng.random(T) < 1 / 300):
            conf[start:start + rng.integers(5, 41), j] = 0.0
    inside = ((kp[..., :2] >= 0) & (kp[..., :2] < cam.image_size)).all(-1)
    conf[~inside] = 0.0
    kp[conf == 0, :2] = 0.0
    return kp


def garbage(rng: np.random.Generator, kp: np.ndarray, frac: float = 0.2) -> np.ndarray:
    """(T, J, 3) detections with a random ``frac`` of frames replaced by confident noise."""
    kp = kp.copy()
    bad = rng.random(len(kp)) < frac
    n = int(bad.sum())
    kp[bad, :, 0] = rng.uniform(0, WIDTH, (n, kp.shape[1]))
    kp[bad, :, 1] = rng.uniform(0, HEIGHT, (n, kp.shape[1]))
    kp[bad, :, 2] = rng.uniform(0.8, 1.0, (n, kp.shape[1]))
    return kp


def mpjpe(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """(MPJPE in mm over the returned joints, coverage %) of (T, J, 3) with NaN = not returned."""
    ok = np.isfinite(pred).all(-1)
    if not ok.any():
        return float("nan"), 0.0
    return float(np.linalg.norm(pred[ok] - true[ok], axis=-1).mean() * 1000), float(100 * ok.mean())


def per_clip(fn, kps: np.ndarray, bounds: list[tuple[int, int]]) -> np.ndarray:
    """Run fn on each clip's frames (kps (C, T, J, 3)) and concatenate along T."""
    return np.concatenate([fn(kps[:, a:b]) for a, b in bounds], 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/cmu-mocap")
    ap.add_argument("--noise", type=float, default=0.25, help="corrupt() noise level (1 = the lifter's training noise)")
    ap.add_argument("--min-confidence", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--window", type=int, default=150, help="frames for aniposelib's slow variants (0: skip them)")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats (the best counts)")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    seqs = [s for s in load_sequences(Path(args.data), subjects={HELD_OUT}, progress=False)
            if s["name"].startswith("asfamc/")]
    if not seqs:
        sys.exit(f"no CMU subject {HELD_OUT} clips under {args.data}")
    truth, det4, bounds, cams_per_clip = [], [], [], []
    t0 = 0
    for s in seqs:
        joints = s["inp"]
        cams = ring_cameras(rng, joints, 4)
        det4.append(np.stack([detect(rng, c, joints, args.noise) for c in cams]))
        truth.append(joints)
        cams_per_clip.append(cams)
        bounds.append((t0, t0 + len(joints)))
        t0 += len(joints)
    truth = np.concatenate(truth)
    T = len(truth)
    # Every clip has its own ring: triangulate clip by clip (cameras differ), time the total.
    kp4 = np.concatenate(det4, 1)  # (4, T, J, 3)
    kp4_bad = kp4.copy()
    kp4_bad[0] = garbage(rng, kp4[0])
    clean_err = []
    for (a, b), cams in zip(bounds, cams_per_clip):
        for c, cam in enumerate(cams):
            ok = kp4[c, a:b, :, 2] > 0
            clean_err.append(np.linalg.norm(kp4[c, a:b][ok][:, :2] - cam.project(truth[a:b])[ok], axis=-1))
    e2d = np.concatenate(clean_err)
    print(f"CMU subject {HELD_OUT}: {len(seqs)} clips, {T} frames at 30 fps, coco17; 2D error of the "
          f"confident detections: median {np.median(e2d):.1f} px, 90th percentile {np.percentile(e2d, 90):.1f} px, "
          f"missing {100 * (kp4[..., 2] == 0).mean():.1f} %\n")

    cases = {"4 cameras": (kp4, [0, 1, 2, 3]), "2 cameras": (kp4, [0, 1]),
             "4 cameras, 1 garbage 20 %": (kp4_bad, [0, 1, 2, 3]), "2 cameras, 1 garbage 20 %": (kp4_bad, [0, 1])}

    def run_ours(kp, views, robust, smooth=False):
        out = []
        for (a, b), cams in zip(bounds, cams_per_clip):
            k = kp[views, a:b]
            w = np.where(k[..., 2] >= args.min_confidence, k[..., 2], 0.0)
            if robust == "dlt":
                X, _ = triangulate_dlt(k[..., :2], [cams[v] for v in views], w)
                conf = np.isfinite(X).all(-1).astype(float)
            else:
                res = triangulate_points(k[..., :2], [cams[v] for v in views], w, robust=robust)
                X, conf = res.points, res.confidence
            if smooth:
                X, _ = smooth_trajectories(X, conf)
            out.append(X)
        return np.concatenate(out)

    methods = {
        "lift3d DLT (weighted)": lambda kp, v: run_ours(kp, v, "dlt"),
        "lift3d robust (ransac)": lambda kp, v: run_ours(kp, v, "ransac"),
        "lift3d robust (irls)": lambda kp, v: run_ours(kp, v, "irls"),
        "lift3d ransac + filter": lambda kp, v: run_ours(kp, v, "ransac", smooth=True),
    }
    try:
        import aniposelib.cameras as ani
        import cv2
    except ImportError as e:
        ani = None
        print(f"aniposelib is not installed ({e}); comparing lift3d only. "
              "Install it with: pip install aniposelib==0.8.0\n")
    if ani is not None:
        groups = [ani.CameraGroup([ani.Camera(matrix=c.K, dist=c.dist, size=c.image_size,
                                              rvec=cv2.Rodrigues(c.R)[0].ravel(), tvec=c.t) for c in cams])
                  for cams in cams_per_clip]

        def run_ani(kp, views, how="dlt", lo=0, hi=None):
            with warnings.catch_warnings():  # numba's object-mode fallbacks, empty-slice means
                warnings.simplefilter("ignore")
                return _run_ani(kp, views, how, lo, hi)

        def _run_ani(kp, views, how, lo, hi):
            out = []
            for (a, b), g in zip(bounds, groups):
                a2, b2 = max(a, lo), min(b, hi if hi is not None else b)
                if a2 >= b2:
                    continue
                k = kp[views, a2:b2]
                pts = np.where((k[..., 2:] >= args.min_confidence), k[..., :2], np.nan)
                sub = g.subset_cameras(views)
                flat = pts.reshape(len(views), -1, 2)
                if how == "dlt":
                    X = sub.triangulate(flat, undistort=True).reshape(b2 - a2, -1, 3)
                elif how == "ransac":
                    X = sub.triangulate_ransac(flat, undistort=True)[0].reshape(b2 - a2, -1, 3)
                else:
                    X = sub.triangulate_optim(pts, init_ransac=False, constraints=[], scale_smooth=4, n_deriv_smooth=1)
                out.append(X)
            return np.concatenate(out)

        methods["aniposelib triangulate (DLT)"] = lambda kp, v: run_ani(kp, v, "dlt")
        run_ani(kp4, [0, 1, 2, 3], "dlt", 0, 200)  # JIT warm-up
        run_ani(kp4, [0, 1], "dlt", 0, 200)

    rows, preds = {}, {}
    for name, fn in methods.items():
        rows[name] = {}
        for case, (kp, views) in cases.items():
            best = np.inf
            for _ in range(args.repeats):
                t1 = time.process_time()
                X = fn(kp, views)
                best = min(best, time.process_time() - t1)
            rows[name][case] = (*mpjpe(X, truth), best)
            preds[name, case] = X

    print(f"all {T} frames x 17 joints ({T * 17:,} points per view); MPJPE mm (coverage %), CPU time per run "
          f"(process time, all threads, best of {args.repeats}; robust to other load on the machine)\n")
    head = list(cases)
    print("| method | " + " | ".join(head) + " | garbage increase (4 / 2 cams) |")
    print("|---|" + "---:|" * len(head) + "---:|")
    for name, r in rows.items():
        cells = [f"{r[c][0]:.1f} ({r[c][1]:.0f} %), {1000 * r[c][2]:.0f} ms" for c in head]
        inc4 = 100 * (r[head[2]][0] / r[head[0]][0] - 1)
        inc2 = 100 * (r[head[3]][0] / r[head[1]][0] - 1)
        print(f"| {name} | " + " | ".join(cells) + f" | {inc4:+.0f} % / {inc2:+.0f} % |")

    if ani is not None:
        ref = rows["aniposelib triangulate (DLT)"]
        print("\nspeed-up vs aniposelib's DLT (same points, same case):")
        for name in ("lift3d DLT (weighted)", "lift3d robust (ransac)", "lift3d ransac + filter"):
            ups = [ref[c][2] / rows[name][c][2] for c in head]
            print(f"  {name}: " + ", ".join(f"{c}: {u:.1f}x" for c, u in zip(head, ups)))
        b = "aniposelib triangulate (DLT)"
        print("\nMPJPE mm on the same joints only (those both return), lift3d / aniposelib DLT:")
        for a in ("lift3d robust (ransac)", "lift3d ransac + filter"):
            print(f"  {a}: " + ", ".join(
                f"{c}: {mpjpe(np.where(np.isfinite(preds[b, c]), preds[a, c], np.nan), truth)[0]:.1f} / "
                f"{mpjpe(np.where(np.isfinite(preds[a, c]), preds[b, c], np.nan), truth)[0]:.1f}" for c in head))
    ours = rows["lift3d robust (ransac)"]
    filt = rows["lift3d ransac + filter"]
    inc = lambda r: 100 * (r[head[2]][0] / r[head[0]][0] - 1)
    print(f"\ngoals: 4 cams <= 20 mm: {ours[head[0]][0]:.1f} mm (filtered {filt[head[0]][0]:.1f}); "
          f"2 cams <= 35 mm: {ours[head[1]][0]:.1f} mm (filtered {filt[head[1]][0]:.1f}); "
          f"garbage increase < 20 %: {inc(ours):+.0f} % per frame, {inc(filt):+.0f} % filtered")

    if ani is not None and args.window > 0:
        # aniposelib's robust variants are per-point loops: compare on one window of the longest clip
        k = int(np.argmax([b - a for a, b in bounds]))
        a, b = bounds[k]
        lo = a + (b - a - args.window) // 2
        hi = lo + args.window
        print(f"\n{args.window}-frame window (frames {lo}-{hi} of clip {seqs[k]['name']}), "
              f"{args.window * 17:,} points per view: MPJPE mm (coverage %), time")
        print("\n| method | 4 cameras | 4 cameras, 1 garbage 20 % | garbage increase |")
        print("|---|---:|---:|---:|")
        sl = slice(lo, hi)

        def ours_window(kp, robust, smooth=False):
            k4 = kp[:, sl]
            w = np.where(k4[..., 2] >= args.min_confidence, k4[..., 2], 0.0)
            res = triangulate_points(k4[..., :2], cams_per_clip[k], w, robust=robust)
            X = res.points
            if smooth:
                X, _ = smooth_trajectories(X, res.confidence)
            return X

        variants = {
            "lift3d robust (ransac)": lambda kp: ours_window(kp, "ransac"),
            "lift3d ransac + filter": lambda kp: ours_window(kp, "ransac", True),
            "aniposelib triangulate_ransac": lambda kp: run_ani(kp, [0, 1, 2, 3], "ransac", lo, hi),
            "aniposelib triangulate_optim (smooth)": lambda kp: run_ani(kp, [0, 1, 2, 3], "optim", lo, hi),
        }
        for name, fn in variants.items():
            res = []
            for kp in (kp4, kp4_bad):
                t1 = time.process_time()
                X = fn(kp)
                res.append((*mpjpe(X, truth[sl]), time.process_time() - t1))
            inc = 100 * (res[1][0] / res[0][0] - 1)
            print(f"| {name} | " + " | ".join(f"{e:.1f} ({c:.0f} %), {1000 * s:.0f} ms" for e, c, s in res)
                  + f" | {inc:+.0f} % |")

    print("\ncommand: OMP_NUM_THREADS=1 python benchmarks/triangulation_eval.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
