"""Coarse-to-fine corrections of per-frame parameters: a preconditioner for sequence fits.

A whole-sequence fit couples its frames through the smoothness term, and a quasi-Newton method
with a short history then spends most of its steps moving the sequence's slow modes (a drift in
depth, a lean held for a second) one frame's gradient at a time. Writing each (T, ...)
parameter sequence as its per-frame values plus piecewise-linear corrections on knots 2, 4,
8, ... frames apart (a hierarchical basis) lets one step move a whole stretch of frames, so
the same optimiser converges in far fewer evaluations; the set of reachable sequences is the
same, only the path to the minimum changes.
"""
from __future__ import annotations

import torch


class TemporalPyramid:
    """A (T, ...) parameter sequence as ``fine + sum of coarse corrections``.

    Each level l (knots ``stride = 2, 4, ...`` frames apart, up to the sequence's length)
    holds (ceil((T - 1) / stride) + 1, ...) knot values, zero at first, linearly interpolated
    to every frame. ``value()`` is the composed (T, ...) sequence; ``parameters()`` are what
    an optimiser moves; ``bake()`` folds the corrections into ``fine`` and zeroes them, so that
    code which reads ``fine`` directly sees the optimised sequence.

    Args:
        fine: (T, ...) the per-frame parameter (a leaf tensor with ``requires_grad``).
    """

    def __init__(self, fine: torch.Tensor) -> None:
        self.fine = fine
        T = fine.shape[0]
        t = torch.arange(T, device=fine.device)
        self.levels: list[tuple[torch.Tensor, torch.Tensor, torch.nn.Parameter]] = []
        stride = 2
        while stride < T:
            n = -(-(T - 1) // stride) + 1
            index = t // stride
            frac = ((t % stride).to(fine.dtype) / stride).reshape((T,) + (1,) * (fine.dim() - 1))
            knots = torch.nn.Parameter(fine.new_zeros((n,) + tuple(fine.shape[1:])))
            self.levels.append((index, frac, knots))
            stride *= 2

    def parameters(self) -> list[torch.Tensor]:
        return [self.fine] + [knots for _, _, knots in self.levels]

    def value(self) -> torch.Tensor:
        """(T, ...) the per-frame values with every level's interpolated correction added."""
        x = self.fine
        for index, frac, knots in self.levels:
            x = x + (1 - frac) * knots[index] + frac * knots[(index + 1).clamp(max=len(knots) - 1)]
        return x

    def bake(self) -> None:
        """Fold the corrections into ``fine`` and zero them (``value()`` is unchanged)."""
        with torch.no_grad():
            self.fine.copy_(self.value())
            for _, _, knots in self.levels:
                knots.zero_()
