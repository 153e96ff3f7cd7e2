"""The temporal 2D->3D lifting network, in the style of VideoPose3D's dilated convolutions.

Input: per frame, J 2D keypoints normalised by the person's box (x, y) plus their confidence,
so a missing joint is (0, 0, 0) and the network knows it is missing. Output: per frame, J
root-relative 3D joints in metres, in camera axes (OpenCV: x right, y down, z forward).

Dilations 1, 3, 9 with kernel 3 give a receptive field of 27 frames. The sequence is padded
by repeating its first and last frames, so any length (even 1 frame) gives one output a frame.
With ``kernel=1`` the same stack is the single-frame baseline of the same size. With
``extra_inputs`` > 0 each frame also carries that many 3-vectors after the joints (the IMU
lifter's sensed bone directions, ``lifting.imu_input``). With ``error_head`` a second 1x1 head
reads the same features and predicts each output joint's expected error (metres), trained
afterwards on the frozen network (``train --error-head``), so that a fitter can trust the joints
the network is sure of more than those it guesses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TemporalBlock(nn.Module):
    """Dilated conv + 1x1 conv with a residual connection (valid padding: shortens by 2*dilation)."""

    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.trim = (kernel - 1) * dilation // 2
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm1d(channels, momentum=0.1)
        self.mix = nn.Conv1d(channels, channels, 1, bias=False)
        self.bn_mix = nn.BatchNorm1d(channels, momentum=0.1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, C, L - 2 * trim)."""
        res = x[:, :, self.trim: x.shape[2] - self.trim]
        x = self.drop(torch.relu(self.bn(self.conv(x))))
        x = self.drop(torch.relu(self.bn_mix(self.mix(x))))
        return res + x


class Lifter(nn.Module):
    """Temporal convolutional lifter.

    Args:
        num_joints: J, joints in and out.
        channels: width of every layer.
        kernel: 3 for the temporal model, 1 for the single-frame baseline.
        dilations: one block per dilation after the input layer.
        dropout: dropout probability during training.
        view: the input normalisation it was trained with: "virtual" (``data.canonicalize``,
            output in the virtual camera's axes) or "box" (``data.normalize_2d`` only, output in
            the real camera's axes; the first shipped weights).
        extra_inputs: 3-vectors per frame after the J keypoints (0 for 2D alone).
        error_head: also predict each joint's expected error (``forward_with_error``).
    """

    def __init__(self, num_joints: int = 17, channels: int = 384, kernel: int = 3,
                 dilations: tuple[int, ...] = (3, 9), dropout: float = 0.2, view: str = "virtual",
                 extra_inputs: int = 0, error_head: bool = False) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.config = {"num_joints": num_joints, "channels": channels, "kernel": kernel,
                       "dilations": list(dilations), "dropout": dropout, "view": view, "extra_inputs": extra_inputs,
                       "error_head": error_head}
        self.expand = nn.Conv1d(3 * (num_joints + extra_inputs), channels, kernel, bias=False)
        self.bn = nn.BatchNorm1d(channels, momentum=0.1)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TemporalBlock(channels, kernel, d, dropout) for d in dilations)
        self.head = nn.Conv1d(channels, 3 * num_joints, 1)
        self.error_head = nn.Conv1d(channels, num_joints, 1) if error_head else None  # log metres
        self.pad = (kernel - 1) // 2 + sum((kernel - 1) * d // 2 for d in dilations)

    @property
    def receptive_field(self) -> int:
        return 2 * self.pad + 1

    def _features_valid(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, J + E, 3) -> (B, C, L - receptive_field + 1) features of the last block."""
        B, L = x.shape[:2]
        h = x.reshape(B, L, -1).transpose(1, 2)
        h = self.drop(torch.relu(self.bn(self.expand(h))))
        for block in self.blocks:
            h = block(h)
        return h

    def _features_center(self, x: torch.Tensor) -> torch.Tensor:
        """(B, receptive_field, J + E, 3) -> (B, C, 1) features at each window's centre.

        Computes only the frames that output needs: with dilations kernel^1, kernel^2, ...,
        every layer can run at stride ``kernel`` on the previous layer's needed outputs (the
        trick of VideoPose3D's training model), about 4x cheaper per window than
        ``_features_valid``. Same weights, same result."""
        B, L = x.shape[:2]
        k = self.config["kernel"]
        if L != self.receptive_field:
            raise ValueError(f"forward_center needs windows of {self.receptive_field} frames, got {L}")
        if any(d != k ** (i + 1) for i, d in enumerate(self.config["dilations"])) and k > 1:
            return self._features_valid(x)[:, :, :1]
        h = x.reshape(B, L, -1).transpose(1, 2)
        h = self.drop(torch.relu(self.bn(F.conv1d(h, self.expand.weight, stride=k))))
        for block in self.blocks:
            res = h[:, :, k // 2::k]
            y = self.drop(torch.relu(block.bn(F.conv1d(h, block.conv.weight, stride=k))))
            h = res + self.drop(torch.relu(block.bn_mix(block.mix(y))))
        return h

    def _joints(self, h: torch.Tensor) -> torch.Tensor:
        """(B, C, L) features -> (B, L, J, 3) joints."""
        out = self.head(h).transpose(1, 2)
        return out.reshape(out.shape[0], out.shape[1], self.num_joints, 3)

    def _errors(self, h: torch.Tensor) -> torch.Tensor:
        """(B, C, L) features -> (B, L, J) expected joint errors in metres."""
        if self.error_head is None:
            raise ValueError("this lifter has no error head (train one with `train --error-head`)")
        return self.error_head(h).clamp(-9.0, 1.0).exp().transpose(1, 2)

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (B, T + 2 pad, ...): the first and last frames repeated."""
        if not self.pad:
            return x
        first = x[:, :1].expand(-1, self.pad, -1, -1)
        last = x[:, -1:].expand(-1, self.pad, -1, -1)
        return torch.cat([first, x, last], dim=1)

    def forward_valid(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, J + E, 3) inputs -> (B, L - receptive_field + 1, J, 3): outputs only where the
        whole receptive field lies inside the input."""
        return self._joints(self._features_valid(x))

    def forward_center(self, x: torch.Tensor) -> torch.Tensor:
        """(B, receptive_field, J + E, 3) inputs -> (B, J, 3): the output at each window's centre
        (used in training; ``_features_center``)."""
        return self._joints(self._features_center(x))[:, 0]

    def center_with_error(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward_center`` and the (B, J) expected errors (metres) of the error head."""
        h = self._features_center(x)
        return self._joints(h)[:, 0], self._errors(h)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, J + E, 3) normalised 2D + confidence (then the E extra inputs) -> (B, T, J, 3)
        root-relative 3D, any T >= 1."""
        return self.forward_valid(self._padded(x))

    def forward_with_error(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` and the (B, T, J) expected errors (metres) of the error head."""
        h = self._features_valid(self._padded(x))
        return self._joints(h), self._errors(h)
