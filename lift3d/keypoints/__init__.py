"""2D keypoints: frame sources, the built-in BlazePose detector, other tools' files, tracking.

Everything here produces or consumes ``lift3d.types.Keypoints2D`` ((T, P, J, 3) pixel x, y,
confidence). MediaPipe is imported only when a detector is built.
"""
from lift3d.keypoints.detector import BlazePoseDetector, DetectionResult, detect_keypoints
from lift3d.keypoints.io import read_coco_results, read_openpose, write_coco_results, write_openpose
from lift3d.keypoints.tracking import track_people
from lift3d.keypoints.video import FrameSource, VideoWriter, open_frames

__all__ = [
    "open_frames", "FrameSource", "VideoWriter",
    "BlazePoseDetector", "DetectionResult", "detect_keypoints",
    "read_openpose", "write_openpose", "read_coco_results", "write_coco_results",
    "track_people",
]
