"""Frame sources (image, video, folder of frames) and an atomic mp4 writer.

Frames are RGB uint8 arrays of shape (H, W, 3), streamed one at a time so that memory does not
grow with video length.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from lift3d.io_utils import LoadError, Lift3DError, atomic_path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".ppm", ".pgm"})
DEFAULT_FPS = 30.0


def natural_key(text: str) -> list:
    """Sort key putting 'frame2' before 'frame10' (digit runs compare as numbers)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", text) if part]


def _read_image(path: Path) -> np.ndarray:
    """(H, W, 3) RGB uint8 from an image file; LoadError if it cannot be decoded."""
    # np.fromfile + imdecode rather than imread: imread cannot open non-ASCII paths on Windows.
    try:
        buf = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise LoadError(f"cannot read image {path} ({e.strerror or e})") from None
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if bgr is None:
        raise LoadError(f"cannot decode image {path} (empty, corrupt or not an image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class FrameSource(Iterator[np.ndarray]):
    """An iterator over the RGB frames of an image, a video or a folder of images.

    Iterate once; call ``open_frames`` again to start over. Use as a context manager (or call
    ``close``) to release a video file early.

    Attributes:
        path: the input path.
        kind: "image" (one still), "folder" (a sequence of image files) or "video".
        fps: frames per second (30.0 for images and folders, or when a video does not say).
        num_frames: number of frames; for videos the container's count, which some codecs report
            a few frames off, and 0 when the container does not say.
        image_size: (width, height) in pixels.
    """

    def __init__(self, path: Path, kind: str, fps: float, num_frames: int, image_size: tuple[int, int],
                 frames: Iterator[np.ndarray], closer=None) -> None:
        self.path, self.kind, self.fps = path, kind, float(fps)
        self.num_frames, self.image_size = int(num_frames), (int(image_size[0]), int(image_size[1]))
        self._frames, self._closer = frames, closer

    def __iter__(self) -> FrameSource:
        return self

    def __next__(self) -> np.ndarray:
        return next(self._frames)

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"FrameSource({str(self.path)!r}, kind={self.kind!r}, fps={self.fps:g}, "
                f"num_frames={self.num_frames}, image_size={self.image_size})")


def open_frames(path: str | Path) -> FrameSource:
    """Open an image file, a video file or a folder of image frames as a stream of RGB frames.

    A folder's images (by extension) are taken in natural order ('f2.png' before 'f10.png') and
    must all have the same size.

    Raises:
        LoadError: missing path, empty folder, or a file that cannot be decoded.
    """
    path = Path(path)
    if not path.exists():
        raise LoadError(f"input not found: {path}")
    if path.is_dir():
        return _open_folder(path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        image = _read_image(path)
        size = (image.shape[1], image.shape[0])
        return FrameSource(path, "image", DEFAULT_FPS, 1, size, iter([image]))
    return _open_video(path)


def _open_folder(path: Path) -> FrameSource:
    files = sorted((f for f in path.iterdir()
                    if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS),
                   key=lambda f: natural_key(f.name))
    if not files:
        raise LoadError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in folder {path}")
    first = _read_image(files[0])
    size = (first.shape[1], first.shape[0])

    def frames() -> Iterator[np.ndarray]:
        yield first
        for f in files[1:]:
            image = _read_image(f)
            if (image.shape[1], image.shape[0]) != size:
                raise LoadError(f"frame {f} is {image.shape[1]}x{image.shape[0]}, "
                                f"but the folder's first frame is {size[0]}x{size[1]}")
            yield image

    return FrameSource(path, "folder", DEFAULT_FPS, len(files), size, frames())


def _open_video(path: Path) -> FrameSource:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise LoadError(f"cannot open video {path} (unknown format or corrupt file)")
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise LoadError(f"cannot decode any frame from video {path} (corrupt or empty file)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    # Some containers (raw streams, some webm) report 0 or NaN; 30 is the common capture rate.
    fps = fps if math.isfinite(fps) and 0 < fps < 10_000 else DEFAULT_FPS
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    count = int(count) if math.isfinite(count) and count > 0 else 0
    size = (first.shape[1], first.shape[0])

    def frames() -> Iterator[np.ndarray]:
        try:
            frame = first
            while frame is not None:
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                ok, frame = cap.read()
                frame = frame if ok else None
        finally:
            cap.release()

    return FrameSource(path, "video", fps, count, size, frames(), closer=cap.release)


class VideoWriter:
    """Write RGB frames to an mp4 (codec 'mp4v'); the file appears only when closed successfully.

    Frames go to a temporary name beside ``path`` that is renamed on a clean exit and deleted if
    the ``with`` block raises, so a crash never leaves a truncated video behind.

    Example:
        with VideoWriter("out.mp4", fps=30) as w:
            for frame in frames:       # each (H, W, 3) RGB uint8
                w.write(frame)

    Args:
        path: output file (.mp4 recommended; the extension picks the container).
        fps: frames per second.
        size: (width, height); taken from the first frame when None.
        fourcc: four-character codec code.
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int] | None = None,
                 fourcc: str = "mp4v") -> None:
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be positive, got {fps}")
        self.path, self.fps, self.fourcc = Path(path), float(fps), fourcc
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.num_written = 0
        self._atomic = None
        self._tmp: str | None = None
        self._writer: cv2.VideoWriter | None = None

    def __enter__(self) -> VideoWriter:
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        return self

    def _open(self, size: tuple[int, int]) -> None:
        self.size = size
        self._writer = cv2.VideoWriter(self._tmp, cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size)
        if not self._writer.isOpened():
            raise Lift3DError(f"cannot open a video writer for {self.path} (codec {self.fourcc!r})")

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) RGB or (H, W) grey uint8 frame."""
        if self._tmp is None:
            raise RuntimeError("use VideoWriter inside a 'with' block")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            raise ValueError(f"frames must be uint8, got {frame.dtype}")
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, axis=-1)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be (H, W, 3) RGB, got shape {frame.shape}")
        size = (frame.shape[1], frame.shape[0])
        if self._writer is None:
            self._open(self.size or size)
        # OpenCV silently drops frames of the wrong size; fail loudly instead.
        if size != self.size:
            raise ValueError(f"frame is {size[0]}x{size[1]}, the video is {self.size[0]}x{self.size[1]}")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.num_written += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            self.write(frame)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if self._writer is not None:
            self._writer.release()  # flush before the rename
            self._writer = None
        atomic, self._atomic, self._tmp = self._atomic, None, None
        if exc_type is None and self.num_written == 0:
            # An empty video is an error, not a file: let atomic_path delete the temporary.
            err = Lift3DError(f"no frames were written to {self.path}")
            atomic.__exit__(Lift3DError, err, None)
            raise err
        return bool(atomic.__exit__(exc_type, exc, tb))
