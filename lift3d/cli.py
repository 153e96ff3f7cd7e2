"""The ``lift3d`` command line.

    lift3d run INPUT -o OUT_DIR      image, video or folder of frames -> keypoints, fit, meshes, preview
    lift3d demo [-o OUT_DIR]         the built-in demo (no input needed), with errors against ground truth
    lift3d export FIT.npz --format bvh|fbx|glb|gltf|obj|ply|npz [-o OUT]   a fit as animation/mesh files
    lift3d multiview --calib CALIB --videos cam1.mp4 cam2.mp4 ... -o OUT   several calibrated cameras

Errors the user can fix print one line on stderr and exit with status 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np


def _quiet_native_logs() -> None:
    # MediaPipe/TF-Lite and absl print start-up chatter on stderr; the user wants our output.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _add_fit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--camera", type=Path, help="camera JSON (K, dist, R, t, image_size); default: pinhole from --fov")
    p.add_argument("--fov", type=float, default=60.0, help="horizontal field of view in degrees when no --camera (default 60)")
    p.add_argument("--model", default="anny", choices=["anny", "smpl", "smplh", "smplx"], help="body model (default anny)")
    p.add_argument("--model-path", type=Path, help="folder or file of licensed SMPL-family model files")
    p.add_argument("--iters", type=int, help="full-body fit iterations (default: FitOptions.iters_full, 100)")
    p.add_argument("--mesh-stride", type=int, default=1, help="write a mesh every N frames (0 = none)")
    p.add_argument("--no-preview", action="store_true", help="do not write preview.mp4")
    p.add_argument("--target", default="mediapipe", choices=["mediapipe", "lifter"],
                   help="3D target for the fit: MediaPipe's world landmarks (default) or lift3d's lifting network")
    p.add_argument("--device", default="cpu", help="torch device for fitting (cpu, cuda)")
    p.add_argument("--imu", type=Path, help="body-worn IMUs of the person (npz or CSV, see lift3d/fusion/imu.py), "
                                            "recorded from the video's first frame")
    p.add_argument("--camera-up", type=_vector3, metavar="X,Y,Z",
                   help="the world's up direction in the camera's axes (x right, y down, z forward) when known, "
                        "e.g. 0,-1,0 for a levelled camera or a phone's gravity reading: the exported world's floor "
                        "is level with it (and with --imu the IMUs' tilt comes from it) instead of from the video")
    p.add_argument("--height", type=_heights, metavar="M[,M...]",
                   help="the person's height in metres (one per person, comma-separated, in the detector's order) "
                        "when known: it sets the body's size and so its distance from the camera, which one camera "
                        "cannot tell apart (a child near it looks like an adult further away)")
    p.add_argument("--camera-height", type=float, metavar="M",
                   help="the camera's height above the floor in metres, when known (needs --camera-up): the floor "
                        "the feet stand on then sets the body's size and distance, for every person (within ~6%% from "
                        "0.7 m up; a camera nearly on the floor sees it edge-on and helps little)")
    p.add_argument("--silhouettes", action="store_true",
                   help="also fit the body's outline to BlazePose's person segmentation (a silhouette stage through "
                        "lift3d's differentiable renderer; about twice the fitting time)")
    p.add_argument("--export", default="bvh,fbx,glb",
                   help="animation files to write, comma-separated from bvh, fbx, glb, gltf ('' for none; default bvh,fbx,glb)")
    _add_naming_arg(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _vector3(text: str) -> np.ndarray:
    from lift3d.fusion.imu import unit_up
    from lift3d.io_utils import Lift3DError

    try:
        return unit_up([float(x) for x in text.split(",")])
    except (ValueError, Lift3DError):
        raise argparse.ArgumentTypeError(f"expected three numbers X,Y,Z not all zero, got {text!r}") from None


def _heights(text: str) -> list[float]:
    from lift3d.fitting.fit import person_heights
    from lift3d.io_utils import Lift3DError

    try:
        values = [float(x) for x in text.split(",")]
        return person_heights(values, len(values))
    except (ValueError, Lift3DError) as e:
        why = str(e).removeprefix("height: ") if isinstance(e, Lift3DError) else "expected numbers"
        raise argparse.ArgumentTypeError(f"{why}, got {text!r}") from None


def _add_naming_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--naming", default="model", choices=["model", "mixamo", "unity", "ue"],
                   help="bone names: the body model's own (default), Mixamo, Unity Humanoid or UE5 Mannequin")


def _run(args: argparse.Namespace) -> int:
    from lift3d.fitting import FitOptions
    from lift3d.pipeline import reconstruct
    from lift3d.types import Camera

    camera = Camera.load(args.camera) if args.camera else None
    opts = FitOptions() if args.iters is None else FitOptions(iters_full=args.iters)
    kwargs = {"model_path": str(args.model_path)} if args.model_path else {}
    res = reconstruct(args.input, args.output, camera=camera, fov_deg=args.fov, model=args.model,
                      model_kwargs=kwargs, fit_options=opts, mesh_stride=args.mesh_stride,
                      preview=not args.no_preview, progress=not args.quiet, device=args.device,
                      target=args.target, exports=_export_list(args.export), naming=args.naming,
                      imu=args.imu, camera_up=args.camera_up, height=args.height,
                      silhouettes=args.silhouettes, camera_height=args.camera_height)
    _summary(res, height_given=args.height is not None, imu=args.imu is not None,
             camera_height=args.camera_height is not None)
    return 0


def _export_list(text: str) -> tuple[str, ...]:
    from lift3d.io_utils import Lift3DError

    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    bad = [f for f in formats if f not in ("bvh", "fbx", "glb", "gltf")]
    if bad:
        raise Lift3DError(f"--export: unknown format(s) {', '.join(bad)}; choose from bvh, fbx, glb, gltf")
    return formats


def _multiview(args: argparse.Namespace) -> int:
    from lift3d.fusion.multiview import reconstruct_multiview

    res = reconstruct_multiview(args.videos, args.calib, args.output, sync=args.sync,
                                max_offset=args.max_offset, model=args.model,
                                exports=_export_list(args.export), naming=args.naming,
                                fps=args.fps, progress=not args.quiet)
    seen = res.joints3d.confidence[:, 0] > 0
    print(f"{len(args.videos)} cameras, {res.fit.num_frames} frames; offsets {list(res.offsets)}; "
          f"{100 * seen.mean():.0f}% of joints triangulated; body fit "
          f"{np.nanmean(res.fit.quality['joint_error_mm']):.0f} mm from them")
    for name, path in res.files.items():
        print(f"  {name:14s} {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from lift3d.export import export_fit
    from lift3d.types import BodyFit

    fit = BodyFit.load(args.fit)
    fmt = args.format or (args.output.suffix.lstrip(".").lower() if args.output else "")
    if not fmt:
        from lift3d.io_utils import Lift3DError

        raise Lift3DError("give --format, or an -o path whose extension names the format")
    out = args.output or args.fit.with_name(
        f"{args.fit.stem}_meshes" if fmt in ("obj", "ply") else f"{args.fit.stem}.{fmt}")
    path = export_fit(fit, out, fmt, person=args.person, naming=args.naming, units=args.units,
                      stride=args.stride, progress=not args.quiet)
    print(f"wrote {path}")
    return 0


def _summary(res, height_given: bool = False, imu: bool = False, camera_height: bool = False) -> None:
    q = res.fit.quality.get("reprojection_px")
    print(f"{res.keypoints.num_frames} frame(s), {res.fit.num_people} person(s); "
          f"mean reprojection error {np.nanmean(q):.1f} px" if q is not None and np.isfinite(q).any() else "")
    # From one camera the size is a guess (it sets the distance too): say so, and how to fix it.
    heights = ", ".join(f"{h:.2f}" for h in res.fit.standing_height())
    if height_given:
        note = ""
    elif camera_height and res.fit.frame == "world":  # a floor was found, so it set the size
        note = " (from the floor and the camera's height)"
    elif imu:
        note = " (from the head sensor's accelerations where it moved enough, else a guess: give --height if known)"
    else:
        note = " (a guess from one camera: give --height if known)"
    print(f"fitted height {heights} m" + note)
    iou = res.fit.quality.get("silhouette_iou")
    if iou is not None and np.isfinite(iou).any():
        print(f"silhouette IoU with the person mask: mean {np.nanmean(iou):.2f}, lowest {np.nanmin(iou):.2f}")
    for name, path in res.files.items():
        print(f"  {name:10s} {path}")


def _demo(args: argparse.Namespace) -> int:
    import cv2

    from lift3d.demo import demo_photo, make_demo_clip
    from lift3d.fitting import fit_body
    from lift3d.metrics import joint_errors
    from lift3d.pipeline import reconstruct

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.quiet
    print("1/3  photograph: scikit-image's astronaut (a real photo shipped in the scikit-image wheel)")
    photo = out / "inputs" / "astronaut.png"
    photo.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(photo), cv2.cvtColor(demo_photo(), cv2.COLOR_RGB2BGR))
    res = reconstruct(photo, out / "astronaut", progress=progress)
    _summary(res)

    print("2/3  clip: the Anny body rendered walking, waving and turning, with known ground truth")
    clip = make_demo_clip(out / "inputs" / "demo_clip.mp4", progress=progress)
    res = reconstruct(clip.path, out / "clip", camera=clip.camera, progress=progress)
    _summary(res)
    pred = res.fit.in_camera_frame(res.fit.keypoints3d("coco17"))
    err = joint_errors(pred, clip.keypoints3d)
    print("recovered vs true coco17 joints over {} frames: MPJPE {mpjpe_mm:.0f} mm, root-relative "
          "{root_relative_mpjpe_mm:.0f} mm, PA-MPJPE {pa_mpjpe_mm:.0f} mm".format(len(pred), **err))
    # One camera sees size and distance only as their ratio: the body's height settles both.
    fit = fit_body(res.keypoints, clip.camera, res.joints3d, progress=progress, height=clip.height)
    err = joint_errors(fit.keypoints3d("coco17"), clip.keypoints3d)
    print("  the same fit told the body's height (lift3d run --height {:.2f}): MPJPE {mpjpe_mm:.0f} mm, "
          "root-relative {root_relative_mpjpe_mm:.0f} mm, PA-MPJPE {pa_mpjpe_mm:.0f} mm".format(clip.height, **err))
    # Or the camera's height above the floor, with its up: the floor the feet find then sets the size.
    fit = fit_body(res.keypoints, clip.camera, res.joints3d, progress=progress, camera_up=(0.0, -1.0, 0.0),
                   camera_height=clip.camera_height)
    err = joint_errors(fit.keypoints3d("coco17"), clip.keypoints3d)
    print("  told the camera's height instead (--camera-up 0,-1,0 --camera-height {:.2f}): fitted height {:.2f} m, "
          "MPJPE {mpjpe_mm:.0f} mm, root-relative {root_relative_mpjpe_mm:.0f} mm, PA-MPJPE {pa_mpjpe_mm:.0f} mm"
          .format(clip.camera_height, fit.standing_height()[0], **err))

    print("3/3  three calibrated cameras around the same motion: triangulation and body fit")
    from lift3d import formats
    from lift3d.demo import make_multiview_clip
    from lift3d.fusion.multiview import reconstruct_multiview

    mv = make_multiview_clip(out / "inputs" / "multiview", num_cameras=3, seconds=2.0, progress=progress)
    res = reconstruct_multiview(mv.videos, mv.calibration, out / "multiview", progress=progress)
    both = np.concatenate([res.joints3d.data[:, 0], res.joints3d.confidence[:, 0, :, None]], -1)
    tri = formats.convert(both, res.joints3d.format, "coco17")
    seen = tri[..., 3] > 0  # joints seen by two or more cameras
    tri_mm = 1000 * np.linalg.norm(tri[..., :3] - mv.keypoints3d, axis=-1)[seen].mean()
    fitted = res.fit.keypoints3d("coco17")
    a, b = res.cameras["cam1"], mv.cameras["cam1"]  # the fit's floor world -> the calibration's
    fitted = b.camera_to_world(a.world_to_camera(fitted))
    e_fit = joint_errors(fitted, mv.keypoints3d)
    for name, path in res.files.items():
        print(f"  {name:14s} {path}")
    print(f"triangulated vs true coco17 joints over {len(tri)} frames: MPJPE {tri_mm:.0f} mm "
          f"({100 * seen.mean():.0f}% of joints seen by two cameras or more); fitted body: "
          f"MPJPE {e_fit['mpjpe_mm']:.0f} mm, PA-MPJPE {e_fit['pa_mpjpe_mm']:.0f} mm")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lift3d", description="Video to animated 3D human bodies.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="reconstruct 3D bodies from an image, a video or a folder of frames")
    run.add_argument("input", type=Path, help="image file, video file or folder of frames")
    run.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    _add_fit_args(run)
    run.set_defaults(func=_run)
    demo = sub.add_parser("demo", help="run the pipeline on built-in data and report the error against ground truth")
    demo.add_argument("-o", "--output", type=Path, default=Path("demo_output"), help="output folder (default ./demo_output)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_demo)
    mv = sub.add_parser("multiview", help="reconstruct one body from several calibrated videos")
    mv.add_argument("--calib", type=Path, required=True,
                    help="calibration: Pose2Sim/anipose .toml, EasyMocap folder (intri.yml, extri.yml), OpenCV .yml/.xml, lift3d .json")
    mv.add_argument("--videos", type=Path, nargs="+", required=True,
                    help="one video per camera, named after the camera or in the calibration's camera order; "
                         "also a keypoints .npz or an OpenPose JSON folder per camera (imported, multi-person)")
    mv.add_argument("--fps", type=float, default=30.0, help="frame rate of OpenPose JSON input (default 30)")
    mv.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    mv.add_argument("--sync", action="store_true", help="estimate frame offsets between the videos (not hardware-synced)")
    mv.add_argument("--max-offset", type=int, default=90, help="largest offset tried with --sync, frames (default 90)")
    mv.add_argument("--model", default="anny", choices=["anny", "smpl", "smplh", "smplx"], help="body model (default anny)")
    mv.add_argument("--export", default="bvh,fbx,glb", help="animation files to write (default bvh,fbx,glb)")
    _add_naming_arg(mv)
    mv.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    mv.set_defaults(func=_multiview)
    exp = sub.add_parser("export", help="write a fit (fit.npz) as BVH, FBX, glTF/GLB or mesh files")
    exp.add_argument("fit", type=Path, help="a fit.npz written by lift3d run")
    exp.add_argument("--format", choices=["bvh", "fbx", "glb", "gltf", "obj", "ply", "npz"],
                     help="file format (default: from the -o extension); obj/ply write a folder of "
                          "per-frame meshes, npz one compact mesh sequence")
    exp.add_argument("-o", "--output", type=Path, help="output file or folder (default: beside FIT)")
    exp.add_argument("--person", type=int, default=0, help="which person of the fit (default 0)")
    _add_naming_arg(exp)
    exp.add_argument("--units", default="cm", choices=["cm", "m"], help="BVH/FBX units (default cm; glTF is always m)")
    exp.add_argument("--stride", type=int, default=1, help="mesh formats: every N-th frame (default 1)")
    exp.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    exp.set_defaults(func=_export)
    return parser


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    # A documented fallback is news for the user, not a source line to debug.
    print(f"lift3d: warning: {message}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    _quiet_native_logs()
    warnings.showwarning = _warning_line
    args = build_parser().parse_args(argv)
    from body_models import BodyModelError
    from lift3d.io_utils import Lift3DError

    try:
        return args.func(args)
    except (Lift3DError, BodyModelError) as e:
        print(f"lift3d: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lift3d: interrupted; files already written are complete and kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
