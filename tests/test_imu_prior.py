"""The IMU-conditional pose prior: features, mirroring, the shipped weights on held-out mocap."""
import numpy as np
import pytest
import roma
import torch

from lift3d import formats
from lift3d.fusion.imu import SPARSE6, segment_rotations
from lift3d.fusion.imu_prior import DEFAULT_PATH, imu_features, load_imu_prior, mirror_pose, window_features
from lift3d.io_utils import Lift3DError

UP = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)


def random_pose(model, n: int, seed: int, scale: float = 0.4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pose = model.rest_pose(n).double().clone()
    pose[:, model.body_joints] = roma.rotvec_to_rotmat(
        scale * torch.randn(n, len(model.body_joints), 3, generator=g, dtype=torch.float64))
    return pose


def test_features_ignore_heading_but_not_tilt(anny):
    pose = random_pose(anny, 8, seed=0)
    idx = [anny.joint_names.index(s) for s in SPARSE6["anny"]]
    G = segment_rotations(pose, anny.parents, idx)
    turn = roma.rotvec_to_rotmat(torch.tensor([0.0, 1.3, 0.0], dtype=torch.float64))
    tilt = roma.rotvec_to_rotmat(torch.tensor([0.4, 0.0, 0.0], dtype=torch.float64))
    f = imu_features(G, UP)
    assert f.shape == (8, 48)
    assert torch.allclose(imu_features(turn @ G, UP), f, atol=1e-12)
    assert (imu_features(tilt @ G, UP) - f).abs().max() > 0.1


def test_window_features_take_neighbours_clamped_at_the_ends():
    f = torch.arange(5.0)[:, None]
    w = window_features(f, 10.0, (-0.1, 0.0, 0.2))
    assert w.tolist() == [[0, 0, 2], [0, 1, 3], [1, 2, 4], [2, 3, 4], [3, 4, 4]]


def test_mirrored_pose_moves_the_mirrored_body(anny):
    """The mirror image of a pose puts every keypoint at the x-mirror of its left-right twin."""
    pose = random_pose(anny, 4, seed=1, scale=0.3)
    mirrored = mirror_pose(pose.numpy(), anny.joint_names)
    assert np.allclose(mirror_pose(mirrored, anny.joint_names), pose.numpy(), atol=1e-12)
    with torch.no_grad():
        kp = anny(pose.float(), vertices=False).keypoints.double().numpy()
        kpm = anny(torch.as_tensor(mirrored).float(), vertices=False).keypoints.double().numpy()
    names = anny.keypoint_names
    from lift3d.fitting.prior import mirror_joint_name

    twin = [names.index(mirror_joint_name(n)) if mirror_joint_name(n) in names else i for i, n in enumerate(names)]
    expected = kp[:, twin] * np.array([-1.0, 1.0, 1.0])
    assert np.abs(kpm - expected).max() < 0.01, np.abs(kpm - expected).max()


def test_shipped_prior_on_held_out_mocap(anny, shared_data):
    """Real held-out motion (CMU subject 02): the six sensed rotations give the other joints
    far better than the rest pose does, at any heading."""
    from lift3d.fitting.retarget import retarget
    from lift3d.lifting.train import load_sequences

    assert DEFAULT_PATH.exists(), "lift3d/data/imu_prior.pt is missing (python -m lift3d.fusion.train_imu_prior)"
    net = load_imu_prior(model=anny)
    seq = next(s for s in load_sequences(shared_data / "cmu-mocap", subjects={"02"}, progress=False)
               if s["name"] == "asfamc/02_01")
    both = np.concatenate([seq["inp"][:240:4], seq["out"][:240:4]], 1)
    truth = retarget(both, formats.names("coco17") + formats.names("h36m17"), anny, progress=False)
    pose = torch.as_tensor(truth["pose"], dtype=torch.float64)
    idx = [anny.joint_names.index(s) for s in SPARSE6["anny"]]
    turn = roma.rotvec_to_rotmat(torch.tensor([0.0, 2.0, 0.0], dtype=torch.float64))
    G = turn @ segment_rotations(pose, anny.parents, idx)
    pred, var = net.predict(G, UP)
    true = pose[:, net.joint_indices]
    per_joint = torch.rad2deg(roma.rotmat_geodesic_distance(pred, true)).mean(0)  # (J,)
    err = per_joint.mean().item()
    rest = torch.rad2deg(roma.rotmat_geodesic_distance(torch.eye(3, dtype=torch.float64), true)).mean().item()
    # The variances rank the joints: those the prior is surer of are the better predicted.
    order = var.mean(0).argsort()
    half = len(order) // 2
    sure, unsure = per_joint[order[:half]].mean().item(), per_joint[order[half:]].mean().item()
    print(f"held-out 02_01: IMU prior {err:.1f} deg per joint, rest pose {rest:.1f} deg; "
          f"surer half {sure:.1f} deg, other half {unsure:.1f} deg")
    assert err < 0.7 * rest and err < 10.0
    assert var.shape == pred.shape[:2] and (var > 0).all()
    assert sure < 0.7 * unsure


def test_imu_only_fit_uses_the_conditional_prior(anny, shared_data):
    """IMUs alone on held-out real motion: with the conditional prior the body is closer to the
    truth than with the unconditional GMM alone."""
    from lift3d.fitting.retarget import retarget
    from lift3d.fusion.imu import synthesize_imu
    from lift3d.fusion.imu_fit import IMUFitOptions, fit_imu_only
    from lift3d.lifting.train import load_sequences
    from lift3d.metrics import joint_errors
    from lift3d.types import BodyFit

    seq = next(s for s in load_sequences(shared_data / "cmu-mocap", subjects={"02"}, progress=False)
               if s["name"] == "asfamc/02_05")
    both = np.concatenate([seq["inp"][100:160], seq["out"][100:160]], 1)
    truth = retarget(both, formats.names("coco17") + formats.names("h36m17"), anny, progress=False)
    fit = BodyFit("anny", truth["pose"][:, None], np.zeros((1, anny.num_shape)), truth["transl"][:, None],
                  30.0, frame="world")
    imu, _, _ = synthesize_imu(fit, model=anny, seed=3)
    names = anny.keypoint_names
    true17 = formats.convert_points(fit.keypoints3d(names, model=anny), names, "coco17")

    def pa(w: float) -> float:
        got = fit_imu_only(imu, anny, IMUFitOptions(iters=60, w_imu_prior=w), progress=False)
        return joint_errors(formats.convert_points(got.keypoints3d(names, model=anny), names, "coco17"),
                            true17)["pa_mpjpe_mm"]

    with_prior, without = pa(1.0), pa(0.0)
    print(f"IMU-only PA-MPJPE on 02_05: conditional prior {with_prior:.1f} mm, GMM only {without:.1f} mm")
    assert with_prior < 0.85 * without


def test_bad_prior_file(tmp_path, anny):
    bad = tmp_path / "prior.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(Lift3DError, match="not a lift3d IMU pose prior"):
        load_imu_prior(bad)
    with pytest.raises(Lift3DError, match="train one"):
        load_imu_prior(tmp_path / "missing.pt")
