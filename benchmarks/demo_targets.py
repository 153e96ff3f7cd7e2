"""Which 3D target makes the better fit: the lifting network or MediaPipe's world landmarks?

    python benchmarks/demo_targets.py

Renders the built-in demo clip (60 frames, known camera and ground truth), runs the pipeline
once per target, without and with the body's true height given (``reconstruct(height=)``),
and prints the fitted joints' errors and the target's own error.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from lift3d import formats
from lift3d.demo import make_demo_clip
from lift3d.metrics import joint_errors
from lift3d.pipeline import reconstruct


def main() -> None:
    body = [formats.index("coco17", n) for n in formats.names("coco17")[5:]]  # no face points
    hips = [body.index(formats.index("coco17", n)) for n in ("left_hip", "right_hip")]
    print("| 3D target | fit MPJPE (mm) | root-relative (mm) | PA-MPJPE (mm) | the target's own body-joint error (mm) |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_demo_clip(Path(tmp) / "clip.mp4", progress=False)
        height = clip.height
        for target, label, h in (("lifter", "lifting network", None), ("mediapipe", "MediaPipe world landmarks", None),
                                 ("lifter", f"lifting network, true height {height:.2f} m given", height),
                                 ("mediapipe", f"MediaPipe world landmarks, true height {height:.2f} m given", height)):
            res = reconstruct(clip.path, Path(tmp) / f"{target}{h}", camera=clip.camera, progress=False,
                              target=target, mesh_stride=0, preview=False, height=h)
            e = joint_errors(res.fit.in_camera_frame(res.fit.keypoints3d("coco17")), clip.keypoints3d)
            own = joint_errors(res.joints3d.to_format("coco17").data[:, 0][:, body], clip.keypoints3d[:, body],
                               root=hips)["root_relative_mpjpe_mm"]
            print(f"| {label} | {e['mpjpe_mm']:.0f} | {e['root_relative_mpjpe_mm']:.0f} | "
                  f"{e['pa_mpjpe_mm']:.0f} | {own:.0f} |")


if __name__ == "__main__":
    main()
