"""New poses from real ones for the lifter's training: limbs grafted between mocap windows,
limbs turned about their root joints, elbows and knees bent more or less, and upper bodies
turned about the spine.

Six CMU subjects hold about ten minutes of distinct motion, and a held-out person's arms and
legs do things the others' barely did (docs/BENCHMARKS.md, issue 3). Grafting keeps each
limb's motion real while making new combinations: one window's arm, as it moves relative to
its own chest, is carried by another window's body (a punch over a walk, a wave over a
squat). Each grafted bone keeps the host's length, so the host's proportions stay its own,
and the motion stays smooth because both sources are. Turning (``turn_limbs``) goes further:
a whole arm or leg, its bend kept, points where no recorded limb did; bending (``bend_limbs``)
puts the wrist or ankle where that limb's recorded bend never did; leaning (``lean_torso``)
turns the whole upper body about the spine.

Joints are ``h36m17`` (the lifter's output). Every limb joint of the lifter's ``coco17`` input
(shoulders to wrists, hips to ankles) is the same point as in h36m17, so the input's limb
joints are copied from the grafted output (``COCO_FROM_H36M``).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from lift3d import formats
from lift3d.rotations import orthonormal_frame

_H = "h36m17"


def _i(name: str, fmt: str = _H) -> int:
    return formats.index(fmt, name)


# Each limb: the frame it moves in (the chest for arms, the pelvis for legs) and its chain.
LIMBS: dict[str, list[str]] = {
    "left_arm": ["left_shoulder", "left_elbow", "left_wrist"],
    "right_arm": ["right_shoulder", "right_elbow", "right_wrist"],
    "left_leg": ["left_hip", "left_knee", "left_ankle"],
    "right_leg": ["right_hip", "right_knee", "right_ankle"],
}
COCO_FROM_H36M = [(_i(n, "coco17"), _i(n)) for chain in LIMBS.values() for n in chain]


def body_frames(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chest and pelvis frames of (..., 17, 3) h36m17 joints.

    Returns:
        chest, pelvis: (..., 3, 3) rotations whose columns are the body's left (right -> left
        shoulder, or hip), up (spine -> neck, or pelvis -> spine, made orthogonal to left) and
        forward (left x up) axes, in the joints' axes.
    """
    def frame(right: str, left: str, low: str, high: str) -> np.ndarray:
        x = joints[..., _i(left), :] - joints[..., _i(right), :]
        y = joints[..., _i(high), :] - joints[..., _i(low), :]
        return orthonormal_frame(torch.from_numpy(x), torch.from_numpy(y)).numpy()

    return (frame("right_shoulder", "left_shoulder", "spine", "neck"),
            frame("right_hip", "left_hip", "pelvis", "spine"))


def _with_limbs(inp: np.ndarray, out: np.ndarray) -> np.ndarray:
    """A copy of (N, L, 17, 3) coco17 ``inp`` with its limb joints taken from h36m17 ``out``."""
    new_inp = inp.copy()
    ci, hi = np.array(COCO_FROM_H36M).T
    new_inp[:, :, ci] = out[:, :, hi]
    return new_inp


def graft_limbs(host: np.ndarray, donor: np.ndarray, limbs: np.ndarray) -> np.ndarray:
    """Host windows with some limbs moving as the donors' do, relative to their own bodies.

    Args:
        host, donor: (N, L, 17, 3) h36m17 joint windows (any common axes, metres).
        limbs: (N, 4) bool, which of ``LIMBS`` (in its order) each window takes from its donor.
    Returns:
        (N, L, 17, 3): the host with, for each chosen limb, every bone of the chain turned to
        the donor's direction in the limb's body frame (chest for arms, pelvis for legs) and
        kept at the host's length; the limb's root joint and the rest of the body unmoved.
    """
    out = host.copy()
    frames_h, frames_d = body_frames(host), body_frames(donor)
    for k, (name, chain) in enumerate(LIMBS.items()):
        sel = limbs[:, k]
        if not sel.any():
            continue
        which = int(name.endswith("leg"))  # 0: the chest's frame, 1: the pelvis's
        Fh, Fd = frames_h[which][sel], frames_d[which][sel]
        h, d, o = host[sel], donor[sel], out[sel]
        for parent, child in zip(chain[:-1], chain[1:]):
            p, c = _i(parent), _i(child)
            bone_d = d[..., c, :] - d[..., p, :]
            local = np.einsum("nlji,nlj->nli", Fd, bone_d)  # the donor's bone in its body frame
            local /= np.maximum(np.linalg.norm(local, axis=-1, keepdims=True), 1e-9)
            length = np.linalg.norm(h[..., c, :] - h[..., p, :], axis=-1, keepdims=True)
            o[..., c, :] = o[..., p, :] + np.einsum("nlij,nlj->nli", Fh, local) * length
        out[sel] = o
    return out


def mix_windows(rng: np.random.Generator, inp: np.ndarray, out: np.ndarray, rate: float,
                limb_p: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Graft limbs into a ``rate`` fraction of a batch of windows, each from another window of
    the batch, each limb with probability ``limb_p`` (at least one per mixed window).

    Args:
        inp: (N, L, 17, 3) coco17 joints; out: (N, L, 17, 3) h36m17 joints of the same windows.
    Returns:
        (inp, out) with the grafted limbs in both: new arrays, or the given ones when no
        window is mixed. (Per-frame labels such as foot contacts do not follow a grafted leg,
        which is why ``WindowSampler.sample_labels`` never mixes.)
    """
    n = len(out)
    mixed = rng.random(n) < rate
    if n < 2 or not mixed.any():
        return inp, out
    limbs = (rng.random((n, len(LIMBS))) < limb_p) & mixed[:, None]
    lone = mixed & ~limbs.any(1)
    limbs[lone, rng.integers(0, len(LIMBS), int(lone.sum()))] = True
    donor = (np.arange(n) + rng.integers(1, n, n)) % n  # never the window itself
    new_out = graft_limbs(out, out[donor], limbs)
    return _with_limbs(inp, new_out), new_out


def _turns_in_frames(rng: np.random.Generator, frames: np.ndarray, max_degrees: float) -> np.ndarray:
    """One random rotation per window (an axis uniform on the sphere, an angle uniform in
    [0, ``max_degrees``]), fixed in the given body frames: (m, L, 3, 3) frames -> (m, L, 3, 3)
    rotations F R F^T in the joints' axes."""
    axis = rng.normal(size=(len(frames), 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    local = Rotation.from_rotvec(axis * np.radians(rng.uniform(0, max_degrees, (len(frames), 1)))).as_matrix()
    return np.einsum("mlij,mjk,mlhk->mlih", frames, local, frames)


def turn_limbs(rng: np.random.Generator, inp: np.ndarray, out: np.ndarray, rate: float,
               max_degrees: float = 45.0) -> tuple[np.ndarray, np.ndarray]:
    """Arm or leg directions nobody recorded: in a ``rate`` fraction of windows, one limb turned
    rigidly about its root joint (shoulder or hip) by a random rotation, fixed in the limb's body
    frame (chest or pelvis) over the window, so it moves with the body as the recorded limb did.

    The limb's own bend (elbow, knee) and bone lengths stay as recorded; only where the whole
    limb points changes: an axis uniform on the sphere, an angle uniform in [0, ``max_degrees``].

    Args:
        inp: (N, L, 17, 3) coco17 joints; out: (N, L, 17, 3) h36m17 joints of the same windows.
    Returns:
        (inp, out) with the turned limbs in both: new arrays, or the given ones when no window
        is turned.
    """
    n = len(out)
    turned = np.flatnonzero(rng.random(n) < rate)
    if not len(turned):
        return inp, out
    limb = rng.integers(0, len(LIMBS), len(turned))
    chest, pelvis = body_frames(out[turned])
    legs = np.array([chain[0].endswith("hip") for chain in LIMBS.values()])[limb]
    turns = _turns_in_frames(rng, np.where(legs[:, None, None, None], pelvis, chest), max_degrees)
    new_out = out.copy()
    for k, chain in enumerate(LIMBS.values()):
        sel = limb == k
        if not sel.any():
            continue
        R = turns[sel]
        rows = turned[sel]
        limb_windows = out[rows]
        root = limb_windows[:, :, _i(chain[0])]
        for name in chain[1:]:
            j = _i(name)
            new_out[rows, :, j] = root + np.einsum("mlij,mlj->mli", R, limb_windows[:, :, j] - root)
    return _with_limbs(inp, new_out), new_out


def bend_limbs(rng: np.random.Generator, inp: np.ndarray, out: np.ndarray, rate: float,
               max_degrees: float = 45.0, limits: tuple[float, float] = (5.0, 150.0),
               min_bend: float = 15.0) -> tuple[np.ndarray, np.ndarray]:
    """Elbows and knees bent more or less than anyone recorded: in a ``rate`` fraction of windows,
    one limb's lower bone (forearm or shin) turns about its middle joint, in the plane of the
    limb, so the bend changes by an angle uniform in [-``max_degrees``, ``max_degrees``], fixed
    over the window and kept within ``limits`` (degrees; 0 = straight).

    Where the wrist or ankle lands depends on the bend as much as on where the upper bone points,
    which ``turn_limbs`` changes; the held-out error is largest at the wrists. The limb's plane is
    undefined for a straight limb, so only limbs bent by at least ``min_bend`` degrees in every
    frame of the window are eligible (a window with none is left as it is). Bone lengths, the
    upper bone and the rest of the body stay as recorded.

    Args:
        inp: (N, L, 17, 3) coco17 joints; out: (N, L, 17, 3) h36m17 joints of the same windows.
    Returns:
        (inp, out) with the bent limbs in both: new arrays, or the given ones when no window is bent.
    """
    n = len(out)
    chosen = np.flatnonzero(rng.random(n) < rate)
    if not len(chosen):
        return inp, out
    chains = [[_i(name) for name in chain] for chain in LIMBS.values()]
    root, mid, end = (np.array(c) for c in zip(*chains))  # (4,) each
    w = out[chosen]  # (m, L, 17, 3)
    upper = w[:, :, mid] - w[:, :, root]  # (m, L, 4, 3)
    lower = w[:, :, end] - w[:, :, mid]
    cos = (upper * lower).sum(-1) / np.maximum(np.linalg.norm(upper, axis=-1) * np.linalg.norm(lower, axis=-1), 1e-9)
    bend = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))  # (m, L, 4)
    eligible = (bend >= min_bend).all(1)  # (m, 4)
    keep = eligible.any(1)
    if not keep.any():
        return inp, out
    chosen, w, upper, lower, bend, eligible = (a[keep] for a in (chosen, w, upper, lower, bend, eligible))
    # A random eligible limb per window.
    limb = np.argmax(eligible * rng.random(eligible.shape), axis=1)
    rows = np.arange(len(chosen))
    u, l, b = upper[rows, :, limb], lower[rows, :, limb], bend[rows, :, limb]  # (m, L, 3), (m, L)
    delta = rng.uniform(-max_degrees, max_degrees, (len(chosen), 1))
    turn = np.radians(np.clip(b + delta, *limits) - b)  # (m, L): more bend is a positive turn
    axis = np.cross(u, l)
    axis /= np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-12)
    R = Rotation.from_rotvec((axis * turn[..., None]).reshape(-1, 3)).as_matrix().reshape(axis.shape + (3,))
    new_out = out.copy()
    new_out[chosen, :, end[limb]] = w[rows, :, mid[limb]] + np.einsum("mlij,mlj->mli", R, l)
    return _with_limbs(inp, new_out), new_out


UPPER_BODY = [_i(n) for n in ("neck", "head", "head_top", "left_shoulder", "left_elbow", "left_wrist",
                              "right_shoulder", "right_elbow", "right_wrist")]
UPPER_BODY_COCO = [_i(n, "coco17") for n in formats.names("coco17") if not n.endswith(("hip", "knee", "ankle"))]


def lean_torso(rng: np.random.Generator, inp: np.ndarray, out: np.ndarray, rate: float,
               max_degrees: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Upper bodies leaning and twisting as nobody recorded: in a ``rate`` fraction of windows,
    everything above the spine joint (neck, head, face points, arms) turns rigidly about it by a
    random rotation fixed in the pelvis's frame over the window (an axis uniform on the sphere,
    an angle uniform in [0, ``max_degrees``]), so the upper body moves with the hips as recorded.

    Args:
        inp: (N, L, 17, 3) coco17 joints; out: (N, L, 17, 3) h36m17 joints of the same windows
            (the same axes: the face points of ``inp`` turn with the head of ``out``).
    Returns:
        (inp, out) with the turned upper bodies in both: new arrays, or the given ones when no
        window is turned.
    """
    n = len(out)
    turned = np.flatnonzero(rng.random(n) < rate)
    if not len(turned):
        return inp, out
    _, pelvis = body_frames(out[turned])
    R = _turns_in_frames(rng, pelvis, max_degrees)
    pivot = out[turned, :, _i("spine")][:, :, None]  # (m, L, 1, 3)
    new_inp, new_out = inp.copy(), out.copy()
    for arr, idx in ((new_out, UPPER_BODY), (new_inp, UPPER_BODY_COCO)):
        windows = arr[turned]
        windows[:, :, idx] = pivot + np.einsum("mlij,mlkj->mlki", R, windows[:, :, idx] - pivot)
        arr[turned] = windows
    return new_inp, new_out


def new_poses(rng: np.random.Generator, inp: np.ndarray, out: np.ndarray, mix: float = 0.0, turn: float = 0.0,
              bend: float = 0.0, lean: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Every augmentation above at its rate (0: not drawn at all, so earlier random streams
    repeat), in a fixed order: limbs grafted (``mix_windows``), limbs turned (``turn_limbs``),
    elbows and knees bent (``bend_limbs``), upper bodies turned (``lean_torso``).

    Args:
        inp: (N, L, 17, 3) coco17 joints; out: (N, L, 17, 3) h36m17 joints of the same windows.
    Returns:
        (inp, out): new arrays, or the given ones when nothing changed.
    """
    for make, rate in ((mix_windows, mix), (turn_limbs, turn), (bend_limbs, bend), (lean_torso, lean)):
        if rate > 0:
            inp, out = make(rng, inp, out, rate)
    return inp, out
