"""Train the lifting network on real motion capture seen through random virtual cameras.

    python -m lift3d.lifting.train --data ../shared/data/cmu-mocap --out lift3d/data/lifter.pt
    python -m lift3d.lifting.train --data ../shared/data/cmu-mocap --kernel 1 --channels 544 \\
        --out baseline.pt                    # the single-frame baseline of the same size
    python -m lift3d.lifting.train --init lift3d/data/lifter.pt --imu --occlude 0.5 \\
        --out lift3d/data/lifter_imu.pt      # the IMU lifter (also sees six sensed bones)
    python -m lift3d.lifting.train --init lift3d/data/lifter.pt --error-head --epochs 10 \\
        --steps 100 --lr 3e-3 --out lift3d/data/lifter.pt   # + each joint's expected error

The shipped weights are several continuations of the first run (``--init``, ``--dropout``,
``--speed``, ``--mix``, ``--turn``, ``--bend``, ``--lean``), then an error head trained on the
frozen network (``--error-head``);
docs/BENCHMARKS.md lists each round's command, time and held-out figures.

Split: CMU subject 02 is held out entirely (both formats) for evaluation; subjects 01, 03
(ASF/AMC and BVH) and 05, 06, 07 (BVH) train. Everything is resampled to 30 fps. Every epoch
draws new cameras and new detector-like corruption, so the network never sees the same 2D
twice. Progress shows on a tqdm bar; each epoch's weights are saved (atomically) as it ends,
so Ctrl-C keeps the last finished epoch.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from lift3d.io_utils import atomic_path
from lift3d.lifting.augment import new_poses
from lift3d.lifting.data import (INPUT_FORMAT, OUTPUT_FORMAT, ROOT, canonicalize, corrupt, mirror_joints,
                                 normalize_2d, sample_cameras)
from lift3d.lifting.imu_input import NUM_SENSORS, bone_directions, sensor_like
from lift3d.lifting.model import Lifter

HELD_OUT = "02"
FPS = 30.0


def subject_of(path: Path) -> str:
    """CMU subject number as two digits, from '.../bvh/002/002_01.bvh' or '.../asfamc/02/02_01.amc'."""
    return f"{int(path.parent.name):02d}"


def mocap_files(root: Path) -> list[Path]:
    """Every AMC and BVH file under a cmu-mocap folder, sorted."""
    return sorted(list(root.glob("asfamc/*/*.amc")) + list(root.glob("bvh/*/*.bvh")))


def load_sequences(root: Path, subjects: set[str] | None = None, exclude: set[str] = frozenset(),
                   progress: bool = True) -> list[dict]:
    """Read mocap files into 30 fps world joints: [{"name", "inp": (T, 17, 3) coco17,
    "out": (T, 17, 3) h36m17}], cached under ~/.cache/lift3d so later runs start at once."""
    from lift3d.mocap import load_motion

    cache = Path.home() / ".cache" / "lift3d" / "mocap30"
    cache.mkdir(parents=True, exist_ok=True)
    seqs = []
    files = [f for f in mocap_files(root)
             if (subjects is None or subject_of(f) in subjects) and subject_of(f) not in exclude]
    for f in tqdm(files, desc="reading mocap", disable=not progress, leave=False):
        c = cache / f"{f.parent.parent.name}_{f.stem}.npz"
        if c.is_file():
            z = np.load(c)
            inp, out = z["inp"], z["out"]
        else:
            motion = load_motion(f).resample(FPS)
            inp = motion.to_joints3d(INPUT_FORMAT).data[:, 0]
            out = motion.to_joints3d(OUTPUT_FORMAT).data[:, 0]
            with atomic_path(c, suffix=".npz") as tmp:
                np.savez(tmp, inp=inp, out=out)
        if len(inp) >= 10:
            seqs.append({"name": f"{f.parent.parent.name}/{f.stem}", "inp": inp, "out": out})
    return seqs


class WindowSampler:
    """Random training windows from mocap sequences, seen through random cameras.

    All sequences are concatenated once so that a batch of windows is gathered, projected,
    corrupted and normalised with array operations (no per-window Python loop). Per-frame
    labels (``labels``: (T, 2) left/right values per sequence, e.g. foot contacts) are
    gathered with the same windows and swapped with the sides when a window is mirrored.
    """

    def __init__(self, seqs: list[dict], labels: list[np.ndarray] | None = None) -> None:
        self.inp = np.concatenate([s["inp"] for s in seqs]).astype(np.float64)
        self.out = np.concatenate([s["out"] for s in seqs]).astype(np.float64)
        self.labels = None if labels is None else np.concatenate(labels).astype(np.float32)
        lengths = np.array([len(s["inp"]) for s in seqs])
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.lengths = lengths
        self.p = lengths / lengths.sum()

    def sample(self, rng: np.random.Generator, n: int, length: int, noise: float = 1.0,
               mirror: bool = True, virtual: bool = True, speed: float = 1.0,
               occlude: float = 0.0, **poses: float) -> tuple[np.ndarray, np.ndarray]:
        """n random windows of ``length`` frames: (n, L, 17, 3) normalised 2D inputs and
        (n, L, 17, 3) root-relative 3D targets in the virtual camera's axes (``canonicalize``;
        the real camera's with ``virtual=False``). Each window gets its own random camera and,
        with ``speed`` > 1, its own playback rate, log-uniform in [1/speed, speed] (frames
        interpolated linearly): the same moves done faster or slower. ``occlude``: the fraction
        of windows in which a random 30-60% of the joints are hidden over a random span (a
        person half behind something, as ``benchmarks/imu_eval.py`` hides them). ``poses``: the
        fractions of windows given new poses made from the recorded ones (``augment.new_poses``:
        ``mix`` limbs grafted from another window of the batch, ``turn`` a limb turned about its
        root, ``bend`` an elbow or knee bent more or less, ``lean`` the upper body turned about
        the spine)."""
        X, Y, _ = self._draw(rng, n, length, noise, mirror, virtual, speed, occlude, **poses)
        return X, Y

    def sample_labels(self, rng: np.random.Generator, n: int, length: int, noise: float = 1.0,
                      mirror: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Windows as ``sample`` draws them, as (n, L, 17, 3) normalised image coordinates (x/z,
        y/z; see ``Camera.normalized``) + confidence, with their (n, L, 2) labels."""
        if self.labels is None:
            raise ValueError("this sampler was built without labels")
        _, _, (idx, m, xyc) = self._draw(rng, n, length, noise, mirror, True)
        lab = self.labels[idx]
        lab[m] = lab[m][..., ::-1]
        return xyc.astype(np.float32), lab

    def _draw(self, rng, n, length, noise, mirror, virtual, speed=1.0, occlude=0.0, **poses):
        k = rng.choice(len(self.lengths), size=n, p=self.p)
        if speed > 1:
            rate = np.exp(rng.uniform(-np.log(speed), np.log(speed), n))
            off = rng.uniform(0, 1, n) * np.maximum(0, self.lengths[k] - 1 - (length - 1) * rate)
        else:  # whole frames, as before the augmentation existed (same random stream)
            rate = np.ones(n)
            off = rng.integers(0, np.maximum(1, self.lengths[k] - length + 1)).astype(np.float64)
        # Short clips repeat their last frame.
        pos = np.minimum(off[:, None] + rate[:, None] * np.arange(length), self.lengths[k, None] - 1)
        first = self.starts[k, None]
        idx = first + np.rint(pos).astype(np.int64)  # nearest frame (for per-frame labels)
        if speed > 1:  # between frames: linear interpolation
            i0 = np.floor(pos).astype(np.int64)
            a = (pos - i0)[..., None, None]
            i0, i1 = first + i0, first + np.minimum(i0 + 1, self.lengths[k, None] - 1)
            inp = (1 - a) * self.inp[i0] + a * self.inp[i1]  # (n, L, 17, 3)
            out = (1 - a) * self.out[i0] + a * self.out[i1]
        else:
            inp, out = self.inp[idx], self.out[idx]
        inp, out = new_poses(rng, inp, out, **poses)
        m = (rng.random(n) < 0.5) if mirror else np.zeros(n, dtype=bool)
        if m.any():  # a mirrored person: flip x and swap sides
            inp[m], out[m] = mirror_joints(inp[m], INPUT_FORMAT), mirror_joints(out[m], OUTPUT_FORMAT)
        K, R, t, size = sample_cameras(rng, out)
        cam_in = np.einsum("nij,nlkj->nlki", R, inp) + t[:, None, None]
        cam_out = np.einsum("nij,nlkj->nlki", R, out) + t[:, None, None]
        f, c = np.stack([K[:, 0, 0], K[:, 1, 1]], -1), K[:, :2, 2]
        xy = cam_in[..., :2] / np.where(np.abs(cam_in[..., 2:]) < 1e-9, 1e-9, cam_in[..., 2:])
        uv = xy * f[:, None, None] + c[:, None, None]
        kp = corrupt(rng, uv, cam_in[..., 2], size, noise)
        if occlude > 0:
            kp[..., 2] *= ~_occlusions(rng, n, length, kp.shape[-2], occlude)
        Y = cam_out - cam_out[:, :, ROOT:ROOT + 1]
        xyc = np.concatenate([(kp[..., :2] - c[:, None, None]) / f[:, None, None], kp[..., 2:]], -1)
        xyc = np.where(kp[..., 2:] > 0, xyc, 0.0)
        if virtual:
            X, Rv = canonicalize(xyc)
            Y = np.einsum("nlij,nlkj->nlki", Rv, Y)
        else:
            X = normalize_2d(kp)
        return X.astype(np.float32), Y.astype(np.float32), (idx, m, xyc)


def _occlusions(rng: np.random.Generator, n: int, length: int, J: int, rate: float) -> np.ndarray:
    """(n, L, J) bool: in a ``rate`` fraction of windows, 30-60% of the joints hidden over one
    random span of 5 frames to the whole window."""
    hide = np.zeros((n, length, J), dtype=bool)
    for i in np.flatnonzero(rng.random(n) < rate):
        span = int(rng.integers(min(5, length), length + 1))
        t0 = int(rng.integers(0, length - span + 1))
        joints = rng.choice(J, size=int(rng.uniform(0.3, 0.6) * J), replace=False)
        hide[i, t0:t0 + span, joints] = True
    return hide


def mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error of (..., J, 3) tensors, in their unit."""
    return (pred - target).norm(dim=-1).mean()


def _pairs_loss(net: Lifter, X: torch.Tensor, Y: torch.Tensor, w_velocity: float) -> torch.Tensor:
    """MPJPE + w_velocity * velocity error of the centre outputs of windows of rf + 1 frames,
    each lifted twice (frames 0..rf-1 and 1..rf) so that the pair gives one velocity."""
    rf = net.receptive_field
    pred = net.forward_center(torch.cat([X[:, :-1], X[:, 1:]]))
    pred = pred - pred[:, ROOT:ROOT + 1]
    p0, p1 = pred.chunk(2)
    t0, t1 = Y[:, rf // 2], Y[:, rf // 2 + 1]
    # The velocity error penalises jitter that per-frame MPJPE barely sees.
    return 0.5 * (mpjpe(p0, t0) + mpjpe(p1, t1)) + w_velocity * mpjpe(p1 - p0, t1 - t0)


def prepare(args: argparse.Namespace) -> tuple[np.random.Generator, list[dict], list[dict]]:
    """Seed torch and numpy, set the threads, read the training and held-out sequences."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    root = Path(args.data)
    return (np.random.default_rng(args.seed), load_sequences(root, exclude={HELD_OUT}),
            load_sequences(root, subjects={HELD_OUT}))


def grow_inputs(config: dict, state: dict, extra: int) -> tuple[dict, dict]:
    """A saved lifter's config and weights with at least ``extra`` extra inputs per frame: new
    inputs enter the first layer with zero weight, so the grown network starts out computing
    exactly what the saved one did (how the IMU lifter starts from the 2D lifter)."""
    config, state = dict(config), dict(state)
    before = config.get("extra_inputs", 0)
    if extra > before:
        w = state["expand.weight"]  # (channels, 3 * inputs, kernel): joint-major, extras last
        state["expand.weight"] = torch.cat([w, w.new_zeros(w.shape[0], 3 * (extra - before), w.shape[2])], 1)
        config["extra_inputs"] = extra
    return config, state


def prefetched(draw: Callable[[], tuple]) -> Iterator[tuple]:
    """Endless ``draw()`` results, each next one made in a background thread while the caller
    trains on the last: numpy and torch release the GIL in their heavy parts, so drawing a batch
    of windows overlaps the network's step (1.5x faster training on two cores)."""
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(draw)
        while True:
            ready = pending.result()
            pending = pool.submit(draw)
            yield ready


def train(args: argparse.Namespace) -> None:
    rng, seqs, val_seqs = prepare(args)
    frames = sum(len(s["inp"]) for s in seqs)
    print(f"train: {len(seqs)} sequences, {frames} frames at 30 fps; held-out subject {HELD_OUT}: "
          f"{len(val_seqs)} sequences")
    extra = NUM_SENSORS if args.imu else 0
    net = Lifter(channels=args.channels, kernel=args.kernel, dropout=0.2 if args.dropout is None else args.dropout,
                 extra_inputs=extra)
    if args.init:  # continue from saved weights with a fresh learning-rate cycle
        ckpt = torch.load(args.init, map_location="cpu", weights_only=True)
        config = dict(ckpt["config"])
        if args.dropout is not None:  # the network underfits: a continuation may lower it
            config["dropout"] = args.dropout
        config, state = grow_inputs(config, {k: v.float() for k, v in ckpt["state_dict"].items()}, extra)
        if config.pop("error_head", False):  # it reads features this training will change
            state = {k: v for k, v in state.items() if not k.startswith("error_head.")}
            print("the error head of the --init weights is dropped: train a new one with --error-head after")
        net = Lifter(**config)
        net.load_state_dict(state)
    rf = net.receptive_field
    print(f"receptive field {rf} frames, {sum(p.numel() for p in net.parameters()):,} parameters"
          + (f", {net.config['extra_inputs']} sensed bone directions" if net.config["extra_inputs"] else ""))
    sampler = WindowSampler(seqs)
    with_imu = net.config["extra_inputs"] > 0

    Xv, Yv = draw_batch(WindowSampler(val_seqs), np.random.default_rng(123), 2048, rf + 1, with_imu,
                        occlude=args.occlude)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * args.steps
    # With --average K the last K epochs run at a constant learning rate and the weights they
    # pass through are averaged (stochastic weight averaging): the one-cycle part is shorter.
    averaging = min(max(args.average, 0), args.epochs - 1)
    cycle = (args.epochs - averaging) * args.steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=cycle, pct_start=0.05)
    mean_net = torch.optim.swa_utils.AveragedModel(net) if averaging else None
    last, start = float("nan"), time.time()
    bar = tqdm(total=steps, desc="training")
    done = 0
    batches = prefetched(lambda: draw_batch(sampler, rng, args.batch, rf + 1, with_imu, speed=args.speed,
                                            mix=args.mix, occlude=args.occlude, turn=args.turn, bend=args.bend,
                                            lean=args.lean))
    try:
        for epoch in range(args.epochs):
            net.train()
            for _ in range(args.steps):
                X, Y = next(batches)
                loss = _pairs_loss(net, X, Y, args.w_velocity)
                opt.zero_grad()
                loss.backward()
                opt.step()
                done += 1
                if done < cycle or mean_net is None:
                    sched.step()
                elif done == cycle:
                    for group in opt.param_groups:
                        group["lr"] = args.lr * args.average_lr
                elif done % 10 == 0:
                    mean_net.update_parameters(net)
                bar.update(1)
                bar.set_postfix(loss_mm=f"{loss.item() * 1000:.1f}")
            out_net = net
            if mean_net is not None and mean_net.n_averaged.item() > 0:
                out_net = mean_net.module
                _refresh_batch_norm(out_net, lambda: next(batches)[0])
            out_net.eval()
            with torch.no_grad():
                val = _pairs_loss(out_net, Xv, Yv, 0.0).item() * 1000
            tqdm.write(f"epoch {epoch + 1}/{args.epochs}: train loss {loss.item() * 1000:.1f} mm, "
                       f"held-out MPJPE {val:.1f} mm, {time.time() - start:.0f} s")
            # The last epoch's weights are kept, not the best held-out epoch's: choosing by the
            # held-out subject would leak it into training decisions.
            last = val
            save(out_net, args.out, {"held_out_mpjpe_mm": val, "epoch": epoch + 1})
    except KeyboardInterrupt:
        tqdm.write("interrupted: keeping the weights of the last finished epoch")
    batches.close()
    bar.close()
    print(f"last held-out MPJPE {last:.1f} mm; {time.time() - start:.0f} s; weights in {args.out}")


def draw_batch(sampler: WindowSampler, rng: np.random.Generator, n: int, length: int, with_imu: bool,
               **augment: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``sampler.sample``'s windows as tensors, ``augment`` (speed, occlude, mix, turn, bend, lean) passed
    on; for an IMU lifter (``with_imu``) each frame also carries the six sensed bones' directions,
    from the targets in the same virtual axes."""
    X, Y = sampler.sample(rng, n, length, **augment)
    if with_imu:
        X = np.concatenate([X, sensor_like(rng, bone_directions(Y)).astype(np.float32)], 2)
    return torch.as_tensor(X), torch.as_tensor(Y)


def error_head_loss(net: Lifter, X: torch.Tensor, Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Laplace negative log-likelihood of the centre outputs' per-joint errors under the error
    head's scales, e / s + log s, which is least where s is the error's expected value; and the
    (B, J - 1) errors and scales themselves (metres). The root, always at zero, is left out."""
    rf = net.receptive_field
    pred, s = net.center_with_error(X[:, :rf])
    err = (pred - pred[:, ROOT:ROOT + 1] - Y[:, rf // 2]).norm(dim=-1).detach()
    keep = [j for j in range(pred.shape[1]) if j != ROOT]
    err, s = err[:, keep], s[:, keep]
    return (err / s + s.log()).mean(), err, s


def train_error_head(args: argparse.Namespace) -> None:
    """Fit the error head of the ``--init`` network, every other weight frozen (its outputs
    unchanged), on the training distribution of windows (``--speed``, ``--mix``, ``--occlude``;
    an IMU lifter's windows carry the sensed bone directions as in its training)."""
    if not args.init:
        raise SystemExit("--error-head trains a head for existing weights: give them with --init")
    rng, seqs, val_seqs = prepare(args)
    ckpt = torch.load(args.init, map_location="cpu", weights_only=True)
    net = Lifter(**{**ckpt["config"], "error_head": True})
    missing = net.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()}, strict=False).missing_keys
    if any(not k.startswith("error_head.") for k in missing):
        raise SystemExit(f"{args.init}: not a lifter's weights (missing {missing})")
    net.eval()  # BatchNorm keeps its statistics, dropout stays off: the joints do not change
    for name, p in net.named_parameters():
        p.requires_grad_(name.startswith("error_head."))
    if "error_head.weight" in missing:  # a fresh head starts at a guess of 5 cm everywhere
        torch.nn.init.zeros_(net.error_head.weight)
        torch.nn.init.constant_(net.error_head.bias, float(np.log(0.05)))
    sampler, rf, with_imu = WindowSampler(seqs), net.receptive_field, net.config["extra_inputs"] > 0
    Xv, Yv = draw_batch(WindowSampler(val_seqs), np.random.default_rng(123), 2048, rf, with_imu, occlude=args.occlude)
    opt = torch.optim.Adam(net.error_head.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * args.steps,
                                                pct_start=0.05)
    start = time.time()
    bar = tqdm(total=args.epochs * args.steps, desc="error head")
    batches = prefetched(lambda: draw_batch(sampler, rng, args.batch, rf, with_imu, speed=args.speed, mix=args.mix,
                                            occlude=args.occlude))
    try:
        for epoch in range(args.epochs):
            for _ in range(args.steps):
                X, Y = next(batches)
                loss, _, _ = error_head_loss(net, X, Y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
            with torch.no_grad():
                _, err, s = error_head_loss(net, Xv, Yv)
            rank = spearmanr(err.flatten().numpy(), s.flatten().numpy()).statistic
            tqdm.write(f"epoch {epoch + 1}/{args.epochs}: held-out joint error {err.mean() * 1000:.1f} mm, "
                       f"expected {s.mean() * 1000:.1f} mm, rank correlation {rank:.2f}, {time.time() - start:.0f} s")
            save(net, args.out, {**ckpt.get("info", {}), "error_head_rank_correlation": float(rank)})
    except KeyboardInterrupt:
        tqdm.write("interrupted: keeping the weights of the last finished epoch")
    batches.close()
    bar.close()
    print(f"{time.time() - start:.0f} s; weights in {args.out}")


def _refresh_batch_norm(net: Lifter, draw, batches: int = 16) -> None:
    """Recompute every BatchNorm's running mean and variance for averaged weights (the
    running statistics of the weights averaged over do not belong to their average).

    Not ``torch.optim.swa_utils.update_bn``: that calls ``forward``, which evaluates every frame of
    a window, while training normalises the strided frames of ``forward_center``."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    net.train()
    with torch.no_grad():
        for _ in range(batches):
            X = draw()
            net.forward_center(torch.cat([X[:, :-1], X[:, 1:]]))
    for m, mom in zip(norms, saved):
        m.momentum = mom
    net.eval()


def save(net: torch.nn.Module, path: str | Path, info: dict) -> None:
    """Half-precision weights (a few MB) + ``net.config`` to rebuild the network, written atomically."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"config": net.config, "state_dict": state, "info": info}, tmp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/cmu-mocap", help="cmu-mocap folder")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "lifter.pt"))
    ap.add_argument("--channels", type=int, default=384)
    ap.add_argument("--kernel", type=int, default=3, help="3: temporal (27 frames); 1: single frame")
    ap.add_argument("--dropout", type=float, default=None,
                    help="dropout probability (default 0.2, or the --init weights' own)")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--steps", type=int, default=200, help="batches per epoch")
    ap.add_argument("--batch", type=int, default=512, help="windows per step")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--w-velocity", type=float, default=1.0, help="weight of the velocity error term")
    ap.add_argument("--speed", type=float, default=1.0,
                    help="time-scale augmentation: each window played at a rate in [1/speed, speed]")
    ap.add_argument("--mix", type=float, default=0.0,
                    help="fraction of windows whose arms/legs move as another window's do (augment.mix_windows)")
    ap.add_argument("--turn", type=float, default=0.0,
                    help="fraction of windows with one arm/leg turned up to 45 degrees about its root (augment.turn_limbs)")
    ap.add_argument("--bend", type=float, default=0.0,
                    help="fraction of windows with one elbow or knee bent up to 45 degrees more or less (augment.bend_limbs)")
    ap.add_argument("--lean", type=float, default=0.0,
                    help="fraction of windows with the upper body turned up to 30 degrees about the spine (augment.lean_torso)")
    ap.add_argument("--occlude", type=float, default=0.0,
                    help="fraction of windows with a random 30-60%% of the joints hidden over a span")
    ap.add_argument("--imu", action="store_true",
                    help="the IMU lifter: also sees the six sensed bone directions (lifting.imu_input)")
    ap.add_argument("--init", default=None, help="start from these weights (same architecture, or a 2D "
                    "lifter to grow into the IMU lifter with --imu)")
    ap.add_argument("--average", type=int, default=0, metavar="K",
                    help="average the weights of the last K epochs, run at a constant learning rate "
                         "(stochastic weight averaging); 0 = off")
    ap.add_argument("--average-lr", type=float, default=0.25,
                    help="the constant learning rate of the averaged epochs, as a fraction of --lr")
    ap.add_argument("--error-head", action="store_true",
                    help="train only a head that predicts each joint's expected error, for the --init weights")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    (train_error_head if args.error_head else train)(args)


if __name__ == "__main__":
    main()
