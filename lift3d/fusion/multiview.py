"""Several calibrated cameras -> one animated body: detect, synchronise, associate, triangulate,
fit, export.

The fit is the body model retargeted onto the triangulated joints (``fitting.retarget``: the
same solver that turns motion capture into poses), then moved into a gravity-aligned world
whose floor comes from the feet (Y up, floor at y = 0), the cameras re-expressed to match.
Everything after that is the single-camera pipeline's: ``BodyFit``, exporters, meshes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lift3d import formats
from lift3d.io_utils import Lift3DError
from lift3d.types import BodyFit, Camera, Joints3D, Keypoints2D


@dataclass
class MultiviewResult:
    """What ``reconstruct_multiview`` produced.

    Attributes:
        keypoints: per camera, the 2D keypoints after synchronisation and association.
        offsets: (C,) frame offsets found (0s when not synchronised).
        joints3d: triangulated world joints (calibration world), in the keypoints' format.
        fit: the body fit, in the floor's world.
        cameras: the cameras in that world.
        files: name -> path of every file written.
    """

    keypoints: list[Keypoints2D]
    offsets: np.ndarray
    joints3d: Joints3D
    fit: BodyFit
    cameras: dict[str, Camera]
    files: dict[str, Path] = field(default_factory=dict)


def match_videos(videos: list[Path], cameras: dict[str, Camera]) -> list[str]:
    """Camera name for each video: by file stem when every stem names a camera, else in order."""
    stems = [Path(v).stem for v in videos]
    if all(s in cameras for s in stems) and len(set(stems)) == len(stems):
        return stems
    if len(videos) != len(cameras):
        raise Lift3DError(f"{len(videos)} videos for {len(cameras)} calibrated cameras "
                          f"({', '.join(cameras)}); name the videos after the cameras or give one per camera")
    return list(cameras)


def _view_keypoints(path: Path, cam: Camera, name: str, fps: float, progress: bool,
                    cache: Path) -> Keypoints2D:
    """One camera's 2D keypoints: read from a lift3d keypoints .npz or an OpenPose JSON folder
    (imported, possibly multi-person), else detected in the video / image folder. Detections
    are kept in ``cache`` as soon as a video is done, and reused while newer than the video,
    so an interrupted run resumes after the cameras it finished."""
    from lift3d.keypoints import detect_keypoints, open_frames, read_openpose

    if path.suffix.lower() == ".npz":
        kp = Keypoints2D.load(path)
    elif path.is_dir() and any(path.glob("*.json")):
        kp = read_openpose(path, fps=fps, image_size=cam.image_size)
    elif cache.is_file() and path.exists() and cache.stat().st_mtime >= path.stat().st_mtime:
        kp = Keypoints2D.load(cache)
    else:
        with open_frames(path) as frames:
            kp = detect_keypoints(frames, progress=progress).keypoints
        kp.save(cache)
    if kp.image_size != cam.image_size:
        raise Lift3DError(f"camera {name} is calibrated for {cam.image_size[0]}x{cam.image_size[1]} images "
                          f"but {path} is {kp.image_size[0]}x{kp.image_size[1]}")
    if kp.confidence.max() <= 0:
        raise Lift3DError(f"no person was detected in any frame of {path}")
    return kp


def fit_to_joints(joints: Joints3D, person: int = 0, model: str = "anny", progress: bool = True,
                  model_kwargs: dict | None = None) -> BodyFit:
    """Fit the body model to world-frame 3D joints (triangulated or motion capture).

    Returns a ``BodyFit`` in the joints' frame ("world"), shape shared over the sequence.
    """
    import body_models
    from lift3d.fitting.retarget import retarget

    body = body_models.load(model, **(model_kwargs or {}))
    both = np.concatenate([joints.data[:, person], joints.confidence[:, person, :, None]], -1)
    if both[..., 3].max() <= 0:
        raise Lift3DError("no joint could be triangulated: check the calibration and that the "
                          "person is seen by at least two cameras")
    r = retarget(both, joints.format, body, progress=progress)
    return BodyFit(body.name, r["pose"][:, None], r["shape"][None], r["transl"][:, None], joints.fps,
                   frame="world", quality={"joint_error_mm": r["frame_error_mm"][:, None]},
                   model_kwargs={k: str(v) for k, v in (model_kwargs or {}).items()})


def floor_world(fit: BodyFit, cameras: dict[str, Camera]) -> tuple[BodyFit, dict[str, Camera]]:
    """Re-express a world fit (any calibration world) in the floor's world: Y up along the
    floor normal found from the feet, floor at y = 0, origin under the first frame's root
    (``fitting.to_world``). The cameras' extrinsics are changed to match."""
    import torch

    from lift3d.fitting import ground
    from lift3d.fitting.fit import _find_floor, moved_camera, to_world, world_axes

    model = fit.body_model()
    names = model.keypoint_names
    feet = [names.index(n) for n in ground.FOOT_POINTS if n in names]
    as_t = lambda x: torch.as_tensor(x, dtype=model.dtype)  # noqa: E731
    plane, _, _ = _find_floor(model, as_t(fit.shape[:1]), as_t(fit.pose[:, 0]), as_t(fit.transl[:, 0]),
                              names, feet, fit.fps)
    A, o = world_axes(fit, plane, model)
    return to_world(fit, plane, model), {n: moved_camera(c, A, o) for n, c in cameras.items()}


def reconstruct_multiview(videos: list[str | Path], calibration: str | Path | dict[str, Camera],
                          out_dir: str | Path, sync: bool = False, max_offset: int = 90,
                          model: str = "anny", exports: tuple[str, ...] = ("bvh", "fbx", "glb"),
                          naming: str = "model", smooth: bool = True, fps: float = 30.0,
                          progress: bool = True) -> MultiviewResult:
    """Reconstruct one animated body from several calibrated, roughly simultaneous videos.

    Writes into ``out_dir``: ``detections/<camera>.npz`` (each video's detections, as soon as
    it is done; reused by a rerun), ``keypoints_<camera>.npz`` (per camera, after
    synchronisation and association),
    ``joints3d.npz`` (triangulated joints, calibration world), ``fit.npz`` (BodyFit in
    the floor's world), ``cameras.json`` (the cameras in that world) and ``animation.*``.

    Args:
        videos: per camera, a video or image folder (detected with BlazePose), or imported
            keypoints: a lift3d keypoints .npz or an OpenPose JSON folder (several people are
            associated across views).
        calibration: a calibration file (Pose2Sim/anipose TOML, EasyMocap YAML folder, OpenCV
            YAML/XML, lift3d JSON) or {name: Camera}.
        sync: estimate frame offsets between the videos (epipolar consistency of the people);
            otherwise they are taken as synchronised.
        max_offset: largest offset tried, frames.
        smooth: temporal filter on the triangulated joints (bridges short gaps).
        fps: frame rate of OpenPose JSON input (its files do not record it).
    """
    from lift3d.export import export_fit
    from lift3d.fusion.associate import associate
    from lift3d.fusion.calib_io import load_calibration, save_calibration
    from lift3d.fusion.sync import apply_offsets, estimate_offsets
    from lift3d.fusion.triangulate import triangulate

    cams = calibration if isinstance(calibration, dict) else load_calibration(calibration)
    videos = [Path(v) for v in videos]
    if len(videos) < 2:
        raise Lift3DError("multi-view reconstruction needs at least two videos")
    names = match_videos(videos, cams)
    cam_list = [cams[n] for n in names]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    kps = [_view_keypoints(v, c, n, fps, progress, out / "detections" / f"{n}.npz")
           for v, n, c in zip(videos, names, cam_list)]
    if len({k.format for k in kps}) > 1:
        kps = [Keypoints2D(formats.convert(k.data, k.format, "coco17"), "coco17", k.fps, k.image_size)
               for k in kps]
    offsets = np.zeros(len(kps), dtype=int)
    if sync:
        offsets = estimate_offsets(kps, cam_list, max_offset=max_offset)
    kps = apply_offsets(kps, offsets)  # also trims unequal lengths to the common span
    if max(k.num_people for k in kps) > 1:
        kps = associate(kps, cam_list)
    for n, k in zip(names, kps):
        files[f"keypoints_{n}"] = out / f"keypoints_{n}.npz"
        k.save(files[f"keypoints_{n}"])
    joints = triangulate(kps, cam_list, smooth=smooth)
    files["joints3d"] = out / "joints3d.npz"
    joints.save(files["joints3d"])
    fit = fit_to_joints(joints, model=model, progress=progress)
    fit, world_cams = floor_world(fit, dict(zip(names, cam_list)))
    fit.camera = world_cams[names[0]]
    files["fit"] = out / "fit.npz"
    fit.save(files["fit"])
    files["cameras"] = out / "cameras.json"
    save_calibration(world_cams, files["cameras"], "json")
    for fmt in exports:
        files[fmt] = export_fit(fit, out / f"animation.{fmt}", fmt, naming=naming)
    return MultiviewResult(kps, offsets, joints, fit, world_cams, files)

