"""Train the pose prior (``lift3d.fitting.prior``) on real motion capture retargeted to a body model.

    python -m lift3d.fitting.train_prior --data ../shared/data/cmu-mocap --out lift3d/data/pose_prior.npz
    python -m lift3d.fitting.train_prior --data ../shared/data/cmu-mocap --model smpl \\
        --model-path ~/.lift3d/models --out pose_prior_smpl.npz       # an SMPL prior, given its files

Steps: read the CMU takes (30 fps coco17 + h36m17 world joints, ``lifting.train.load_sequences``,
cached), keep every n-th frame (``--fps``), retarget each subject's takes of one file format
(ASF/AMC or BVH: one skeleton, so one body shape) onto the body model (``retarget``), mirror the
poses left-right (the prior should not prefer one side), fit the Gaussian mixture by EM, derive
the joint-angle limits, and save atomically. CMU subject 02 is held out (as everywhere in lift3d):
it is retargeted too, only to report the prior's mean negative log-likelihood on unseen motion
next to the training one.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import roma
import torch
from tqdm.auto import tqdm

import body_models
from lift3d import formats
from lift3d.fitting.prior import PosePrior, mirror_features, pose_features
from lift3d.fitting.retarget import RetargetOptions, observed_joints, retarget

HELD_OUT = "02"
SOURCE_FPS = 30.0
# Retarget targets: coco17 (limbs and face) plus h36m17's trunk points.
TARGET_NAMES = formats.names("coco17") + [n for n in formats.names("h36m17") if n not in formats.names("coco17")]


def target_joints(seq: dict) -> np.ndarray:
    """(T, len(TARGET_NAMES), 3) joints of a ``load_sequences`` item."""
    extra = [formats.index("h36m17", n) for n in TARGET_NAMES[17:]]
    return np.concatenate([seq["inp"], seq["out"][:, extra]], axis=1)


def group_of(name: str) -> str:
    """'asfamc/01_03' -> 'asfamc/01', 'bvh/005_02' -> 'bvh/05': one skeleton, one body shape."""
    kind, take = name.split("/")
    return f"{kind}/{int(take.split('_')[0]):02d}"


def retarget_sequences(seqs: list[dict], model, fps: float, iters: int = 15, progress: bool = True,
                       desc: str = "retargeting") -> dict:
    """Retarget every n-th frame of the sequences, one call (one shape) per subject and format.

    Returns:
        dict with ``pose`` (N, Jm, 3, 3), ``error_mm`` (frame-weighted mean), ``frames`` (N),
        ``groups`` {group: (frames, error_mm, shape)}.
    """
    step = max(1, int(round(SOURCE_FPS / fps)))
    groups: dict[str, list[np.ndarray]] = {}
    for s in seqs:
        groups.setdefault(group_of(s["name"]), []).append(target_joints(s)[::step])
    # The kept frames are 1/fps apart and takes are joined end to end: no temporal terms.
    opts = RetargetOptions(w_smooth=0.0, w_smooth_rot=0.0)
    poses, info, err_sum = [], {}, 0.0
    for g in tqdm(sorted(groups), desc=desc, disable=not progress):
        joints = np.concatenate(groups[g])
        res = retarget(joints, TARGET_NAMES, model, iters=iters, progress=progress, options=opts)
        poses.append(res["pose"].astype(np.float32))
        info[g] = (len(joints), res["error_mm"], res["shape"])
        err_sum += res["error_mm"] * len(joints)
    n = sum(v[0] for v in info.values())
    return {"pose": np.concatenate(poses), "error_mm": err_sum / max(n, 1), "frames": n, "groups": info}


def mean_nll(prior: PosePrior, pose: np.ndarray, batch: int = 4096) -> float:
    with torch.no_grad():
        vals = [prior.nll(torch.as_tensor(pose[i:i + batch])) for i in range(0, len(pose), batch)]
    return float(torch.cat(vals).double().mean())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the cmu-mocap folder (asfamc/, bvh/)")
    ap.add_argument("--out", type=Path, required=True, help="the .npz to write")
    ap.add_argument("--model", default="anny", help="body model (anny, smpl, smplh, smplx)")
    ap.add_argument("--model-path", default=None, help="folder of the SMPL-family model files")
    ap.add_argument("--fps", type=float, default=10.0, help="frames per second kept from the 30 fps takes")
    ap.add_argument("--components", type=int, default=8, help="Gaussian mixture components")
    ap.add_argument("--reg", type=float, default=math.radians(2.0) ** 2,
                    help="variance floor added to each covariance's diagonal (rad^2)")
    ap.add_argument("--em-iters", type=int, default=150)
    ap.add_argument("--iters", type=int, default=15, help="Levenberg-Marquardt iterations of the retargeting")
    ap.add_argument("--held-out", default=HELD_OUT, help="CMU subject kept out of training")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-mirror", action="store_true", help="do not add left-right mirrored poses")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()

    from lift3d.lifting.train import load_sequences

    kwargs = {"model_path": args.model_path} if args.model_path else {}
    model = body_models.load(args.model, **kwargs)
    train_seqs = load_sequences(args.data, exclude={args.held_out})
    test_seqs = load_sequences(args.data, subjects={args.held_out})
    if not train_seqs:
        raise SystemExit(f"no motion capture found under {args.data}")
    joints = observed_joints(model, TARGET_NAMES)
    names = [model.joint_names[j] for j in joints]

    train = retarget_sequences(train_seqs, model, args.fps, args.iters, desc="retargeting training subjects")
    test = None
    if test_seqs:
        test = retarget_sequences(test_seqs, model, args.fps, args.iters,
                                  desc=f"retargeting subject {args.held_out}")

    feats = pose_features(train["pose"], joints).astype(np.float64)
    if not args.no_mirror:
        feats = np.concatenate([feats, mirror_features(feats, names)])
    meta = {
        "source": f"CMU mocap ({args.data.name}), all subjects but {args.held_out}, {args.fps:g} fps, "
                  f"{'with' if not args.no_mirror else 'without'} mirrored copies",
        "frames": train["frames"], "retarget_error_mm": round(train["error_mm"], 2),
        "components": args.components, "reg": args.reg, "fps": args.fps,
        "targets": TARGET_NAMES, "groups": sorted(train["groups"]),
        "representation": "axis-angle of local rotations in world axes, root excluded",
    }
    prior = PosePrior.fit(feats, model.name, names, joints, components=args.components, reg=args.reg,
                          iters=args.em_iters, seed=args.seed, meta=meta)
    nll_train = mean_nll(prior, train["pose"])
    prior.meta["nll_train"] = round(nll_train, 3)
    if test is not None:
        prior.meta["nll_held_out"] = round(mean_nll(prior, test["pose"]), 3)
        prior.meta["held_out_frames"] = test["frames"]
        prior.meta["held_out_retarget_error_mm"] = round(test["error_mm"], 2)
        with torch.no_grad():
            pen = torch.cat([prior.angle_limit_penalty(torch.as_tensor(test["pose"][i:i + 4096]))
                             for i in range(0, len(test["pose"]), 4096)])
        prior.meta["held_out_inside_limits"] = round(float((pen == 0).double().mean()), 4)
    g = torch.Generator().manual_seed(args.seed)
    rand = model.rest_pose(512).cpu().float()
    rand[:, joints] = roma.rotvec_to_rotmat(0.5 * torch.randn(512, len(joints), 3, generator=g))
    prior.meta["nll_random"] = round(mean_nll(prior, rand.numpy()), 1)
    prior.save(args.out)

    print(f"body model {model.name}: {len(joints)} prior joints ({prior.dim} dims), "
          f"{prior.num_components} full-covariance components")
    print(f"training frames: {train['frames']} ({args.fps:g} fps, subjects but {args.held_out}"
          + ("" if args.no_mirror else f"; {len(feats)} with mirrored copies") + ")")
    for g, (n, e, _) in sorted(train["groups"].items()):
        print(f"  {g}: {n} frames, retarget error {e:.1f} mm")
    print(f"retarget error (mean keypoint distance): training {train['error_mm']:.1f} mm"
          + (f", held-out {test['error_mm']:.1f} mm ({test['frames']} frames)" if test else ""))
    print(f"mean NLL (nats): training {nll_train:.2f}"
          + (f", held-out subject {args.held_out} {prior.meta['nll_held_out']:.2f}" if test else "")
          + f", random poses (0.5 rad per axis) {prior.meta['nll_random']:.0f}")
    if test:
        print(f"held-out frames inside the angle limits: {100 * prior.meta['held_out_inside_limits']:.1f}%")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
