"""Built-in demo data that needs no file from the user and no download.

- ``demo_photo()``: scikit-image's "astronaut" photograph (Eileen Collins, NASA; public domain),
  a real photo shipped inside the scikit-image wheel.
- ``make_demo_clip()``: a short video the toolkit renders itself: the Anny body walking in
  place, waving and turning, seen by a known camera, so that the reconstruction can be
  compared with the ground truth it was made from.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import roma
import torch

import body_models
from lift3d.types import Camera

# Clothes by the bone that moves a vertex most: skin, shirt, trousers, shoes (RGB).
_SKIN, _SHIRT, _TROUSERS, _SHOES = (224, 172, 140), (40, 90, 200), (50, 50, 60), (120, 40, 30)


def demo_photo() -> np.ndarray:
    """(512, 512, 3) uint8 RGB: the astronaut photograph shipped with scikit-image."""
    import skimage.data

    return skimage.data.astronaut()


def _part_colour(bone: str) -> tuple[int, int, int]:
    if bone.startswith(("foot", "toe")):
        return _SHOES
    if bone.startswith(("pelvis", "upperleg", "lowerleg", "root")):
        return _TROUSERS
    if bone.startswith(("spine", "clavicle", "shoulder", "upperarm")):
        return _SHIRT
    return _SKIN


def face_colours(model: body_models.BodyModel) -> np.ndarray:
    """(F, 3) RGB per face: skin, shirt, trousers and shoes by dominant skinning bone."""
    dominant = model.skin_weights().argmax(1).cpu().numpy()  # (V,)
    palette = np.array([_part_colour(n) for n in model.joint_names], dtype=np.float64)
    return palette[dominant[model.faces.cpu().numpy()[:, 0]]]


# The demo body's Anny shape (gender, age, muscle, weight, height, proportions about the mean).
DEMO_SHAPE = [0.2, 0.0, 0.1, 0.0, 0.3, 0.0]


def _rot(axis: str, angle: np.ndarray) -> torch.Tensor:
    vec = np.zeros(angle.shape + (3,))
    vec[..., "xyz".index(axis)] = angle
    return roma.rotvec_to_rotmat(torch.as_tensor(vec, dtype=torch.float32))


def demo_motion(model: body_models.BodyModel, num_frames: int, fps: float = 30.0) -> torch.Tensor:
    """(T, J, 3, 3) a procedural, periodic motion: walking in place (one step a second),
    swinging arms, a left-arm wave rising and falling every 4 s, and a slow turn.

    Rotations are in world axes (Y up, body facing +Z): a negative angle about X swings a
    limb forward, a positive angle about Z lifts the left arm sideways.
    """
    t = np.arange(num_frames) / fps
    phase = 2 * np.pi * t
    pose = model.rest_pose(num_frames).clone()
    j = model.joint_names.index
    step_l, step_r = np.maximum(0, np.sin(phase)), np.maximum(0, -np.sin(phase))
    pose[:, j("upperleg01.L")] = _rot("x", -0.7 * step_l)
    pose[:, j("lowerleg01.L")] = _rot("x", 1.2 * step_l)
    pose[:, j("upperleg01.R")] = _rot("x", -0.7 * step_r)
    pose[:, j("lowerleg01.R")] = _rot("x", 1.2 * step_r)
    pose[:, j("upperarm01.R")] = _rot("x", 0.5 * np.sin(phase))
    pose[:, j("lowerarm01.R")] = _rot("x", np.full(num_frames, -0.5))
    wave = 0.5 - 0.5 * np.cos(2 * np.pi * t / 4.0)
    pose[:, j("upperarm01.L")] = _rot("z", 1.9 * wave) @ _rot("x", -0.5 * np.sin(phase) * (1 - wave))
    pose[:, j("lowerarm01.L")] = _rot("z", 0.6 * wave + 0.3 * wave * np.sin(3 * phase))
    pose[:, j("spine03")] = _rot("x", 0.08 * np.sin(2 * phase))
    pose[:, 0] = _rot("x", np.full(num_frames, np.pi)) @ _rot("y", 0.6 * np.sin(2 * np.pi * t / 4.0))
    return pose


@dataclass
class DemoClip:
    """A rendered clip and its ground truth.

    Attributes:
        path: the video file.
        camera: the camera it was rendered through (camera frame = world frame here).
        keypoints3d: (T, 17, 3) true coco17 keypoints in the camera frame, metres.
        fps: frames per second.
        height: the body's stature in metres (``BodyModel.standing_height``).
        camera_height: the camera's height above the floor, metres (the floor: where the body's
            lowest point is in most frames). The camera is level: the world's up is (0, -1, 0)
            in its axes.
    """

    path: Path
    camera: Camera
    keypoints3d: np.ndarray
    fps: float
    height: float
    camera_height: float


def _background(size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8: a warm grey vertical ramp, the demo's backdrop."""
    w, h = size
    ramp = np.linspace(90, 200, h)[:, None, None] * np.ones((1, w, 3))
    return (ramp * np.array([1.0, 0.97, 0.9])).astype(np.uint8)


def make_demo_clip(path: str | Path, seconds: float = 2.0, fps: float = 30.0,
                   size: tuple[int, int] = (640, 480), progress: bool = True) -> DemoClip:
    """Render the demo motion of the default Anny body to an mp4 and return its ground truth."""
    from tqdm.auto import tqdm

    from lift3d.keypoints.video import VideoWriter
    from lift3d.viz.render import render_mesh

    model = body_models.load("anny")
    T = max(2, int(round(seconds * fps)))
    pose = demo_motion(model, T, fps)
    shape = torch.tensor([DEMO_SHAPE], dtype=model.dtype)
    transl = torch.tensor([0.0, 0.1, 3.6], dtype=model.dtype).expand(T, 3)
    camera = Camera.from_fov(size[0], size[1], 55.0)
    with torch.no_grad():
        kp3d = model.keypoints(model(pose, shape, transl, vertices=False), "coco17")[..., :3].numpy().astype(np.float64)
    colours = face_colours(model)
    background = _background(size)
    faces = model.faces.cpu().numpy()
    batch = 32  # meshes are posed a batch at a time so a long clip needs little memory
    lowest = []  # the body's lowest point per frame (camera y points down)
    with VideoWriter(path, fps=fps, size=size) as writer:
        for s in tqdm(range(0, T, batch), desc="rendering demo clip", disable=not progress, leave=False):
            with torch.no_grad():
                verts = model(pose[s:s + batch], shape, transl[s:s + batch]).vertices.numpy()
            lowest.extend(verts[..., 1].max(1))
            for v in verts:
                writer.write(render_mesh(background, v, faces, camera, colours))
    with torch.no_grad():
        height = float(model.standing_height(shape)[0])
    return DemoClip(Path(path), camera, kp3d, fps, height, float(np.median(lowest)))


@dataclass
class MultiviewClip:
    """Videos of the demo motion from several calibrated cameras, with the ground truth.

    Attributes:
        videos: one mp4 per camera, named after the camera ("cam1.mp4", ...).
        calibration: the cameras as a Pose2Sim/anipose TOML file.
        cameras: {name: Camera} (world: Y up, the body at the origin facing +Z).
        keypoints3d: (T, 17, 3) true coco17 keypoints in the world, metres.
        fps: frames per second.
    """

    videos: list[Path]
    calibration: Path
    cameras: dict[str, Camera]
    keypoints3d: np.ndarray
    fps: float


def make_multiview_clip(folder: str | Path, num_cameras: int = 3, seconds: float = 1.0, fps: float = 30.0,
                        size: tuple[int, int] = (480, 360), progress: bool = True) -> MultiviewClip:
    """Render the demo motion from ``num_cameras`` cameras on a 3.5 m circle around the body."""
    from tqdm.auto import tqdm

    from lift3d.fusion.calib_io import save_calibration
    from lift3d.keypoints.video import VideoWriter
    from lift3d.lifting.data import look_at
    from lift3d.viz.render import render_mesh

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = body_models.load("anny")
    T = max(2, int(round(seconds * fps)))
    pose = demo_motion(model, T, fps)
    pose[:, 0] = _rot("x", np.full(T, np.pi)) @ pose[:, 0]  # upright in a Y-up world, not a camera's
    shape = torch.tensor([DEMO_SHAPE], dtype=model.dtype)
    with torch.no_grad():
        out = model(pose, shape)
    verts = out.vertices.numpy()
    kp3d = model.keypoints(out, "coco17")[..., :3].numpy().astype(np.float64)
    cams = {}
    for i in range(num_cameras):
        a = np.radians(25.0 + 360.0 * i / num_cameras)  # not straight in front: no mirror ambiguity
        R, t = look_at(np.array([3.5 * np.sin(a), 0.3, 3.5 * np.cos(a)]), np.array([0.0, -0.1, 0.0]))
        base = Camera.from_fov(size[0], size[1], 55.0)
        cams[f"cam{i + 1}"] = Camera(K=base.K, image_size=size, R=R, t=t)
    colours = face_colours(model)
    background = _background(size)
    faces = model.faces.cpu().numpy()
    videos = []
    for name, cam in tqdm(cams.items(), desc="rendering views", disable=not progress, leave=False):
        path = folder / f"{name}.mp4"
        with VideoWriter(path, fps=fps, size=size) as writer:
            for v in verts:
                writer.write(render_mesh(background, v, faces, cam, colours))
        videos.append(path)
    calib = folder / "calibration.toml"
    save_calibration(cams, calib, "pose2sim")
    return MultiviewClip(videos, calib, cams, kp3d, fps)
