"""Train the IMU-conditional pose prior (``lift3d.fusion.imu_prior``) on retargeted CMU mocap.

    python -m lift3d.fusion.train_imu_prior --data ../shared/data/cmu-mocap --out lift3d/data/imu_prior.pt

Steps: retarget every CMU take onto the body model as ``fitting.train_prior`` does (cached under
~/.cache/lift3d, so a second run starts at once), add the mirror-image poses, compute the six
SPARSE6 segments' world rotations by forward kinematics, and train the MLP to give every prior
joint's local rotation and its variance from them (Gaussian negative log-likelihood of the
squared Frobenius error). Each training pose
is turned by a random heading and gets ~2 degrees of sensor noise, so the net sees what
``fit_body`` gives it. CMU subject 02 is held out and reported: mean joint-rotation error, and
the same for the rest pose and for the unconditional GMM's most likely component (the baselines
the fitter had).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import roma
import torch
from tqdm.auto import tqdm

import body_models
from lift3d.fitting.retarget import observed_joints
from lift3d.fitting.train_prior import HELD_OUT, TARGET_NAMES, retarget_sequences
from lift3d.fusion.imu import SPARSE6, segment_rotations
from lift3d.fusion.imu_prior import IMUPosePrior, imu_features, mirror_pose
from lift3d.io_utils import atomic_path

UP = torch.tensor([0.0, 1.0, 0.0])


def retargeted(data: Path, model, fps: float, subjects=None, exclude=frozenset(), desc: str = "") -> np.ndarray:
    """(N, J, 3, 3) float32 retargeted poses, cached per model, fps and subject set."""
    from lift3d.lifting.train import load_sequences

    tag = "all_but_" + "_".join(sorted(exclude)) if subjects is None else "_".join(sorted(subjects))
    cache = Path.home() / ".cache" / "lift3d" / f"retarget_{model.name}_{fps:g}fps_{tag}.npy"
    if cache.exists():
        return np.load(cache)
    seqs = load_sequences(data, subjects=subjects, exclude=exclude)
    if not seqs:
        raise SystemExit(f"no motion capture found under {data}")
    pose = retarget_sequences(seqs, model, fps, desc=desc)["pose"].astype(np.float32)
    with atomic_path(cache) as tmp:  # an interrupted run leaves no half-written cache to read back
        np.save(tmp, pose)
    return pose


def examples(poses: torch.Tensor, centers: torch.Tensor, model, sensors: list[int], joints: list[int],
             noise_deg: float, steps: list[int], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, 48 * W) of randomly turned, noisy sensor readings at the frames ``centers +
    steps`` (clamped to the array) and targets (N, J, 3, 3) at ``centers``. The takes lie end to
    end in ``poses``, so a few windows straddle two takes: noise the net learns to live with."""
    N, W = len(centers), len(steps)
    frames = (centers[:, None] + torch.tensor(steps)[None]).clamp(0, len(poses) - 1)  # (N, W)
    yaw = roma.rotvec_to_rotmat(torch.rand(N, 1, generator=gen) * 2 * torch.pi * UP)  # one heading per window
    p = poses[frames.flatten()].clone()
    p[:, 0] = yaw.repeat_interleave(W, 0) @ p[:, 0]
    G = segment_rotations(p, model.parents, sensors)
    if noise_deg > 0:
        G = roma.rotvec_to_rotmat(torch.randn(N * W, len(sensors), 3, generator=gen) * np.radians(noise_deg)) @ G
    return imu_features(G, UP).reshape(N, -1), poses[centers][:, joints]


def rotation_error_deg(R: torch.Tensor, R_true: torch.Tensor) -> float:
    return float(torch.rad2deg(roma.rotmat_geodesic_distance(R, R_true)).mean())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the cmu-mocap folder (asfamc/, bvh/)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fps", type=float, default=10.0, help="frames per second kept from the 30 fps takes")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--noise-deg", type=float, default=2.0, help="sensor orientation noise in training")
    ap.add_argument("--offsets", default="0", help="comma-separated times (s) around each frame the net sees")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.time()
    model = body_models.load("anny")
    joints = observed_joints(model, TARGET_NAMES)
    sensors = [model.joint_names.index(s) for s in SPARSE6["anny"]]
    train = retargeted(args.data, model, args.fps, exclude={HELD_OUT}, desc="retargeting training subjects")
    test = retargeted(args.data, model, args.fps, subjects={HELD_OUT}, desc=f"retargeting subject {HELD_OUT}")
    train = np.concatenate([train, mirror_pose(train, model.joint_names)])
    train_t, test_t = torch.as_tensor(train), torch.as_tensor(test)
    gen = torch.Generator().manual_seed(args.seed)
    offsets = tuple(float(o) for o in args.offsets.split(","))
    steps = [round(o * args.fps) for o in offsets]
    test_x, test_y = examples(test_t, torch.arange(len(test_t)), model, sensors, joints, args.noise_deg, steps, gen)

    net = IMUPosePrior(model.name, joints, hidden=args.hidden, offsets=offsets)
    optim = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=args.lr, total_steps=args.steps)
    bar = tqdm(range(args.steps), desc="training IMU pose prior")
    for step in bar:
        net.train()
        i = torch.randint(len(train_t), (args.batch,), generator=gen)
        x, y = examples(train_t, i, model, sensors, joints, args.noise_deg, steps, gen)
        R, log_var = net(x)
        d = (R - y).square().sum((-1, -2))
        # A rotation error has 3 degrees of freedom and E[d] = var: NLL of d under that model.
        loss = (0.5 * 3 * d / log_var.exp() + 1.5 * log_var).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
        if step % 500 == 0 or step == args.steps - 1:
            with torch.no_grad():
                held = rotation_error_deg(net.eval()(test_x)[0], test_y)
            bar.set_postfix(loss=f"{loss.item():.4f}", held_out_deg=f"{held:.2f}")
    with torch.no_grad():
        R, log_var = net.eval()(test_x)
        held = rotation_error_deg(R, test_y)
        d = (R - test_y).square().sum((-1, -2))
        calib = float((d / log_var.exp()).mean())  # 1 when the variances are right on average
    rest = rotation_error_deg(torch.eye(3).expand_as(test_y), test_y)
    from lift3d.fitting.prior import PosePrior

    gmm = PosePrior.load()
    mode = gmm.means[int(np.argmax(gmm.weights))].reshape(-1, 3)
    mode_R = roma.rotvec_to_rotmat(torch.as_tensor(mode, dtype=torch.float32))
    order = [gmm.joint_indices.index(j) for j in joints]
    gmm_err = rotation_error_deg(mode_R[order].expand_as(test_y), test_y)
    net.meta = {"source": f"CMU mocap ({args.data.name}), all subjects but {HELD_OUT}, {args.fps:g} fps, mirrored",
                "train_frames": len(train), "held_out_frames": len(test), "steps": args.steps,
                "noise_deg": args.noise_deg, "offsets": offsets, "held_out_joint_error_deg": round(held, 2),
                "rest_pose_error_deg": round(rest, 2), "gmm_mode_error_deg": round(gmm_err, 2),
                "held_out_error_over_variance": round(calib, 3)}
    net.save(args.out)
    print(f"training poses {len(train)} (with mirrored copies), held-out subject {HELD_OUT}: {len(test)}")
    print(f"held-out mean local rotation error over {len(joints)} joints: IMU prior {held:.2f} deg, "
          f"rest pose {rest:.2f} deg, GMM's main component {gmm_err:.2f} deg; "
          f"held-out error / predicted variance {calib:.2f} (1 = calibrated)")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
