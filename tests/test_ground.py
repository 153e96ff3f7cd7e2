"""Foot contacts, the floor and the world frame of a fit."""
import numpy as np
import roma
import torch

from lift3d import formats
from lift3d.fitting import fit_body, ground, losses
from lift3d.types import Camera, Keypoints2D


def _walk(T=90, fps=30.0, seed=0):
    """Heel and toe of two feet walking along +x on a floor y = 0 (world, Y up): each foot is
    planted for 0.6 s, then swings 0.3 s; plus the true contact flags."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / fps
    feet = np.zeros((T, 4, 3))
    contact = np.zeros((T, 4), dtype=bool)
    for side, (z, phase) in enumerate([(0.1, 0.0), (-0.1, 0.45)]):
        cyc = ((t + phase) % 0.9) / 0.9
        step = np.floor((t + phase) / 0.9)
        swing = cyc > 2 / 3
        s = (cyc[swing] - 2 / 3) * 3  # 0..1 through the swing
        x = 0.8 * step + np.where(swing, 0.8 * np.interp(cyc, [2 / 3, 1], [0, 1]), 0.0)
        y = np.zeros(T)
        y[swing] = 0.12 * np.sin(np.pi * s)
        for k, dx in enumerate([0.0, 0.2]):  # heel, toe
            feet[:, 2 * side + k] = np.stack([x + dx, y, np.full(T, z)], -1)
            contact[:, 2 * side + k] = ~swing
    feet += rng.normal(0, 0.003, feet.shape)
    return feet, contact


def _tilted_camera_frame(points):
    """World points seen by a camera 3 m away, 1.4 m high, looking down 15 degrees."""
    R = roma.rotvec_to_rotmat(torch.tensor([np.radians(-15), 0.3, 0.0], dtype=torch.float64)).numpy()
    R = R @ np.diag([1.0, -1.0, -1.0])  # world Y up -> camera y down, facing the camera
    t = np.array([-1.0, 1.2, 3.5])
    return points @ R.T + t, R, t


def test_floor_and_contacts_from_walking_feet():
    feet_w, truth = _walk()
    feet_c, R, t = _tilted_camera_frame(feet_w)
    up_true = R @ np.array([0.0, 1.0, 0.0])
    up_guess = up_true + np.array([0.1, 0.05, -0.08])  # a torso that leans a little
    up_guess /= np.linalg.norm(up_guess)
    plane, contact = ground.estimate_ground(feet_c, up_guess, fps=30.0)
    angle = np.degrees(np.arccos(np.clip(plane.normal @ up_true, -1, 1)))
    assert angle < 2.0, angle
    floor_point_c = R @ np.zeros(3) + t  # the world origin lies on the floor
    assert abs(plane.height(floor_point_c)) < 0.01
    agree = (contact == truth).mean()
    assert agree > 0.85, agree
    assert contact[truth].mean() > 0.8 and (~contact[~truth]).mean() > 0.8


def test_known_up_levels_the_floor_of_feet_that_barely_move():
    # Feet side by side stepping in place: the contacts leave the floor's tilt free, and a
    # leaning torso's guess tilts it; the camera's known up holds it, the feet give its height.
    feet_w, truth = _walk()
    feet_w, truth = feet_w[:, [0, 2]], truth[:, [0, 2]]  # the heels, 0.2 m apart along z
    feet_w[..., 0] = 0.01 * np.sin(np.arange(len(feet_w)) / 5.0)[:, None]
    feet_c, R, t = _tilted_camera_frame(feet_w)
    up_true = R @ np.array([0.0, 1.0, 0.0])
    # The torso leans sideways, about the line the heels are on.
    lean = roma.rotvec_to_rotmat(torch.tensor(R @ [0.0, 0.0, np.radians(12.0)])).numpy()
    guessed, _ = ground.estimate_ground(feet_c, lean @ up_true, fps=30.0)
    known, contact = ground.estimate_ground(feet_c, up_true, fps=30.0, up_known=True)
    tilt = lambda p: np.degrees(np.arccos(np.clip(p.normal @ up_true, -1, 1)))  # noqa: E731
    assert tilt(guessed) > 5.0 and tilt(known) < 1e-6
    assert abs(known.height(t)) < 0.01  # the world origin (t in the camera frame) is on the floor
    assert (contact == truth).mean() > 0.85


def test_prior_strength_decides_between_the_feet_and_the_torso():
    """``prior_m`` (FitOptions.floor_prior_m in a fit) sets how far the floor follows the torso's
    up rather than the contacts: weak, the walking feet level it; strong, the guess does."""
    feet_w, truth = _walk()
    feet_c, R, t = _tilted_camera_frame(feet_w)
    up_true = R @ np.array([0.0, 1.0, 0.0])
    guess = up_true + np.array([0.1, 0.05, -0.08])
    guess /= np.linalg.norm(guess)
    angle = lambda a, b: np.degrees(np.arccos(np.clip(a @ b, -1, 1)))  # noqa: E731
    weak, _ = ground.estimate_ground(feet_c, guess, fps=30.0, contact=truth, prior_m=0.05)
    strong, _ = ground.estimate_ground(feet_c, guess, fps=30.0, contact=truth, prior_m=5.0)
    assert angle(weak.normal, up_true) < 2.0 and angle(strong.normal, guess) < 0.5
    from lift3d.fitting import FitOptions

    assert FitOptions().floor_prior_m == 0.2  # a monocular fit's feet are trusted less


def test_plane_prior_fixes_tilt_when_contacts_form_a_line():
    # Contacts along one line only (feet side by side, not moving): the tilt about that line
    # is unobservable from the points; the torso's up direction decides it.
    pts = np.stack([np.linspace(-0.2, 0.2, 20), np.zeros(20), np.full(20, 3.0)], -1)
    up = np.array([0.0, -np.cos(0.2), np.sin(0.2)])
    plane = ground.fit_plane(pts, up)
    assert plane.normal @ up > 0.999


def test_foot_terms_lower_their_own_error():
    feet_w, truth = _walk(T=30)
    noisy = torch.tensor(feet_w + np.random.default_rng(3).normal(0, 0.01, feet_w.shape), requires_grad=True)
    contact = torch.as_tensor(truth)
    normal, offset = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    opt = torch.optim.Adam([noisy], lr=2e-3)
    before_slide = losses.foot_sliding(noisy, contact).item()
    before_ground = losses.ground_contact(noisy, contact, normal, offset).item()
    for _ in range(100):
        loss = losses.foot_sliding(noisy, contact) + losses.ground_contact(noisy, contact, normal, offset)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses.foot_sliding(noisy, contact).item() < 0.2 * before_slide
    assert losses.ground_contact(noisy, contact, normal, offset).item() < 0.2 * before_ground
    # Penetration is penalised even without contact.
    below = torch.tensor([[[0.0, -0.05, 0.0]]], dtype=torch.float64)
    assert losses.ground_contact(below, torch.zeros(1, 1), normal, offset).item() > 0


def test_world_fit_stands_on_the_floor_and_projects_like_the_camera_fit(anny):
    """A person standing on a floor seen by a tilted camera: the world fit puts the soles at
    y = 0, keeps Y up, and projects exactly like the camera-frame fit."""
    T = 12
    pose = anny.rest_pose(T).clone()
    arms = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.0, 0.3]) * torch.sin(torch.linspace(0, 3, T))[:, None])
    pose[:, anny.body_joints[5]] = arms
    with torch.no_grad():
        out = anny(pose, vertices=True)
        lift = -out.vertices[:, :, 1].min()
        kp_w = out.keypoints.double().numpy() + np.array([0.0, lift, 0.0])
    kp_c, R, t = _tilted_camera_frame(kp_w)
    cam = Camera.from_fov(640, 480, 60)
    uv = cam.project(kp_c)
    op25 = formats.convert(np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], -1), anny.keypoint_names,
                           "openpose25")
    k2 = Keypoints2D(op25[:, None], "openpose25", 30, (640, 480))
    world = fit_body(k2, cam, model=anny, progress=False, world=True)
    assert world.frame == "world"
    assert world.quality["foot_contact"].mean() > 0.5  # standing: most foot points in contact
    sole = world.vertices()[..., 1].min(1)
    assert np.all(np.abs(sole) < 0.04), sole
    # The world camera sees the world fit where the detections are.
    uv_world = world.camera.project(world.keypoints3d("openpose25"))
    ok = op25[..., 2] > 0
    assert np.abs(uv_world - op25[..., :2])[ok].mean() < 3.0
    up_in_camera = world.camera.R @ np.array([0.0, 1.0, 0.0])
    true_up = R @ np.array([0.0, 1.0, 0.0])
    assert np.degrees(np.arccos(np.clip(up_in_camera @ true_up, -1, 1))) < 8.0


def test_image_speed_sees_a_planted_foot_despite_depth_jitter():
    """A planted foot whose fitted depth jitters by centimetres is fast in 3D but still in 2D."""
    T, fps, f = 30, 30.0, 800.0
    rng = np.random.default_rng(0)
    depth = 4.0 + rng.normal(0, 0.03, (T, 1))  # the fit's depth jitter
    uv = np.concatenate([np.full((T, 1, 2), 300.0) + rng.normal(0, 0.3, (T, 1, 2)), np.ones((T, 1, 1))], -1)
    pts = np.concatenate([(uv[..., :2] - 320) / f * depth[..., None], depth[..., None]], -1)
    speed2d = ground.image_speed(uv, depth, f, fps)
    assert np.nanmax(speed2d) < 0.2  # m/s: planted (the contact threshold is 0.3)
    up = np.array([0.0, -1.0, 0.0])
    assert ground.detect_contacts(pts, up, fps).mean() < 0.5  # the 3D speed misses it
    assert ground.detect_contacts(pts, up, fps, speed=speed2d).all()
    uv[10:, 0, 2] = 0.0  # not detected: NaN, and the 3D speed decides
    assert np.isnan(ground.image_speed(uv, depth, f, fps)[12:]).all()
