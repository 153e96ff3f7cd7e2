"""Motion-capture readers: BVH and ASF/AMC into ``Motion`` (metres, seconds, world Y up).

    from lift3d.mocap import load_motion
    motion = load_motion("01_01.amc")            # finds 01.asf beside it; 120 fps
    motion = load_motion("001_01.bvh")           # Frame Time header; fps= overrides
    joints = motion.resample(30).to_joints3d("h36m17")   # Joints3D (T, 1, 17, 3), world frame

Used to read real motion capture for training the 2D->3D lifting network, and by users who
want a mocap file as keypoints.
"""
from __future__ import annotations

from pathlib import Path

from lift3d.io_utils import LoadError
from lift3d.mocap.asf_amc import Skeleton, read_amc, read_asf
from lift3d.mocap.bvh import read_bvh
from lift3d.mocap.motion import Motion
from lift3d.mocap.skeletons import (CC_BVH, CMU_ASF, FACE_OFFSETS, MAPS, Point, SkeletonMap, detect,
                                    face_points, keypoints, to_joints3d)


def find_asf(amc_path: str | Path) -> Path:
    """The ASF skeleton for an AMC file: the only .asf beside it, or the one named by its subject.

    CMU names takes "<subject>_<take>.amc" next to "<subject>.asf".
    """
    amc_path = Path(amc_path)
    candidates = sorted(amc_path.parent.glob("*.asf")) + sorted(amc_path.parent.glob("*.ASF"))
    if len(candidates) == 1:
        return candidates[0]
    subject = amc_path.stem.split("_")[0]
    for c in candidates:
        if c.stem == subject:
            return c
    if not candidates:
        raise LoadError(f"no .asf skeleton beside {amc_path}; pass asf=")
    raise LoadError(f"several .asf files beside {amc_path} and none named {subject}.asf; pass asf=")


def load_motion(path: str | Path, *, asf: str | Path | None = None, fps: float | None = None,
                max_frames: int | None = None, **kwargs) -> Motion:
    """Read a motion-capture file, choosing the reader by extension.

    Args:
        path: a .bvh file, or a .amc file (its .asf found by ``find_asf`` unless ``asf`` is given).
        asf: the ASF skeleton for an .amc file.
        fps: frame rate override (BVH: instead of the Frame Time header; AMC: default 120).
        max_frames: read only the first frames.
        kwargs: passed to ``read_bvh`` (scale, up, root_offset, keep_end_sites).
    Raises:
        LoadError: unknown extension, or a missing or malformed file.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".bvh":
        return read_bvh(path, fps=fps, max_frames=max_frames, **kwargs)
    if ext == ".amc":
        if kwargs:
            raise TypeError(f"unexpected arguments for an AMC file: {', '.join(kwargs)}")
        skeleton = read_asf(asf if asf is not None else find_asf(path))
        return read_amc(path, skeleton, fps=120.0 if fps is None else fps, max_frames=max_frames)
    if ext == ".asf":
        raise LoadError(f"{path} is a skeleton without motion; load one of its .amc files instead")
    raise LoadError(f"unknown motion-capture file type {path.suffix!r} ({path}); expected .bvh or .amc")


__all__ = [
    "CC_BVH", "CMU_ASF", "FACE_OFFSETS", "MAPS", "Motion", "Point", "Skeleton", "SkeletonMap",
    "detect", "face_points", "find_asf", "keypoints", "load_motion", "read_amc", "read_asf",
    "read_bvh", "to_joints3d",
]
