"""The built-in BlazePose detector on a real photograph (scikit-image's astronaut, 512x512)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from lift3d import formats
from lift3d.keypoints import BlazePoseDetector, VideoWriter, detect_keypoints, open_frames

J = {name: i for i, name in enumerate(formats.names("blazepose33"))}


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()  # (512, 512, 3) RGB: a woman facing the camera, cropped at the hips


@pytest.fixture(scope="module")
def photo_result(astronaut, tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    return detect_keypoints(path, progress=False, with_masks=True)


def _inside(xy, x0, x1, y0, y1) -> bool:
    return x0 <= xy[0] <= x1 and y0 <= xy[1] <= y1


def test_photo_keypoints_on_the_person(photo_result):
    kp = photo_result.keypoints
    assert kp.format == "blazepose33" and kp.data.shape == (1, 1, 33, 3)
    assert kp.image_size == (512, 512) and kp.fps == 30
    pts = kp.data[0, 0]
    # Bounds read off the photo: face around (225, 125), shoulders at y ~ 240-260 with her
    # right shoulder on the image's left; wrists at the bottom edge; hips just below the frame.
    assert _inside(pts[J["nose"]], 190, 260, 95, 160)
    assert _inside(pts[J["right_shoulder"]], 80, 150, 200, 280)
    assert _inside(pts[J["left_shoulder"]], 270, 345, 215, 295)
    assert pts[J["left_shoulder"], 0] > pts[J["right_shoulder"], 0]  # facing the camera
    for side in ("left", "right"):
        assert _inside(pts[J[f"{side}_wrist"]], 90, 370, 400, 540)
        assert _inside(pts[J[f"{side}_hip"]], 90, 290, 450, 580)
    assert pts[[J["nose"], J["left_shoulder"], J["right_shoulder"]], 2].min() > 0.9


def test_photo_world_landmarks_in_camera_axes(photo_result):
    world = photo_result.world
    assert world.frame == "camera" and world.data.shape == (1, 1, 33, 3)
    w = world.data[0, 0]
    mid_hip = 0.5 * (w[J["left_hip"]] + w[J["right_hip"]])
    assert np.linalg.norm(mid_hip) < 0.05                           # hip-centred
    assert w[J["nose"], 1] < -0.4                                   # y down: the head is above the hips
    assert w[J["nose"], 2] < mid_hip[2] - 0.1                       # z forward: the face is nearer the camera
    assert w[J["left_shoulder"], 0] > w[J["right_shoulder"], 0]     # x right, as in the image
    assert 0.2 < np.linalg.norm(w[J["left_shoulder"]] - w[J["right_shoulder"]]) < 0.5  # metres


def test_photo_mask(photo_result):
    (mask,) = photo_result.masks
    assert mask.shape == (512, 512) and mask.dtype == np.float32
    assert mask[350, 220] > 0.5 and mask[30, 480] < 0.5  # chest vs. the wall behind her


def test_blank_image_finds_nobody():
    with BlazePoseDetector(static_image_mode=True) as detector:
        kp, world, mask = detector.detect(np.zeros((240, 320, 3), np.uint8))
    assert kp.shape == (33, 3) and (kp == 0).all()
    assert world is None and mask is None


def test_video_of_the_photo(astronaut, tmp_path):
    T = 4
    with VideoWriter(tmp_path / "astronaut.mp4", fps=24) as writer:
        writer.write_all([astronaut] * T)
        writer.write(np.zeros_like(astronaut))  # the person leaves: a blank last frame
    result = detect_keypoints(open_frames(tmp_path / "astronaut.mp4"), progress=False, with_world=False)
    kp = result.keypoints
    assert kp.data.shape == (T + 1, 1, 33, 3) and kp.fps == 24 and result.world is None and result.masks is None
    upper = [J["nose"], J["left_shoulder"], J["right_shoulder"]]
    assert kp.confidence[:T, 0][:, upper].min() > 0.9
    spread = kp.xy[:T, 0][:, upper].max(0) - kp.xy[:T, 0][:, upper].min(0)
    assert spread.max() < 15  # pixels: the same picture gives (nearly) the same keypoints
    assert (kp.confidence[T] == 0).all()


def test_small_masks_of_a_video(astronaut, tmp_path):
    """Masks shrunk while detecting keep the image's aspect and match the full-size mask
    area-averaged; a frame with nobody is an empty mask in ``mask_array``."""
    tall = np.ascontiguousarray(astronaut[:, 56:456])  # 400 x 512: not square
    with VideoWriter(tmp_path / "tall.mp4", fps=24) as writer:
        writer.write_all([tall] * 3)
        writer.write(np.zeros_like(tall))
    small = detect_keypoints(tmp_path / "tall.mp4", progress=False, with_world=False, with_masks=True,
                             mask_side=128)
    full = detect_keypoints(tmp_path / "tall.mp4", progress=False, with_world=False, with_masks=True)
    masks = small.mask_array()
    assert masks.shape == (4, 128, 100) and masks.dtype == np.float32 and small.mask_side == 128
    assert full.masks[3] is None and (masks[3] == 0).all()
    want = cv2.resize(full.masks[0], (100, 128), interpolation=cv2.INTER_AREA)
    assert np.abs(masks[0] - want).mean() < 0.01
    assert masks[0][90, 45] > 0.5 and masks[0][8, 90] < 0.5  # her chest vs. the wall
    assert full.mask_array().shape == (4, 512, 400)
