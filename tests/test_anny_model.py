"""The default body model (Anny) behind the uniform BodyModel interface."""
import numpy as np
import pytest
import roma
import torch

import body_models
from lift3d import formats


def test_forward_shapes_and_conventions(anny):
    out = anny(anny.rest_pose(2))
    assert out.vertices.shape == (2, 13718, 3)
    assert out.joints.shape == (2, anny.num_joints, 3)
    assert anny.faces.shape == (27420, 3)
    kp = anny.keypoints(out, "coco17")
    assert kp.shape == (2, 17, 4) and torch.all(kp[..., 3] == 1)
    v = out.vertices[0]
    height = (v[:, 1].max() - v[:, 1].min()).item()
    assert 1.5 < height < 1.8, "Y is up and the mean adult is 1.5-1.8 m tall"
    names = formats.names("coco17")
    k = kp[0]
    head_y = k[names.index("nose"), 1]
    ankle_y = k[names.index("left_ankle"), 1]
    assert head_y > ankle_y + 1.2, "head above feet along +Y"
    assert k[names.index("nose"), 2] > k[names.index("left_ear"), 2] + 0.05, "the body faces +Z"
    assert k[names.index("left_shoulder"), 0] > 0 > k[names.index("right_shoulder"), 0], "left is +X"


def test_known_pose_elbow_rotation(anny):
    """A 90-degree rotation about world Y at the left elbow swings the wrist about the elbow."""
    i, w = anny.joint_names.index("lowerarm01.L"), anny.joint_names.index("wrist.L")
    rest = anny(anny.rest_pose(1))
    pose = anny.rest_pose(1)
    pose[0, i] = roma.rotvec_to_rotmat(torch.tensor([0.0, np.pi / 2, 0.0]))
    bent = anny(pose)
    elbow, wrist = rest.joints[0, i], rest.joints[0, w]
    expected = elbow + roma.rotvec_to_rotmat(torch.tensor([0.0, np.pi / 2, 0.0])) @ (wrist - elbow)
    torch.testing.assert_close(bent.joints[0, w], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(bent.joints[0, i], elbow, atol=1e-6, rtol=0)  # the elbow stays


def test_global_orientation_about_root_and_translation(anny):
    R = roma.rotvec_to_rotmat(torch.tensor([0.3, -1.0, 0.2]))
    t = torch.tensor([[0.5, -0.2, 3.0]])
    pose = anny.rest_pose(1)
    pose[0, 0] = R
    rest = anny(anny.rest_pose(1))
    moved = anny(pose, transl=t)
    root = rest.joints[0, 0]
    expected = (rest.vertices[0] - root) @ R.T + root + t
    torch.testing.assert_close(moved.vertices[0], expected, atol=1e-5, rtol=0)


def test_fast_keypoints_match_skinned_mesh(anny):
    torch.manual_seed(0)
    pose = roma.rotvec_to_rotmat(0.3 * torch.randn(4, anny.num_joints, 3))
    shape = 0.3 * torch.randn(1, anny.num_shape)
    full = anny(pose, shape)
    fast = anny(pose, shape, vertices=False)
    assert fast.vertices is None
    torch.testing.assert_close(fast.keypoints, full.keypoints, atol=1e-4, rtol=0)
    torch.testing.assert_close(fast.joints, full.joints)


def test_shape_changes_height_and_gradients_flow(anny):
    tall = anny(anny.rest_pose(1), torch.tensor([[0, 0, 0, 0, 0.5, 0]], dtype=anny.dtype))
    short = anny(anny.rest_pose(1), torch.tensor([[0, 0, 0, 0, -0.5, 0]], dtype=anny.dtype))
    h = lambda o: (o.vertices[0, :, 1].max() - o.vertices[0, :, 1].min()).item()  # noqa: E731
    assert h(tall) > h(short) + 0.2
    rv = torch.zeros(2, anny.num_joints, 3, requires_grad=True)
    shape = torch.zeros(1, anny.num_shape, requires_grad=True)
    out = anny(roma.rotvec_to_rotmat(rv), shape, vertices=False)
    out.keypoints.square().sum().backward()
    assert rv.grad[:, anny.body_joints].abs().sum() > 0 and shape.grad.abs().sum() > 0


def test_skin_weights_and_cache(anny):
    w = anny.skin_weights()
    assert w.shape == (13718, anny.num_joints)
    torch.testing.assert_close(w.sum(1), torch.ones(13718, dtype=w.dtype), atol=1e-4, rtol=0)
    assert body_models.load("anny") is anny


def test_unknown_model_name():
    with pytest.raises(body_models.BodyModelError, match="unknown body model"):
        body_models.load("nope")
