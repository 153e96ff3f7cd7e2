"""Limb grafting for the lifter's training (lift3d.lifting.augment)."""
import numpy as np
import pytest

from lift3d import formats
from lift3d.lifting.augment import (LIMBS, bend_limbs, body_frames, graft_limbs, lean_torso, mix_windows, new_poses,
                                    turn_limbs)

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


def _bend_degrees(x, chain):
    """(n, L) angle at the middle joint of ``chain`` (0 = straight), degrees."""
    u, l = _bone(x, chain[0], chain[1]), _bone(x, chain[1], chain[2])
    cos = np.einsum("...k,...k->...", u, l) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(l, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def test_a_bent_limb_changes_only_its_bend_by_one_angle_within_the_limits():
    """``bend_limbs``: one elbow or knee per chosen window bends by the same change on every
    frame (clipped to the limits), its lower bone staying in the limb's plane and at its length;
    the upper bone and every other joint stay as recorded, and limbs too straight to have a
    plane are left alone."""
    rng = np.random.default_rng(8)
    out = _windows(rng, n=400, length=7)
    inp = _coco_of(out)
    new_inp, new_out = bend_limbs(np.random.default_rng(9), inp, out, rate=0.5, max_degrees=40.0,
                                  limits=(5.0, 150.0), min_bend=15.0)
    moved = np.abs(new_out - out).max(axis=(1, 3)) > 1e-9  # (n, 17)
    assert 0.3 < moved.any(1).mean() < 0.6
    changes = []
    for i in np.flatnonzero(moved.any(1)):
        (chain,), = [(c,) for c in LIMBS.values() if moved[i, formats.index(H, c[2])]]
        assert set(np.flatnonzero(moved[i])) == {formats.index(H, chain[2])}  # only the wrist or ankle
        before, after = _bend_degrees(out[i], chain), _bend_degrees(new_out[i], chain)
        assert before.min() >= 15.0
        assert after.min() >= 5.0 - 1e-6 and after.max() <= 150.0 + 1e-6
        np.testing.assert_allclose(np.linalg.norm(_bone(new_out[i], chain[1], chain[2]), axis=-1),
                                   np.linalg.norm(_bone(out[i], chain[1], chain[2]), axis=-1), atol=1e-12)
        normal = np.cross(_bone(out[i], chain[0], chain[1]), _bone(out[i], chain[1], chain[2]))
        np.testing.assert_allclose(np.einsum("lk,lk->l", normal, _bone(new_out[i], chain[1], chain[2])), 0.0,
                                   atol=1e-9)
        change = after - before
        inside = (after > 5.0 + 1e-6) & (after < 150.0 - 1e-6)  # frames not clipped
        if inside.sum() >= 2:
            np.testing.assert_allclose(change[inside], change[inside][0], atol=1e-6)
            changes.append(abs(change[inside][0]))
    assert max(changes) <= 40.0 + 1e-6 and max(changes) > 30.0
    np.testing.assert_array_equal(new_inp, _coco_of(new_out))
    straight = out.copy()  # every limb straight: nothing to bend
    for chain in LIMBS.values():
        a, b = (formats.index(H, n) for n in chain[:2])
        straight[:, :, formats.index(H, chain[2])] = 2 * straight[:, :, b] - straight[:, :, a]
    same_inp, same_out = bend_limbs(np.random.default_rng(9), inp, straight, rate=1.0)
    assert same_out is straight and same_inp is inp


def test_a_leaning_upper_body_turns_rigidly_about_the_spine_by_one_rotation_in_the_pelvis_frame():
    """``lean_torso``: in the chosen windows the neck, head, arms and the input's face points turn
    about the spine joint by one rotation (at most the given angle) in the pelvis's frame; the
    hips, legs, spine and pelvis stay as recorded, and every distance within the upper body too."""
    rng = np.random.default_rng(10)
    out = _windows(rng, n=200, length=6)
    inp = _coco_of(out)
    face = [formats.index("coco17", n) for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
    inp[:, :, face] = out[:, :, [formats.index(H, "head")]] + rng.normal(0, 0.05, (200, 1, 5, 3))
    new_inp, new_out = lean_torso(np.random.default_rng(11), inp, out, rate=0.5, max_degrees=30.0)
    upper = [formats.index(H, n) for n in ("neck", "head", "head_top", "left_shoulder", "left_elbow", "left_wrist",
                                           "right_shoulder", "right_elbow", "right_wrist")]
    moved = np.abs(new_out - out).max(axis=(1, 3)) > 1e-9  # (n, 17)
    assert 0.4 < moved.any(1).mean() < 0.6
    assert set(np.flatnonzero(moved.any(0))) == set(upper)
    spine = formats.index(H, "spine")
    angles = []
    for i in np.flatnonzero(moved.any(1)):
        _, F = body_frames(out[i])  # (L, 3, 3): the pelvis frame, unmoved
        a = np.einsum("lji,lkj->lki", F, out[i][:, upper] - out[i][:, [spine]])
        b = np.einsum("lji,lkj->lki", F, new_out[i][:, upper] - new_out[i][:, [spine]])
        Rs = []
        for p, q in zip(a, b):
            u, _, vt = np.linalg.svd(q.T @ p)
            Rs.append(u @ np.diag([1, 1, np.linalg.det(u @ vt)]) @ vt)
            np.testing.assert_allclose(p @ Rs[-1].T, q, atol=1e-9)  # rigid
        np.testing.assert_allclose(np.array(Rs), np.broadcast_to(Rs[0], (len(Rs), 3, 3)), atol=1e-9)
        angles.append(np.degrees(np.arccos(np.clip((np.trace(Rs[0]) - 1) / 2, -1, 1))))
        # The face points turn with the head: their offsets from it keep their lengths.
        head = formats.index(H, "head")
        np.testing.assert_allclose(np.linalg.norm(new_inp[i][:, face] - new_out[i][:, [head]], axis=-1),
                                   np.linalg.norm(inp[i][:, face] - out[i][:, [head]], axis=-1), atol=1e-9)
    assert max(angles) <= 30.0 + 1e-6 and max(angles) > 22.0
    np.testing.assert_array_equal(np.delete(new_inp, face, axis=2), np.delete(_coco_of(new_out), face, axis=2))


def test_new_poses_applies_each_augmentation_in_order_and_none_at_rate_zero():
    rng = np.random.default_rng(12)
    out = _windows(rng, n=40, length=5)
    inp = _coco_of(out)
    same_inp, same_out = new_poses(np.random.default_rng(1), inp, out)
    assert same_inp is inp and same_out is out
    got = new_poses(np.random.default_rng(1), inp, out, mix=0.5, bend=0.5, lean=0.5)
    r = np.random.default_rng(1)
    want = lean_torso(r, *bend_limbs(r, *mix_windows(r, inp, out, 0.5), 0.5), 0.5)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


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
