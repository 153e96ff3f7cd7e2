"""Read and write 2D keypoints made by other tools: OpenPose JSON and COCO keypoint results.

People in these files are per frame and unordered; the readers link them over time into stable
person slots with ``track_people`` (or with the files' own person ids, when every person has one).
Missing joints (zeros, null or NaN in the files) come out with confidence 0.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lift3d import formats
from lift3d.io_utils import LoadError, atomic_path
from lift3d.keypoints.tracking import track_people
from lift3d.keypoints.video import natural_key
from lift3d.types import Keypoints2D

# OpenPose writes one flat [x, y, c] * J list per person; its length gives the body model.
_OPENPOSE_BY_LENGTH = {75: "openpose25", 54: "openpose18"}
_UNKNOWN_SIZE = (0, 0)


def _load_json(path: Path) -> Any:
    """Parse a JSON file, turning every failure into one LoadError line naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LoadError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LoadError(f"cannot read {path} ({e})") from None
    if not text.strip():
        raise LoadError(f"{path} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LoadError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
                        "truncated file?") from None


def _numbers(values: Any, path: Path, what: str) -> np.ndarray:
    """A flat list of numbers (null allowed, read as NaN) -> (N,) float array."""
    if not isinstance(values, list):
        raise LoadError(f"{path}: {what} must be a list of numbers, got {type(values).__name__}")
    out = np.empty(len(values))
    for i, v in enumerate(values):
        if v is None:
            out[i] = math.nan
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[i] = v
        else:
            raise LoadError(f"{path}: {what} holds a non-numeric value {v!r} at position {i}")
    return out


def _to_points(flat: np.ndarray, num_joints: int) -> np.ndarray:
    """(J*3,) flat x, y, c -> (J, 3); a joint with any NaN becomes (0, 0, 0)."""
    pts = flat.reshape(num_joints, 3)
    return np.where(np.isfinite(pts).all(-1, keepdims=True), pts, 0.0)


def _flat(points: np.ndarray, decimals: int = 4) -> list[float]:
    """(J, 3) -> flat list for JSON, with joints of confidence 0 written as 0, 0, 0."""
    pts = np.where(points[:, 2:3] > 0, points, 0.0)
    return [round(float(v), decimals) for v in pts.ravel()]


def _openpose_files(dir_or_files: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(dir_or_files, (str, Path)):
        path = Path(dir_or_files)
        if path.is_dir():
            files = sorted((f for f in path.glob("*.json") if not f.name.startswith(".")),
                           key=lambda f: natural_key(f.name))
            if not files:
                raise LoadError(f"no OpenPose .json files in folder {path}")
            return files
        if not path.exists():
            raise LoadError(f"OpenPose input not found: {path}")
        return [path]
    files = [Path(f) for f in dir_or_files]
    if not files:
        raise LoadError("read_openpose was given an empty list of files")
    return files


def read_openpose(dir_or_files: str | Path | Sequence[str | Path], fmt: str | None = None,
                  fps: float = 30.0, image_size: tuple[int, int] | None = None) -> Keypoints2D:
    """Read OpenPose per-frame JSON files into tracked keypoints.

    Accepts a folder (every ``*.json`` in it, in natural order, one file per frame), one file, or
    an explicit list of files in frame order. The body model is recognised from the length of
    ``pose_keypoints_2d``: 75 numbers = BODY_25 ("openpose25"), 54 = COCO-18 ("openpose18").
    People are linked over time by their ``person_id`` when every person in every file carries a
    distinct non-negative one (OpenPose's ``--tracking``), otherwise by ``track_people``.

    Args:
        fmt: format of the result (e.g. "coco17"); None keeps the files' own format.
        fps: frame rate (OpenPose files do not record it).
        image_size: (width, height); OpenPose files do not record it either, so it is (0, 0),
            meaning unknown, unless given.
    Returns:
        Keypoints2D (T, P, J, 3).
    Raises:
        LoadError: missing/empty/truncated files, wrong array lengths, non-numeric values, or
            files mixing BODY_25 and COCO-18.
    """
    files = _openpose_files(dir_or_files)
    file_format: str | None = None
    per_frame: list[list[np.ndarray]] = []
    per_frame_ids: list[list[int]] = []
    for f in files:
        doc = _load_json(f)
        people = doc.get("people") if isinstance(doc, dict) else None
        if not isinstance(people, list):
            raise LoadError(f"{f} is not an OpenPose keypoint file (no 'people' list)")
        poses, ids = [], []
        for person in people:
            flat = _numbers(person.get("pose_keypoints_2d", []) if isinstance(person, dict) else None,
                            f, "pose_keypoints_2d")
            if flat.size == 0:
                continue  # OpenPose writes [] for a person found only by the face or hand model
            fmt_here = _OPENPOSE_BY_LENGTH.get(flat.size)
            if fmt_here is None:
                raise LoadError(f"{f}: pose_keypoints_2d has {flat.size} numbers; expected 75 (BODY_25) "
                                "or 54 (COCO-18)")
            if file_format not in (None, fmt_here):
                raise LoadError(f"{f} holds {fmt_here} keypoints but earlier files hold {file_format}")
            file_format = fmt_here
            poses.append(_to_points(flat, flat.size // 3))
            pid = person.get("person_id", -1)
            pid = pid[0] if isinstance(pid, list) and pid else pid
            ids.append(int(pid) if isinstance(pid, (int, float)) and not isinstance(pid, bool) else -1)
        per_frame.append(poses)
        per_frame_ids.append(ids)

    file_format = file_format or "openpose25"  # nobody anywhere: BODY_25, OpenPose's default
    J = len(formats.names(file_format))
    if _ids_usable(per_frame_ids):
        data = _place_by_id(per_frame, per_frame_ids, J)
    else:
        data = track_people([np.array(p).reshape(len(p), J, 3) for p in per_frame])
    kp = Keypoints2D(data, file_format, fps, image_size or _UNKNOWN_SIZE)
    return kp if fmt is None or fmt == file_format else kp.to_format(fmt)


def _ids_usable(ids: list[list[int]]) -> bool:
    flat = [i for frame in ids for i in frame]
    return bool(flat) and min(flat) >= 0 and all(len(set(frame)) == len(frame) for frame in ids)


def _place_by_id(poses: list[list[np.ndarray]], ids: list[list[int]], num_joints: int) -> np.ndarray:
    """(T, P, J, 3) with slot s holding the person with the s-th smallest id."""
    slot = {pid: s for s, pid in enumerate(sorted({i for frame in ids for i in frame}))}
    out = np.zeros((len(poses), len(slot), num_joints, 3))
    for t, (frame_poses, frame_ids) in enumerate(zip(poses, ids)):
        for pose, pid in zip(frame_poses, frame_ids):
            out[t, slot[pid]] = pose
    return out


def write_openpose(keypoints: Keypoints2D, out_dir: str | Path, prefix: str = "frame") -> list[Path]:
    """Write one OpenPose BODY_25 JSON file per frame: ``{prefix}_{t:012d}_keypoints.json``.

    Keypoints in another format are converted to "openpose25" (joints it cannot provide get
    confidence 0). A person slot with no confident joint in a frame is left out of that frame's
    file, as OpenPose does; ``person_id`` holds the slot index, as OpenPose's ``--tracking``
    would. Stale files of the same prefix beyond the last frame (from a longer earlier run) are
    removed so that reading the folder back gives exactly these frames. Each file is written
    atomically.

    Returns:
        the T written paths, in frame order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    body25 = keypoints.to_format("openpose25").data
    paths = []
    for t, frame in enumerate(body25):
        people = [
            {"person_id": [p], "pose_keypoints_2d": _flat(pose), "face_keypoints_2d": [],
             "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [], "pose_keypoints_3d": [],
             "face_keypoints_3d": [], "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": []}
            for p, pose in enumerate(frame) if (pose[:, 2] > 0).any()
        ]
        path = out_dir / f"{prefix}_{t:012d}_keypoints.json"
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps({"version": 1.3, "people": people}), encoding="utf-8")
        paths.append(path)
    pattern = re.compile(rf"{re.escape(prefix)}_(\d{{12}})_keypoints\.json")
    for f in out_dir.iterdir():
        m = pattern.fullmatch(f.name)
        if m and int(m.group(1)) >= len(body25):
            f.unlink()
    return paths


def _frame_order(ids: set, image_ids: Sequence | None) -> list:
    if image_ids is not None:
        return list(image_ids)
    if all(isinstance(i, int) for i in ids):
        return sorted(ids)
    return sorted(ids, key=lambda i: natural_key(str(i)))


def read_coco_results(path: str | Path, fps: float = 30.0, image_size: tuple[int, int] | None = None,
                      image_ids: Sequence[int | str] | None = None) -> Keypoints2D:
    """Read COCO keypoint results (MMPose, HRNet, AlphaPose, Detectron2 ...) as "coco17".

    The file is a JSON list of ``{"image_id", "category_id", "keypoints": [51 numbers], "score"}``;
    a COCO annotation file (a dict with "annotations", and "images" giving the image size) is
    read too. Entries whose category_id is not 1 (person) are skipped. Frames are the image ids
    in numeric order, or natural order for string ids such as AlphaPose's "0001.jpg", or exactly
    ``image_ids`` when given (ids not in it are ignored; listed ids without detections give
    empty frames). People are linked over time by ``track_people``.

    Args:
        fps: frame rate of the sequence.
        image_size: (width, height); (0, 0), meaning unknown, if not given and not in the file.
    Returns:
        Keypoints2D (T, P, 17, 3), format "coco17"; the third value of each keypoint (a score,
        or a 0/1/2 visibility flag in annotation files) is the confidence, clipped to [0, 1].
    Raises:
        LoadError: missing/empty/truncated file, wrong keypoint count, non-numeric values, no
            person entries.
    """
    path = Path(path)
    doc = _load_json(path)
    if isinstance(doc, dict) and isinstance(doc.get("annotations"), list):
        sizes = {(im.get("width"), im.get("height")) for im in doc.get("images", []) if isinstance(im, dict)}
        if image_size is None and len(sizes) == 1 and None not in next(iter(sizes)):
            image_size = next(iter(sizes))
        doc = doc["annotations"]
    if not isinstance(doc, list):
        raise LoadError(f"{path} is not a COCO keypoint results file (expected a JSON list of detections)")

    J = len(formats.names("coco17"))
    by_image: dict[Any, list[np.ndarray]] = {}
    for n, entry in enumerate(doc):
        if not isinstance(entry, dict) or "image_id" not in entry or "keypoints" not in entry:
            raise LoadError(f"{path}: entry {n} lacks 'image_id' or 'keypoints'")
        if entry.get("category_id", 1) != 1:
            continue
        flat = _numbers(entry["keypoints"], path, f"entry {n} keypoints")
        if flat.size != 3 * J:
            raise LoadError(f"{path}: entry {n} has {flat.size} keypoint numbers; expected {3 * J} (COCO-17)")
        image_id = entry["image_id"]
        if not isinstance(image_id, (int, str)) or isinstance(image_id, bool):
            raise LoadError(f"{path}: entry {n} has an image_id that is neither a number nor a string")
        by_image.setdefault(image_id, []).append(_to_points(flat, J))
    if image_ids is None and not by_image:
        raise LoadError(f"{path} holds no person keypoints")

    order = _frame_order(set(by_image), image_ids)
    frames = [np.array(by_image.get(i, [])).reshape(-1, J, 3) for i in order]
    return Keypoints2D(track_people(frames), "coco17", fps, image_size or _UNKNOWN_SIZE)


def _json_id(image_id: Any) -> int | str:
    return int(image_id) if isinstance(image_id, (int, np.integer)) else str(image_id)


def write_coco_results(keypoints: Keypoints2D, path: str | Path,
                       image_ids: Sequence[int | str] | None = None) -> None:
    """Write keypoints as a COCO keypoint results JSON list (format "coco17"), atomically.

    One entry per person slot with any confident joint per frame; ``image_id`` is the frame index
    or ``image_ids[t]``; ``score`` is the mean confidence of the person's confident joints.
    """
    coco = keypoints.to_format("coco17").data
    if image_ids is not None and len(image_ids) != len(coco):
        raise ValueError(f"image_ids has {len(image_ids)} entries for {len(coco)} frames")
    entries = []
    for t, frame in enumerate(coco):
        for pose in frame:
            conf = pose[:, 2]
            if not (conf > 0).any():
                continue
            entries.append({
                "image_id": t if image_ids is None else _json_id(image_ids[t]), "category_id": 1,
                "keypoints": _flat(pose), "score": round(float(conf[conf > 0].mean()), 4),
            })
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(entries), encoding="utf-8")
