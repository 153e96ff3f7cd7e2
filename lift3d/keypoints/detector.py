"""Built-in 2D (and rough 3D) keypoint detection with MediaPipe BlazePose.

BlazePose finds one person per frame and gives 33 landmarks ("blazepose33"): image positions, a
per-landmark visibility we use as confidence, and "world" landmarks in metres.

World landmark axes. MediaPipe documents the world landmarks as real-world 3D coordinates in
metres with the origin at the centre between the hips; the axes are those of its image
landmarks: x to the image right, y down the image, z away from the camera (MediaPipe: "the
smaller the value the closer the landmark is to the camera"). Checked on scikit-image's
astronaut photo (a person facing the camera): the nose has z = -0.27 m (in front of the hips),
the person's left shoulder has the larger x (image right) and the head has y = -0.61 m (above).
That is already lift3d's camera frame (OpenCV: x right, y down, z forward, right-handed), so the
values are kept as they are; only the origin differs from a true camera frame: the result is
hip-centred (the mid-hip's distance from the camera is unknown), and is returned as
``Joints3D(frame="camera")`` with that caveat.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lift3d import formats
from lift3d.io_utils import Lift3DError
from lift3d.keypoints.video import FrameSource, open_frames
from lift3d.types import Joints3D, Keypoints2D

NUM_LANDMARKS = len(formats.names("blazepose33"))


class BlazePoseDetector:
    """MediaPipe BlazePose (``mediapipe.solutions.pose.Pose``) for one person per frame.

    Args:
        model_complexity: 0 (lite), 1 (full) or 2 (heavy). Only the full model ships inside
            mediapipe 0.10.21; mediapipe downloads the others on first use, which needs a network.
        static_image_mode: True treats every frame as an unrelated photo (runs the person
            detector each time); False tracks the person from frame to frame, which is faster
            and steadier on video.
        with_masks: also compute the person segmentation mask.
        min_detection_confidence: person-detector threshold.
        min_tracking_confidence: below this, tracking falls back to detection.
    """

    def __init__(self, model_complexity: int = 1, static_image_mode: bool = False, with_masks: bool = False,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5) -> None:
        if model_complexity not in (0, 1, 2):
            raise ValueError(f"model_complexity must be 0, 1 or 2, got {model_complexity}")
        # Imported here: mediapipe takes seconds to import and most of lift3d never needs it.
        import mediapipe as mp

        self.with_masks = with_masks
        try:
            self._pose = mp.solutions.pose.Pose(
                static_image_mode=static_image_mode, model_complexity=model_complexity,
                enable_segmentation=with_masks, min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
            )
        except OSError as e:  # the lite/heavy model download failed (offline)
            raise Lift3DError(
                f"BlazePose model_complexity={model_complexity} needs a model that mediapipe downloads on "
                f"first use, and the download failed ({e}); use model_complexity=1, which ships with mediapipe"
            ) from None

    def detect(self, frame_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Detect the person in one frame.

        Args:
            frame_rgb: (H, W, 3) RGB uint8.
        Returns:
            keypoints: (33, 3) pixel x, y and confidence (MediaPipe visibility); all zeros when
                nobody is found.
            world: (33, 3) hip-centred metres in camera axes (x right, y down, z forward), or
                None when nobody is found.
            mask: (H, W) float32 person probability if the detector was built with_masks and
                someone was found, else None.
        """
        frame = np.asarray(frame_rgb)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}")
        h, w = frame.shape[:2]
        result = self._pose.process(np.ascontiguousarray(frame))
        keypoints = np.zeros((NUM_LANDMARKS, 3))
        if result.pose_landmarks is None:
            return keypoints, None, None
        keypoints[:] = [(lm.x * w, lm.y * h, lm.visibility) for lm in result.pose_landmarks.landmark]
        world = None
        if result.pose_world_landmarks is not None:
            world = np.array([(lm.x, lm.y, lm.z) for lm in result.pose_world_landmarks.landmark])
        mask = None
        if self.with_masks and result.segmentation_mask is not None:
            mask = np.array(result.segmentation_mask, dtype=np.float32)  # copy: mediapipe reuses its buffer
        return keypoints, world, mask

    def close(self) -> None:
        self._pose.close()

    def __enter__(self) -> BlazePoseDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class DetectionResult:
    """What ``detect_keypoints`` found.

    Attributes:
        keypoints: (T, 1, 33, 3) "blazepose33" pixel keypoints; confidence 0 where nobody was found.
        world: (T, 1, 33, 3) hip-centred metres in camera axes (see the module docstring), with
            confidence = visibility, or None if not requested.
        masks: T masks, each (H, W) float32 or None for frames without a person; None if not
            requested.
        mask_side: the longest side the masks were shrunk to (None: the image's size).
    """

    keypoints: Keypoints2D
    world: Joints3D | None = None
    masks: list[np.ndarray | None] | None = None
    mask_side: int | None = None

    def mask_array(self) -> np.ndarray:
        """(T, h, w) float32 person masks, all zero on frames without a person (what
        ``fit_body(masks=)`` takes: such frames get no silhouette term)."""
        if self.masks is None:
            raise ValueError("the detection ran without masks: detect_keypoints(..., with_masks=True)")
        shape = next((m.shape for m in self.masks if m is not None), None)
        if shape is None:
            W, H = self.keypoints.image_size
            shape = _shrunk_shape(H, W, self.mask_side)
        out = np.zeros((len(self.masks), *shape), np.float32)
        for t, m in enumerate(self.masks):
            if m is not None:
                out[t] = m
        return out


def detect_keypoints(source: str | Path | FrameSource, model_complexity: int = 1, progress: bool = True,
                     with_world: bool = True, with_masks: bool = False, mask_side: int | None = None
                     ) -> DetectionResult:
    """Run BlazePose over an image, a video or a folder of frames, one frame at a time.

    A single image is processed in static-image mode; videos and folders in tracking mode.
    Memory grows only by the (T, 33, 3) results (and the masks, when asked for).

    Args:
        source: a path for ``open_frames``, or an open FrameSource (closed when done).
        model_complexity: 0, 1 or 2 (see ``BlazePoseDetector``).
        progress: show a tqdm progress bar.
        with_world: also return MediaPipe's metric world landmarks.
        with_masks: also return per-frame segmentation masks (costly in memory on long videos).
        mask_side: shrink each mask (area average) so that its longer side is at most this
            many pixels, keeping the image's aspect; None keeps the image's resolution.
    """
    frames = source if isinstance(source, FrameSource) else open_frames(source)
    kps: list[np.ndarray] = []
    worlds: list[np.ndarray] = []
    masks: list[np.ndarray | None] | None = [] if with_masks else None
    with frames, BlazePoseDetector(model_complexity, static_image_mode=frames.kind == "image",
                                   with_masks=with_masks) as detector:
        for frame in tqdm(frames, total=frames.num_frames or None, disable=not progress,
                          unit="frame", desc="BlazePose"):
            kp, world, mask = detector.detect(frame)
            kps.append(kp)
            if with_world:
                worlds.append(world if world is not None else np.zeros((NUM_LANDMARKS, 3)))
            if masks is not None:
                masks.append(mask if mask is None or mask_side is None else _shrink(mask, mask_side))

    data = np.stack(kps)[:, None] if kps else np.zeros((0, 1, NUM_LANDMARKS, 3))
    keypoints = Keypoints2D(data, "blazepose33", frames.fps, frames.image_size)
    world3d = None
    if with_world:
        wdata = np.stack(worlds)[:, None] if worlds else np.zeros((0, 1, NUM_LANDMARKS, 3))
        world3d = Joints3D(wdata, "blazepose33", frames.fps, frame="camera", confidence=keypoints.confidence)
    return DetectionResult(keypoints, world3d, masks, mask_side if with_masks else None)


def _shrunk_shape(h: int, w: int, side: int | None) -> tuple[int, int]:
    """(h', w'): an (h, w) image with its longer side brought down to ``side`` (None: as it is)."""
    s = 1.0 if side is None else min(1.0, side / max(h, w))
    return max(1, round(h * s)), max(1, round(w * s))


def _shrink(mask: np.ndarray, side: int) -> np.ndarray:
    """(H, W) mask area-averaged so that its longer side is at most ``side`` pixels."""
    import cv2

    h, w = _shrunk_shape(*mask.shape, side)
    if (h, w) == mask.shape:
        return mask
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA)
