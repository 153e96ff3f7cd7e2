"""Limb grafting for the lifter's training (lift3d.lifting.augment)."""
import numpy as np
import pytest

from lift3d import formats
from lift3d.lifting.augment import LIMBS, body_frames, graft_limbs, mix_windows, turn_limbs

H = "h36m17"


def _windows(rng, n=6, length=9):
    """Smoothly moving random bodies: a random pose per window plus a slow drift per joint."""
    base = rng.normal(0, 0.3, (n, 1, 17, 3))
    drift = rng.normal(0, 0.02, (n, 1, 17, 3)) * np.arange(length)[None, :, None, None]
    return base + drift


def _bone(x, parent, child):
    return x[..., formats.index(H, child), :] - x[..., formats.index(H, parent), :]


def _coco_of(out):
    inp = np.zeros_like(out)
    for n in formats.names("coco17"):
        if n in formats.names(H):
            inp[:, :, formats.index("coco17", n)] = out[:, :, formats.index(H, n)]
    return inp


def test_a_grafted_limb_moves_as_the_donors_in_the_hosts_body_at_the_hosts_length():
    rng = np.random.default_rng(0)
    host, donor = _windows(rng), _windows(rng)
    limbs = np.zeros((6, 4), dtype=bool)
    limbs[:3, 0] = True  # left arm in the first three windows
    limbs[3:, 3] = True  # right leg in the others
    out = graft_limbs(host, donor, limbs)
    chest_h, pelvis_h = body_frames(out)
    chest_d, pelvis_d = body_frames(donor)
    for rows, name, Fh, Fd in [(slice(0, 3), "left_arm", chest_h, chest_d),
                               (slice(3, 6), "right_leg", pelvis_h, pelvis_d)]:
        chain = LIMBS[name]
        for parent, child in zip(chain[:-1], chain[1:]):
            b_out, b_host, b_don = (_bone(x[rows], parent, child) for x in (out, host, donor))
            np.testing.assert_allclose(np.linalg.norm(b_out, axis=-1), np.linalg.norm(b_host, axis=-1), atol=1e-12)
            local_out = np.einsum("nlji,nlj->nli", Fh[rows], b_out) / np.linalg.norm(b_out, axis=-1, keepdims=True)
            local_don = np.einsum("nlji,nlj->nli", Fd[rows], b_don) / np.linalg.norm(b_don, axis=-1, keepdims=True)
            np.testing.assert_allclose(local_out, local_don, atol=1e-9)
    moved = {formats.index(H, n) for n in LIMBS["left_arm"][1:] + LIMBS["right_leg"][1:]}
    still = [j for j in range(17) if j not in moved]
    np.testing.assert_array_equal(out[:, :, still], host[:, :, still])
    # A window's own limbs grafted onto itself change nothing.
    np.testing.assert_allclose(graft_limbs(host, host, np.ones((6, 4), dtype=bool)), host, atol=1e-12)


def test_mixing_grafts_the_chosen_fraction_and_keeps_input_and_output_one_body():
    rng = np.random.default_rng(1)
    out = _windows(rng, n=400)
    inp = _coco_of(out)
    new_inp, new_out = mix_windows(np.random.default_rng(2), inp, out, rate=0.5)
    changed = np.abs(new_out - out).max(axis=(1, 2, 3)) > 1e-9
    assert 0.4 < changed.mean() < 0.6
    for n in formats.names("coco17"):
        if n in formats.names(H):
            np.testing.assert_array_equal(new_inp[:, :, formats.index("coco17", n)],
                                          new_out[:, :, formats.index(H, n)])
    face = [formats.index("coco17", n) for n in ("nose", "left_eye", "right_ear")]
    np.testing.assert_array_equal(new_inp[:, :, face], inp[:, :, face])
    np.testing.assert_array_equal(out, _windows(np.random.default_rng(1), n=400))  # inputs untouched
    same_inp, same_out = mix_windows(np.random.default_rng(2), inp, out, rate=0.0)
    assert same_out is out and same_inp is inp


def test_a_turned_limb_keeps_its_bend_and_turns_by_one_rotation_in_its_body_frame():
    """``turn_limbs``: one limb per chosen window turns about its root joint by a rotation of at
    most the given angle, the same in the chest's (arms) or pelvis's (legs) frame on every
    frame; bone lengths, the elbow or knee angle and every other joint stay as recorded."""
    rng = np.random.default_rng(4)
    out = _windows(rng, n=300, length=7)
    inp = _coco_of(out)
    new_inp, new_out = turn_limbs(np.random.default_rng(5), inp, out, rate=0.5, max_degrees=40.0)
    moved = np.abs(new_out - out).max(axis=(1, 3)) > 1e-9  # (n, 17)
    assert 0.4 < moved.any(1).mean() < 0.6
    angles = []
    for i in np.flatnonzero(moved.any(1)):
        (name, chain), = [(k, c) for k, c in LIMBS.items() if moved[i, formats.index(H, c[1])]]
        assert set(np.flatnonzero(moved[i])) == {formats.index(H, n) for n in chain[1:]}
        F = body_frames(out[i])[int(name.endswith("leg"))]  # (L, 3, 3)
        bones = [(chain[0], chain[1]), (chain[1], chain[2])]
        b0 = np.stack([_bone(out[i], p, c) for p, c in bones], 1)  # (L, 2, 3)
        b1 = np.stack([_bone(new_out[i], p, c) for p, c in bones], 1)
        np.testing.assert_allclose(np.linalg.norm(b1, axis=-1), np.linalg.norm(b0, axis=-1), atol=1e-12)
        bend = lambda b: np.einsum("lk,lk->l", b[:, 0], b[:, 1])
        np.testing.assert_allclose(bend(b1), bend(b0), atol=1e-12)
        # Each frame's turn, in the body frame: the rotation taking the two local bones to the new ones.
        l0, l1 = np.einsum("lji,lbj->lbi", F, b0), np.einsum("lji,lbj->lbi", F, b1)
        Rs = []
        for a, b in zip(l0, l1):
            u, _, vt = np.linalg.svd(np.vstack([b, np.cross(*b)]).T @ np.vstack([a, np.cross(*a)]))
            Rs.append(u @ np.diag([1, 1, np.linalg.det(u @ vt)]) @ vt)
        np.testing.assert_allclose(np.array(Rs), np.broadcast_to(Rs[0], (len(Rs), 3, 3)), atol=1e-9)
        angles.append(np.degrees(np.arccos(np.clip((np.trace(Rs[0]) - 1) / 2, -1, 1))))
    assert max(angles) <= 40.0 + 1e-6 and max(angles) > 30.0
    np.testing.assert_array_equal(new_inp, _coco_of(new_out))
    same_inp, same_out = turn_limbs(np.random.default_rng(5), inp, out, rate=0.0)
    assert same_out is out and same_inp is inp


@pytest.mark.parametrize("rate", [0.5, 1.0])
def test_the_sampler_mixes_real_windows_without_changing_bone_lengths(rate, shared_data):
    from lift3d.lifting.train import WindowSampler, load_sequences

    seqs = load_sequences(shared_data / "cmu-mocap", subjects={"01"}, progress=False)[:4]
    sampler = WindowSampler(seqs)
    X, Y = sampler.sample(np.random.default_rng(3), 64, 28, mix=rate)
    assert X.shape == (64, 28, 17, 3) and Y.shape == (64, 28, 17, 3) and np.isfinite(X).all()
    for chain in LIMBS.values():
        for parent, child in zip(chain[:-1], chain[1:]):
            length = np.linalg.norm(_bone(Y, parent, child), axis=-1)  # (64, 28): constant in a window
            assert np.abs(length - length[:, :1]).max() < 1e-3
