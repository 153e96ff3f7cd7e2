"""Body-worn IMUs: files, synthesis, alignment to a fit, and the fitter's IMU terms."""
import numpy as np
import pytest
import roma
import torch

import lift3d
from lift3d.fitting import losses
from lift3d.fusion.imu import (GRAVITY, SPARSE6, IMUData, align_imus, segment_rotations,
                               synthesize_imu)
from lift3d.io_utils import Lift3DError, LoadError
from lift3d.rotations import rotation_angle


def angle_deg(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.degrees(rotation_angle(A, B))


def smooth_motion(model, T: int, seed: int = 1, amplitude: float = 0.6) -> lift3d.BodyFit:
    """Every joint swinging sinusoidally at its own rate (a world-frame fit)."""
    rng = np.random.default_rng(seed)
    J = model.num_joints
    t = np.arange(T)[:, None, None, None] / 30.0
    rv = amplitude * rng.standard_normal((1, 1, J, 3)) * np.sin(
        2 * np.pi * rng.uniform(0.2, 1.0, (1, 1, J, 3)) * t + rng.uniform(0, 6, (1, 1, J, 3)))
    pose = roma.rotvec_to_rotmat(torch.tensor(rv)).numpy()
    transl = np.stack([0.3 * np.sin(np.arange(T) / 20), np.zeros(T), 0.2 * np.arange(T) / 30], -1)
    return lift3d.BodyFit("anny", pose, np.zeros((1, 6)), transl[:, None], 30.0, frame="world")


@pytest.fixture(scope="module")
def motion(anny):
    return smooth_motion(anny, 240)


def test_alignment_recovers_mounting_heading_and_drift(anny, motion):
    imu, Q, M = synthesize_imu(motion, model=anny, seed=3, heading_drift_deg_per_min=20.0)
    idx = [anny.joint_names.index(s) for s in SPARSE6["anny"]]
    G = segment_rotations(motion.pose[:, 0], anny.parents, idx)
    al = align_imus(imu, G)
    assert angle_deg(al.M, M).max() < 1.0
    assert angle_deg(al.Q, Q).mean() < 1.0
    assert al.residual_deg.max() < 3.0  # ~ the 1 degree per-axis sensor noise
    # Down-weighting a segment the video did not see keeps the alignment.
    w = np.ones((imu.num_frames, len(idx)))
    w[:120, 0] = 0.0
    assert angle_deg(align_imus(imu, G, w).M, M).max() < 1.5


def test_known_up_takes_out_the_fits_lean(anny, motion):
    # A monocular fit leans the whole body 6 degrees towards the camera; the alignment from its
    # segment rotations leans the IMU world with it, unless the camera knows its up direction.
    imu, Q, M = synthesize_imu(motion, model=anny, seed=4)
    idx = [anny.joint_names.index(s) for s in SPARSE6["anny"]]
    lean = roma.rotvec_to_rotmat(torch.tensor([np.radians(6.0), 0.0, 0.0])).numpy()
    G = lean @ segment_rotations(motion.pose[:, 0], anny.parents, idx)
    z = np.array([0.0, 0.0, 1.0])
    up = Q[0].T @ z  # the world's up in the fit's axes (the drift turns only the heading)

    def tilt_deg(al):
        return np.degrees(np.arccos(np.clip(al.Q.transpose(0, 2, 1)[:, :, 2] @ up, -1, 1)))

    free = align_imus(imu, G, mountings=M)
    levelled = align_imus(imu, G, mountings=M, up=up * 2.0)  # any length
    assert 5.0 < tilt_deg(free).mean() < 7.0
    assert tilt_deg(levelled).max() < 1e-6
    # The heading still comes from the fit: within the sensors' noise of the truth's.
    heading = Q @ levelled.Q.transpose(0, 2, 1)  # a turn about +Z where the tilt is right
    assert np.degrees(np.abs(np.arctan2(heading[:, 1, 0], heading[:, 0, 0]))).mean() < 1.5
    assert tilt_deg(align_imus(imu, G, up=up)).max() < 1e-6  # mountings estimated too
    with pytest.raises(Lift3DError, match="up direction"):
        align_imus(imu, G, mountings=M, up=np.zeros(3))


def test_static_accelerometer_reads_gravity_upwards(anny):
    still = lift3d.BodyFit("anny", np.tile(np.eye(3), (20, 1, anny.num_joints, 1, 1)), np.zeros((1, 6)),
                           np.zeros((20, 1, 3)), 30.0, frame="world")
    imu, Q, M = synthesize_imu(still, model=anny, acceleration_noise=0.0, orientation_noise_deg=0.0)
    f_world = (Q.transpose(0, 2, 1)[:, None] @ imu.orientation @ imu.acceleration[..., None])[..., 0]
    assert np.allclose(f_world, [0.0, GRAVITY, 0.0], atol=1e-6)  # lift3d world: Y up


def test_npz_and_csv_files(tmp_path, anny, motion):
    imu, _, _ = synthesize_imu(motion.subset(slice(0, 60)), model=anny)
    imu.save(tmp_path / "imu.npz")
    back = IMUData.load(tmp_path / "imu.npz")
    assert back.segments == imu.segments and np.abs(back.orientation - imu.orientation).max() < 1e-9
    assert np.allclose(back.acceleration, imu.acceleration)
    # CSV at 60 Hz with jittered time stamps, resampled to the 30 fps video.
    t60 = np.arange(119) / 60.0 + np.random.default_rng(0).uniform(-2e-3, 2e-3, 119)
    t60[0] = 0.0
    fine = imu.resampled(60.0, 119)
    q = roma.rotmat_to_unitquat(torch.as_tensor(fine.orientation)).numpy()[..., [3, 0, 1, 2]]
    head = ["time"] + [f"{s}.q{c}" for s in imu.segments for c in "wxyz"] + \
        [f"{s}.a{c}" for s in imu.segments for c in "xyz"]
    rows = [[t60[k]] + list(q[k].ravel()) + list(fine.acceleration[k].ravel()) for k in range(119)]
    text = ",".join(head) + "\n" + "\n".join(",".join(f"{v:.9f}" for v in r) for r in rows) + "\n"
    (tmp_path / "imu.csv").write_text(text)
    csv = IMUData.load(tmp_path / "imu.csv", fps=30.0)
    assert csv.fps == 30.0 and csv.segments == imu.segments and csv.num_frames == 60
    assert angle_deg(csv.orientation, imu.orientation).max() < 2.0  # jittered stamps, slerp
    # Broken files: one clear LoadError each.
    (tmp_path / "cut.csv").write_text(text[: len(text) // 2].rsplit(",", 3)[0] + "\n")
    with pytest.raises(LoadError, match="number of fields"):
        IMUData.load(tmp_path / "cut.csv")
    (tmp_path / "bad.csv").write_text("time,a.qw\n0,x\n1,1\n")
    with pytest.raises(LoadError):
        IMUData.load(tmp_path / "bad.csv")
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "imu.npz").read_bytes()[:300])
    with pytest.raises(LoadError):
        IMUData.load(tmp_path / "trunc.npz")


def test_nan_samples_are_dropped():
    R = np.tile(np.eye(3), (5, 2, 1, 1))
    R[2, 1] = np.nan
    imu = IMUData(["a", "b"], R, None, 30.0)
    assert not imu.valid[2, 1] and imu.valid.sum() == 9 and np.isfinite(imu.orientation).all()


def test_imu_orientation_term_turns_the_segment():
    target = roma.rotvec_to_rotmat(torch.tensor([[[0.0, 0.8, 0.0]]], dtype=torch.float64))
    rv = torch.zeros(1, 1, 3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([rv], max_iter=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = losses.imu_orientation(roma.rotvec_to_rotmat(rv), target, torch.ones(1, 1, dtype=torch.float64))
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.allclose(rv.detach(), torch.tensor([[[0.0, 0.8, 0.0]]], dtype=torch.float64), atol=1e-4)


def test_imu_acceleration_term_matches_free_fall_and_rest():
    fps, T = 30.0, 10
    t = torch.arange(T, dtype=torch.float64) / fps
    g = torch.tensor([0.0, -GRAVITY, 0.0], dtype=torch.float64)
    falling = (0.5 * g * t[:, None] ** 2)[:, None]  # (T, 1, 3)
    w = torch.ones(T, 1, dtype=torch.float64)
    zero_force = torch.zeros(T, 1, 3, dtype=torch.float64)  # a falling accelerometer reads 0
    assert losses.imu_acceleration(falling, zero_force, g, w, fps) < 1e-12
    resting = torch.zeros(T, 1, 3, dtype=torch.float64)
    assert losses.imu_acceleration(resting, zero_force, g, w, fps) == pytest.approx(GRAVITY**2)


def test_relative_acceleration_term_ignores_translation_and_sees_size(anny, motion):
    """On synthesised streams the true motion reads near the noise floor whatever the body's
    translation does (a monocular fit's depth jitter), while a 10% larger body does not."""
    from lift3d.fitting.fit import _imu_targets
    from lift3d.fusion.imu import IMUAlignment

    imu, Q, M = synthesize_imu(motion, model=anny, seed=4)
    idx = [anny.joint_names.index(s) for s in imu.segments]
    terms = _imu_targets((imu, IMUAlignment(Q, M, np.zeros(len(idx))), idx), torch.as_tensor, 30.0)
    pts = torch.as_tensor(motion.joints(0, anny)[:, idx])

    def term(p, terms):
        return losses.imu_relative_acceleration(p, terms["force"], terms["w"], 30.0).item()

    truth = term(pts, terms)
    jitter = torch.as_tensor(np.random.default_rng(0).normal(0, 0.03, (len(pts), 1, 3)))  # 3 cm per frame
    assert term(pts + jitter, terms) == pytest.approx(truth, rel=1e-6)
    centre = pts.mean(1, keepdim=True)
    assert term(centre + 1.1 * (pts - centre), terms) > 3 * truth
    # Without the accelerometers' noise the triangle-averaged comparison is near exact,
    # although the streams were differentiated another way (np.gradient twice).
    clean, Q, M = synthesize_imu(motion, model=anny, seed=4, acceleration_noise=0.0, orientation_noise_deg=0.0)
    clean_terms = _imu_targets((clean, IMUAlignment(Q, M, np.zeros(len(idx))), idx), torch.as_tensor, 30.0)
    assert term(pts, clean_terms) < 0.05 * float(((pts[2:] - 2 * pts[1:-1] + pts[:-2]) * 900).var(1).sum(-1).mean())


def test_accelerometers_tell_a_monocular_fits_size(anny, motion):
    """A fit 20% too small (and so 20% too near: the same image) with depth jitter: its sensors'
    sideways accelerations, against the accelerometers', give the size back; a body that barely
    moves gives no answer (1.0) rather than a wrong one."""
    from lift3d.fitting.fit import _imu_targets
    from lift3d.fusion.imu import IMUAlignment, scale_from_accelerations

    imu, Q, M = synthesize_imu(motion, model=anny, seed=4)
    idx = [anny.joint_names.index(s) for s in imu.segments]
    terms = _imu_targets((imu, IMUAlignment(Q, M, np.zeros(len(idx))), idx), torch.as_tensor, 30.0)
    measured = (terms["force"] + terms["gravity"][:, None]).numpy()
    pts = motion.joints(0, anny)[:, idx]
    rng = np.random.default_rng(0)
    small = pts / 1.25 + rng.normal(0, [0.003, 0.003, 0.03], pts.shape)  # depth (z) jitters 3 cm
    w = np.ones(imu.valid.shape)
    scale, corr = scale_from_accelerations(small, measured, w, 30.0)
    assert scale == pytest.approx(1.25, rel=0.03) and corr > 0.9
    dropped = np.ones(imu.valid.shape, bool)
    dropped[100] = False
    wild = measured.copy()
    wild[100] = 1e3
    assert scale_from_accelerations(small, wild, w, 30.0, valid=dropped)[0] == pytest.approx(scale, rel=0.03)
    assert scale_from_accelerations(pts, measured, w, 30.0)[0] == pytest.approx(1.0, abs=0.03)
    still = np.repeat(pts[:1], len(pts), 0) + rng.normal(0, 0.003, pts.shape)
    assert scale_from_accelerations(still, measured, w, 30.0)[0] == 1.0
    assert scale_from_accelerations(small[:20], measured[:20], w[:20], 30.0) == (1.0, 0.0)  # too short


def test_imu_refinement_sizes_the_body_by_its_head_sensor(anny, motion):
    """A vision-only fit of a 1.7 m body guessed 1.4 m tall (and so nearer the camera): the
    refinement's start is grown back to within 4% of the truth, its distance with it."""
    from lift3d.fitting.fit import PersonFit, _sized_by_accelerometers, shape_for_height
    from lift3d.fusion.imu import IMUAlignment

    true_shape = shape_for_height(anny, 1.7).detach()
    body = lift3d.BodyFit("anny", motion.pose, true_shape.double().numpy(), motion.transl, 30.0, frame="world")
    imu, Q, M = synthesize_imu(body, model=anny, seed=4)
    idx = [anny.joint_names.index(s) for s in imu.segments]
    T = body.num_frames
    guess = shape_for_height(anny, 1.4)[0].detach().double().numpy()
    first = PersonFit(motion.pose[:, 0], guess, motion.transl[:, 0] * 1.4 / 1.7, np.zeros(T))
    grown, height = _sized_by_accelerometers(anny, first, imu, IMUAlignment(Q, M, np.zeros(len(idx))), idx,
                                             np.ones((T, len(idx))), 30.0, "cpu")
    assert height == pytest.approx(1.7, rel=0.04)
    assert np.allclose(grown.transl, first.transl * height / 1.4, atol=1e-3)
    assert anny.standing_height(torch.as_tensor(grown.shape[None], dtype=anny.dtype)).item() == pytest.approx(height, abs=0.01)


def test_fit_with_imus_recovers_a_hidden_arm(anny):
    """A forearm the camera never sees: its IMU (N-pose calibrated) sets its orientation."""
    from lift3d import formats
    from lift3d.fitting import FitOptions, fit_body
    from lift3d.types import Camera, Keypoints2D

    T = 30
    motion = smooth_motion(anny, T, seed=4, amplitude=0.3)
    pose = motion.pose.copy()
    pose[:, 0, 0] = np.diag([1.0, -1.0, -1.0])  # upright, facing an OpenCV camera
    cam_fit = lift3d.BodyFit("anny", pose, np.zeros((1, 6)), np.tile([0.0, 0.0, 3.0], (T, 1, 1)), 30.0,
                             frame="camera")
    cam = Camera.from_fov(640, 480, 60.0)
    names = anny.keypoint_names
    kp3 = cam_fit.keypoints3d(names, model=anny)
    uv = np.concatenate([cam.project(kp3), np.ones(kp3.shape[:-1] + (1,))], -1)
    k2 = formats.convert(uv, names, "coco17")
    k2[:, [formats.names("coco17").index(n) for n in ("left_elbow", "left_wrist")], 2] = 0.0
    keypoints = Keypoints2D(k2[:, None], "coco17", 30.0, (640, 480))
    imu, _, _ = synthesize_imu(cam_fit, model=anny, seed=2)
    opts = FitOptions(iters_full=60, iters_ground=0, warm_start=False)
    plain = fit_body(keypoints, cam, model=anny, options=opts, progress=False)
    fused = fit_body(keypoints, cam, model=anny, options=opts, progress=False, imu=imu)
    forearm = [anny.joint_names.index("lowerarm02.L")]
    truth = segment_rotations(pose[:, 0], anny.parents, forearm)

    def err(fit):
        return angle_deg(segment_rotations(fit.pose[:, 0], anny.parents, forearm), truth).mean()

    print(f"hidden forearm orientation error: video only {err(plain):.1f} deg, with IMUs {err(fused):.1f} deg")
    assert err(fused) < 12.0 and err(fused) < 0.5 * err(plain)
    # The IMU refinement keeps a known height (here not the truth's: the constraint must hold).
    told = fit_body(keypoints, cam, model=anny, options=opts, progress=False, imu=imu, height=1.5)
    assert abs(told.standing_height(anny)[0] - 1.5) < 0.01 and err(told) < 12.0


def test_imus_alone_with_priors(anny):
    """No camera: the six sensors set their segments, the mocap priors the rest. The motion is
    random (every joint swinging on its own), which no prior learnt from people can predict, so
    this checks the unconditional GMM path; tests/test_imu_prior.py checks the conditional prior
    on real motion."""
    from lift3d import formats
    from lift3d.fusion.imu_fit import IMUFitOptions, fit_imu_only
    from lift3d.io_utils import Lift3DError
    from lift3d.metrics import joint_errors

    motion = smooth_motion(anny, 40, seed=5, amplitude=0.35)
    pose = np.tile(np.eye(3), (40, 1, anny.num_joints, 1, 1))
    pose[:, :, anny.body_joints] = motion.pose[:, :, anny.body_joints]  # fingers/toes at rest
    truth = lift3d.BodyFit("anny", pose, np.zeros((1, 6)), np.zeros((40, 1, 3)), 30.0, frame="world")
    imu, Q, _ = synthesize_imu(truth, model=anny, seed=1, heading_drift_deg_per_min=0.0)
    fit = fit_imu_only(imu, anny, IMUFitOptions(iters=80, w_imu_prior=0.0), progress=False)
    idx = [anny.joint_names.index(s) for s in SPARSE6["anny"]]
    # The fit's world is the IMU world turned Y up (Y_UP_TO_Z_UP^T): back to the truth's by Q^T.
    from lift3d.fusion.imu import Y_UP_TO_Z_UP

    got = Q[0].T @ Y_UP_TO_Z_UP @ segment_rotations(fit.pose[:, 0], anny.parents, idx)
    assert angle_deg(got, segment_rotations(pose[:, 0], anny.parents, idx)).mean() < 3.0
    names = anny.keypoint_names
    true17 = formats.convert_points(truth.keypoints3d(names, model=anny), names, "coco17")
    pred17 = formats.convert_points(fit.keypoints3d(names, model=anny), names, "coco17")
    rest = lift3d.BodyFit("anny", np.tile(np.eye(3), (40, 1, anny.num_joints, 1, 1)), np.zeros((1, 6)),
                          np.zeros((40, 1, 3)), 30.0, frame="world")
    rest17 = formats.convert_points(rest.keypoints3d(names, model=anny), names, "coco17")
    assert joint_errors(pred17, true17)["pa_mpjpe_mm"] < 0.6 * joint_errors(rest17, true17)["pa_mpjpe_mm"]
    assert abs(fit.vertices(model=anny)[:, :, 1].min(1)).max() < 1e-4  # standing on y = 0
    with pytest.raises(Lift3DError, match="calibration"):
        fit_imu_only(IMUData(imu.segments, imu.orientation, None, 30.0), anny, progress=False)
