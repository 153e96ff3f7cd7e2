"""The whole pipeline as one call: video/images -> keypoints -> 3D target -> body fit -> files.

Every output file is written atomically (temporary name, then rename), and each stage's
result is written as soon as it is ready, so an interrupted run keeps what finished.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from lift3d import formats
from lift3d.export import export_fit
from lift3d.fitting import FitOptions, fit_body
from lift3d.io_utils import Lift3DError
from lift3d.types import BodyFit, Camera, Joints3D, Keypoints2D


# Person masks are kept at most this many pixels wide: the silhouette stage renders a
# 96-pixel crop around the person (FitOptions.silhouette_size), so more would only cost memory.
MASK_SIDE = 320
SILHOUETTE_STEPS = 40  # the silhouette stage's Adam steps when only silhouettes=True is asked


@dataclass
class Reconstruction:
    """What ``reconstruct`` produced.

    Attributes:
        keypoints: (T, P, 33, 3) detected 2D keypoints (blazepose33).
        joints3d: the 3D target the fitter used (camera axes, root-relative), if any.
        fit: the fitted body model.
        files: name -> path of every file written.
    """

    keypoints: Keypoints2D
    joints3d: Joints3D | None
    fit: BodyFit
    files: dict[str, Path] = field(default_factory=dict)


def reconstruct(
    input_path: str | Path,
    out_dir: str | Path,
    camera: Camera | None = None,
    fov_deg: float = 60.0,
    model: str = "anny",
    model_kwargs: dict | None = None,
    fit_options: FitOptions | None = None,
    mesh_stride: int = 1,
    preview: bool = True,
    progress: bool = True,
    device: str = "cpu",
    target: str = "mediapipe",
    exports: tuple[str, ...] = ("bvh", "fbx", "glb"),
    naming: str = "model",
    imu=None,
    camera_up=None,
    height=None,
    silhouettes: bool = False,
    camera_height: float | None = None,
) -> Reconstruction:
    """Reconstruct animated 3D bodies from an image, a video or a folder of frames.

    Writes into ``out_dir``: ``keypoints.npz`` (Keypoints2D), ``openpose/`` (BODY_25 JSON per
    frame), ``joints3d.npz`` (with ``target="lifter"``: the lifted h36m17 joints, camera frame),
    ``fit.npz`` (BodyFit), ``animation.bvh`` / ``.fbx`` / ``.glb`` (skeleton, skinned mesh and
    motion for animation tools; ``animation_person<P>.*`` for further people),
    ``meshes/frame_XXXXXX.ply`` (every ``mesh_stride``-th frame, first person) and
    ``preview.mp4`` (2D skeleton and projected mesh over the input).

    Args:
        input_path: image file, video file or folder of frames.
        out_dir: output folder (created).
        camera: calibrated camera of the input; otherwise a pinhole with ``fov_deg``.
        fov_deg: horizontal field of view assumed without calibration.
        model: body model name ("anny", or "smpl"/"smplh"/"smplx" with ``model_kwargs``).
        model_kwargs: body model options, e.g. ``{"model_path": ".../models"}``.
        fit_options: fitter weights and iterations.
        mesh_stride: write a mesh every this many frames (0 = none).
        preview: write preview.mp4.
        progress: tqdm progress bars.
        device: torch device for fitting.
        target: the fitter's 3D target: "mediapipe" (BlazePose's world landmarks; the default,
            because on the demo clip they still give a better fit: docs/BENCHMARKS.md) or
            "lifter" (the shipped temporal lifting network).
        exports: animation formats to write ("bvh", "fbx", "glb", "gltf"); () for none.
        naming: bone names in the animation files: "model", "mixamo", "unity" or "ue".
        imu: body-worn IMUs of the first person (``lift3d.fusion.imu.IMUData`` or a path to its
            npz/CSV file), starting with the video; resampled to the video's frames.
        camera_up: (3,) the world's up direction in the camera's axes when it is known (e.g.
            (0, -1, 0) for a levelled camera): the exported world's floor is level with it, and
            with ``imu`` the IMU world's tilt comes from it (``fit_body(camera_up=)``).
        height: the person's stature in metres (or one per person, in the detector's order),
            when known: it sets the body's size and so its distance from the camera, which one
            camera cannot tell apart (``fit_body(height=)``).
        silhouettes: also fit the body's outline to BlazePose's person segmentation (kept at
            most ``MASK_SIDE`` pixels wide, about 0.2 MB a frame): a silhouette stage of
            ``FitOptions.iters_silhouette`` steps (40 unless ``fit_options`` sets it), and a
            per-frame "silhouette_iou" in the fit's quality. Slower (docs/BENCHMARKS.md).
        camera_height: the camera's height above the floor in metres, when known (with
            ``camera_up``): the floor then sets the body's size (``fit_body(camera_height=)``).
    Raises:
        Lift3DError (or its LoadError) with a one-line message on bad input.
    """
    import body_models
    from lift3d.fitting.fit import check_camera_height
    from lift3d.keypoints import detect_keypoints, open_frames, write_openpose

    # Build the body model first: missing SMPL files should fail before minutes of detection.
    body = body_models.load(model, device=device, **(model_kwargs or {}))
    if imu is not None:  # likewise an unreadable IMU file
        from lift3d.fusion.imu import IMUData

        imu = imu if isinstance(imu, IMUData) else IMUData.load(imu)
    if height is not None:  # a height in centimetres fails here, not after minutes of detection
        import numpy as np

        from lift3d.fitting.fit import person_heights

        person_heights(height, np.size(height))
    check_camera_height(camera_height, camera_up)
    out = Path(out_dir)
    files: dict[str, Path] = {}
    with open_frames(input_path) as frames:
        det = detect_keypoints(frames, progress=progress, with_world=True, with_masks=silhouettes,
                               mask_side=MASK_SIDE)
    kp = det.keypoints
    if kp.confidence.max() <= 0:
        raise Lift3DError(f"no person was detected in any frame of {input_path}")
    out.mkdir(parents=True, exist_ok=True)  # only now: an unreadable input leaves no empty folder behind
    files["keypoints"] = out / "keypoints.npz"
    kp.save(files["keypoints"])
    files["openpose"] = out / "openpose"
    write_openpose(kp, files["openpose"])

    cam = camera or Camera.from_fov(kp.image_size[0], kp.image_size[1], fov_deg)
    if cam.image_size != kp.image_size:
        raise Lift3DError(f"the camera is for {cam.image_size[0]}x{cam.image_size[1]} images but the "
                          f"input is {kp.image_size[0]}x{kp.image_size[1]}")
    if target == "lifter":
        from lift3d.lifting import lift

        joints3d = lift(kp, cam, device=device)
        files["joints3d"] = out / "joints3d.npz"
        joints3d.save(files["joints3d"])
    elif target == "mediapipe":
        joints3d = det.world
    else:
        raise Lift3DError(f"unknown 3D target {target!r}; use 'lifter' or 'mediapipe'")
    if imu is not None:
        if (imu.num_frames - 1) / imu.fps < (kp.num_frames - 1) / kp.fps - 1e-6:
            raise Lift3DError(f"the IMU recording ({(imu.num_frames - 1) / imu.fps:.2f} s) is shorter than "
                              f"the video ({(kp.num_frames - 1) / kp.fps:.2f} s)")
        imu = imu.resampled(kp.fps, kp.num_frames)
    masks = None
    if silhouettes:
        masks = det.mask_array()
        fit_options = fit_options or FitOptions()
        if fit_options.iters_silhouette == 0:
            fit_options = replace(fit_options, iters_silhouette=SILHOUETTE_STEPS)
    fit = fit_body(kp, cam, joints3d, model=body, model_kwargs=model_kwargs, options=fit_options,
                   device=device, progress=progress, world="auto", imu=imu, camera_up=camera_up,
                   height=height, masks=masks, camera_height=camera_height)
    files["fit"] = out / "fit.npz"
    fit.save(files["fit"])

    for p in range(fit.num_people):
        stem = "animation" if p == 0 else f"animation_person{p}"
        for fmt in exports:
            key = fmt if p == 0 else f"{fmt}_person{p}"
            files[key] = export_fit(fit, out / f"{stem}.{fmt}", fmt, person=p, naming=naming)
    if mesh_stride > 0:
        files["meshes"] = out / "meshes"
        export_fit(fit, files["meshes"], "ply", stride=mesh_stride, progress=progress)
    if preview:
        files["preview"] = out / "preview.mp4"
        write_preview(input_path, kp, fit, files["preview"], progress=progress)
    return Reconstruction(kp, joints3d, fit, files)


def write_preview(input_path: str | Path, keypoints: Keypoints2D, fit: BodyFit, path: str | Path,
                  progress: bool = True, batch: int = 32) -> Path:
    """Overlay the 2D skeleton and the fitted mesh(es) on the input frames, as an mp4."""
    import torch

    from lift3d.demo import face_colours
    from lift3d.keypoints import VideoWriter, open_frames
    from lift3d.viz.render import draw_skeleton, render_mesh

    model = fit.body_model()
    faces = fit.faces(model)
    colours = face_colours(model)
    edges = formats.skeleton_edges(keypoints.format)
    cam = fit.camera or Camera.from_fov(*keypoints.image_size)
    fps = keypoints.fps if keypoints.num_frames > 1 else 1.0
    with open_frames(input_path) as frames, VideoWriter(path, fps=fps, size=keypoints.image_size) as writer:
        bar = tqdm(total=keypoints.num_frames, desc="writing preview", disable=not progress, leave=False)
        t = 0
        for frame in frames:
            if t >= keypoints.num_frames:
                break
            if t % batch == 0:  # pose meshes a batch at a time: bounded memory, fewer calls
                sl = slice(t, t + batch)
                with torch.no_grad():
                    verts = [
                        model(torch.as_tensor(fit.pose[sl, p], dtype=model.dtype),
                              torch.as_tensor(fit.shape[p][None], dtype=model.dtype),
                              torch.as_tensor(fit.transl[sl, p], dtype=model.dtype)).vertices.numpy()
                        for p in range(fit.num_people)
                    ]
            img = frame
            for p in range(fit.num_people):
                if keypoints.confidence[t, p].max() > 0:
                    img = render_mesh(img, verts[p][t % batch], faces, cam, colours, alpha=0.6)
                img = draw_skeleton(img, keypoints.data[t, p], edges)
            writer.write(img)
            t += 1
            bar.update(1)
        bar.close()
    return Path(path)
