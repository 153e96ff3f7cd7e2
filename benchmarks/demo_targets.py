"""Which 3D target makes the better fit: the lifting network or MediaPipe's world landmarks?

    python benchmarks/demo_targets.py

Renders the built-in demo clip (60 frames, known camera and ground truth), runs the pipeline
once per target, without and with the body's true height given (``reconstruct(height=)``),
and with BlazePose's person masks fitted as silhouettes (``reconstruct(silhouettes=True)``),
and prints the fitted joints' errors, the target's own error, the fit's silhouette IoU with
the masks where it has one, and the seconds each run took.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from lift3d import formats
from lift3d.demo import make_demo_clip
from lift3d.metrics import joint_errors
from lift3d.pipeline import reconstruct


def main() -> None:
    body = [formats.index("coco17", n) for n in formats.names("coco17")[5:]]  # no face points
    hips = [body.index(formats.index("coco17", n)) for n in ("left_hip", "right_hip")]
    print("| 3D target | fit MPJPE (mm) | root-relative (mm) | PA-MPJPE (mm) | the target's own body-joint error (mm) "
          "| silhouette IoU | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_demo_clip(Path(tmp) / "clip.mp4", progress=False)
        height = clip.height
        given = f", true height {height:.2f} m given"
        for k, (target, label, h, sil) in enumerate((
                ("lifter", "lifting network", None, False), ("mediapipe", "MediaPipe world landmarks", None, False),
                ("lifter", "lifting network" + given, height, False),
                ("mediapipe", "MediaPipe world landmarks" + given, height, False),
                ("lifter", "lifting network, silhouettes", None, True),
                ("mediapipe", "MediaPipe world landmarks, silhouettes", None, True),
                ("mediapipe", "MediaPipe world landmarks, silhouettes" + given, height, True))):
            t0 = time.perf_counter()
            res = reconstruct(clip.path, Path(tmp) / str(k), camera=clip.camera, progress=False, target=target,
                              mesh_stride=0, preview=False, height=h, silhouettes=sil, exports=())
            sec = time.perf_counter() - t0
            e = joint_errors(res.fit.in_camera_frame(res.fit.keypoints3d("coco17")), clip.keypoints3d)
            own = joint_errors(res.joints3d.to_format("coco17").data[:, 0][:, body], clip.keypoints3d[:, body],
                               root=hips)["root_relative_mpjpe_mm"]
            iou = res.fit.quality.get("silhouette_iou")
            iou = f"{np.nanmean(iou):.3f}" if iou is not None else ""
            print(f"| {label} | {e['mpjpe_mm']:.0f} | {e['root_relative_mpjpe_mm']:.0f} | "
                  f"{e['pa_mpjpe_mm']:.0f} | {own:.0f} | {iou} | {sec:.0f} |", flush=True)


if __name__ == "__main__":
    main()
