"""Train the foot-contact network on real motion capture seen through random virtual cameras.

    python -m lift3d.lifting.train_contact --data ../shared/data/cmu-mocap --out lift3d/data/contact.pt

Same data, split and views as the lifter (``lift3d.lifting.train``: subject 02 held out, new
random cameras and detector-like corruption for every batch); labels from the mocap ankles
(``contact.contact_labels``). Loss: binary cross-entropy per foot and frame. Each epoch's
weights are saved atomically, so Ctrl-C keeps the last finished epoch.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lift3d.lifting.contact import ContactNet, contact_labels, network_input
from lift3d.lifting.train import FPS, WindowSampler, prepare, save


def scores(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Per-foot-frame accuracy, precision, recall and F1 of ``logits > 0`` against 0/1 labels."""
    pred, true = logits > 0, labels > 0.5
    tp = (pred & true).sum().item()
    precision = tp / max(pred.sum().item(), 1)
    recall = tp / max(true.sum().item(), 1)
    return {"accuracy": (pred == true).float().mean().item(), "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / max(precision + recall, 1e-9)}


def sampler_for(seqs: list[dict]) -> WindowSampler:
    return WindowSampler(seqs, labels=[contact_labels(s["out"], FPS) for s in seqs])


def _batch(sampler: WindowSampler, rng: np.random.Generator, n: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    xyc, labels = sampler.sample_labels(rng, n, length)
    return torch.as_tensor(network_input(xyc), dtype=torch.float32), torch.as_tensor(labels)


def train(args: argparse.Namespace) -> None:
    rng, seqs, val_seqs = prepare(args)
    net = ContactNet(channels=args.channels)
    pad, n_out = net.pad, args.outputs
    length = net.receptive_field + n_out - 1
    sampler = sampler_for(seqs)
    print(f"train: {len(seqs)} sequences, {len(sampler.labels)} frames, {sampler.labels.mean():.0%} "
          f"planted; receptive field {net.receptive_field}, {sum(p.numel() for p in net.parameters()):,} parameters")
    Xv, Lv = _batch(sampler_for(val_seqs), np.random.default_rng(123), 1024, length)
    Lv = Lv[:, pad:pad + n_out]
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * args.steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.05)
    start = time.time()
    bar = tqdm(total=steps, desc="training contacts")
    val: dict[str, float] = {}
    try:
        for epoch in range(args.epochs):
            net.train()
            for _ in range(args.steps):
                X, L = _batch(sampler, rng, args.batch, length)
                loss = F.binary_cross_entropy_with_logits(net.forward_valid(X), L[:, pad:pad + n_out])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
                bar.set_postfix(bce=f"{loss.item():.3f}")
            net.eval()
            with torch.no_grad():
                val = scores(net.forward_valid(Xv), Lv)
            tqdm.write(f"epoch {epoch + 1}/{args.epochs}: train BCE {loss.item():.3f}, held-out "
                       + ", ".join(f"{k} {v:.3f}" for k, v in val.items()) + f", {time.time() - start:.0f} s")
            # The last epoch is kept, not the best held-out one (no selection on the held-out subject).
            save(net, args.out, {"held_out": val, "epoch": epoch + 1})
    except KeyboardInterrupt:
        tqdm.write("interrupted: keeping the weights of the last finished epoch")
    bar.close()
    print(f"held-out {val}; {time.time() - start:.0f} s; weights in {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/cmu-mocap", help="cmu-mocap folder")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "contact.pt"))
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=100, help="batches per epoch")
    ap.add_argument("--batch", type=int, default=256, help="windows per step")
    ap.add_argument("--outputs", type=int, default=16, help="supervised frames per window")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    train(ap.parse_args())


if __name__ == "__main__":
    main()
