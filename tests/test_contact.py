"""Foot contacts: mocap labels, the contact network, and the fitter holding planted feet."""
import numpy as np
import pytest
import torch

from lift3d import formats
from lift3d.lifting import contact, data

LA, RA = (formats.index("h36m17", f"{s}_ankle") for s in ("left", "right"))


def _standing(T: int, floor: float = 0.0) -> np.ndarray:
    """(T, 17, 3) a still h36m17 body standing with its ankles 8 cm above ``floor``."""
    j = np.zeros((T, 17, 3))
    j[..., 1] = floor + 0.9
    j[:, LA] = [0.1, floor + 0.08, 0.0]
    j[:, RA] = [-0.1, floor + 0.08, 0.0]
    return j


def test_labels_follow_a_planted_foot_on_any_floor():
    T, fps = 90, 30.0
    for floor in (0.0, 1.3):  # takes whose floor is not at y = 0 (a stage, a broken conversion)
        j = _standing(T, floor)
        swing = np.arange(30, 45)
        j[swing, LA, 2] += np.linspace(0, 0.6, len(swing))  # the left foot steps forward...
        j[swing, LA, 1] += 0.1 * np.sin(np.linspace(0, np.pi, len(swing)))  # ...through the air
        j[45:, LA, 2] += 0.6
        lab = contact.contact_labels(j, fps)
        assert lab.shape == (T, 2)
        assert lab[:, 1].all()  # the right foot never moves
        assert not lab[33:43, 0].any()  # the left one is in the air
        assert lab[:28, 0].all() and lab[48:, 0].all()  # and planted before and after
    # A foot held still high above the floor (the top of a kick) is not planted.
    j = _standing(T)
    j[:, LA, 1] = 0.5
    assert not contact.contact_labels(j, fps)[:, 0].any()


def test_contact_net_any_length_missing_frames_and_sides():
    torch.manual_seed(0)
    net = contact.ContactNet(channels=16).eval()
    assert net.receptive_field == 27
    rng = np.random.default_rng(0)
    cam = data.sample_camera(rng, np.zeros((1, 17, 3)))
    for T in (1, 5, 40):
        kp = np.concatenate([rng.uniform(100, 500, (T, 17, 2)), np.ones((T, 17, 1))], -1)
        kp[T // 2] = 0.0  # nobody detected in this frame
        p = contact.contact_probabilities(kp, cam, net)
        assert p.shape == (T, 2) and np.isfinite(p).all()
        assert (p[T // 2] == 0).all() and ((p >= 0) & (p <= 1)).all()


def test_shipped_contact_weights_find_planted_feet_in_held_out_motion(shared_data):
    """Held-out subject 02 (never trained on), walking and running takes through random
    cameras with detector-like noise. Measured 2026-12-01 with the shipped weights: F1 0.872,
    accuracy 0.790 (precision 0.984, recall 0.784); bounds 0.80 / 0.70."""
    from lift3d.lifting.train import FPS, HELD_OUT, load_sequences
    from lift3d.lifting.train_contact import scores

    if not contact.WEIGHTS.is_file():
        pytest.fail(f"shipped weights missing: {contact.WEIGHTS}")
    net = contact.load_contact_net()
    rng = np.random.default_rng(7)
    logits, labels = [], []
    for seq in load_sequences(shared_data / "cmu-mocap", subjects={HELD_OUT}, progress=False):
        if not seq["name"].startswith("asfamc"):
            continue
        cam = data.sample_camera(rng, seq["out"])
        uv, depth = data.project(seq["inp"], cam)
        p = contact.contact_probabilities(data.corrupt(rng, uv, depth, cam.image_size), cam, net)
        logits.append(np.log(p.clip(1e-6, 1 - 1e-6) / (1 - p).clip(1e-6)))
        labels.append(contact.contact_labels(seq["out"], FPS))
    s = scores(torch.as_tensor(np.concatenate(logits)), torch.as_tensor(np.concatenate(labels), dtype=torch.float32))
    assert s["f1"] > 0.80 and s["accuracy"] > 0.70, s



def test_fit_holds_the_planted_feet_the_network_finds(anny, held_out_clip):
    """Held-out real walking (CMU 02_01) retargeted onto Anny, seen by a random camera with
    noisy 2D and the lifter's target: with the learned contacts the fitted soles move less on
    the frames where the truth's feet are planted than with contacts from the fitted feet's own
    motion. Measured 2026-12-01: 4.8 against 8.2 mm/frame; bounds 0.8x and 7 mm/frame."""
    from lift3d.fitting import fit_body, ground
    from lift3d.fitting.fit import FitOptions
    from lift3d.lifting.lift import lift
    from lift3d.types import Keypoints2D

    names = anny.keypoint_names
    kp_w = held_out_clip("asfamc/02_01", slice(0, 60), [0.1, 0.1, -0.1, 0.0, 0.0, 0.1])
    rng = np.random.default_rng(1)
    cam = data.sample_camera(rng, kp_w)
    uv, depth = data.project(kp_w, cam)
    noisy = data.corrupt(rng, formats.convert_points(uv, names, "openpose25"),
                         formats.convert_points(depth[..., None], names, "openpose25")[..., 0], cam.image_size, 0.5)
    k2 = Keypoints2D(noisy[:, None], "openpose25", 30, cam.image_size)
    target = lift(k2, cam)
    soles = [names.index(n) for n in ("left_heel", "right_heel", "left_big_toe", "right_big_toe")]
    planted = ground.detect_contacts(kp_w[:, soles], np.array([0.0, 1.0, 0.0]), 30.0)
    planted = planted[1:] & planted[:-1]
    slide = {}
    for mode in ("learned", "motion"):
        fit = fit_body(k2, cam, target, model=anny, options=FitOptions(contacts=mode), progress=False)
        step = np.linalg.norm(np.diff(fit.keypoints3d(names, model=anny)[:, soles], axis=0), axis=-1)
        slide[mode] = step[planted].mean() * 1000
    assert slide["learned"] < 0.8 * slide["motion"] and slide["learned"] < 7.0, slide


def test_networks_see_the_same_motion_at_any_frame_rate(shared_data):
    """The same real motion (held-out CMU 02_01) filmed at 30 and at 60 fps: the lifter and the
    contact network give the same answers at the shared instants, because other rates are
    resampled to their 30 fps; fed 60 fps frames as they are, the contact network reads every
    foot as twice as slow (measured 2026-12-01: mean probability change 0.103)."""
    from lift3d.lifting.lift import lift
    from lift3d.lifting.train import load_sequences
    from lift3d.types import Keypoints2D

    seq = next(s for s in load_sequences(shared_data / "cmu-mocap", subjects={"02"}, progress=False)
               if s["name"] == "asfamc/02_01")
    cam = data.sample_camera(np.random.default_rng(3), seq["out"])
    kps = {}
    for fps in (30.0, 60.0):
        world = data.resample_frames(seq["inp"], 30.0, fps)
        uv, depth = data.project(world, cam)
        kp = np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], -1)
        kps[fps] = Keypoints2D(kp[:, None], "coco17", fps, cam.image_size)
    j30, j60 = (lift(kps[f], cam).data[:, 0] for f in (30.0, 60.0))
    rel = lambda j: j - j[:, data.ROOT:data.ROOT + 1]  # noqa: E731
    assert np.linalg.norm(rel(j60[::2]) - rel(j30), axis=-1).mean() < 0.002
    p30, p60 = contact.foot_contacts(kps[30.0], cam)[:, 0], contact.foot_contacts(kps[60.0], cam)[:, 0]
    assert np.abs(p60[::2] - p30).mean() < 0.02
    raw = contact.contact_probabilities(kps[60.0].data[:, 0], cam)[::2]
    assert np.abs(raw - p30).mean() > 0.05
