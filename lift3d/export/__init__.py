"""Exporters: the fitted body as files that animation tools open.

``export_fit(fit, path)`` picks the writer from the format or the file extension:

========  ============================================================================
bvh       skeleton + animation (``bvh.write_bvh``: Y up, centimetres, ZXY Euler)
fbx       binary FBX 7.4: skinned mesh + skeleton + animation (``fbx.write_fbx``)
glb/gltf  glTF 2.0: skinned mesh + skeleton + animation (``gltf.write_gltf``)
obj/ply   one mesh per frame in a folder (``meshes.write_mesh_files``)
npz       the whole mesh sequence in one compact file (``meshes.write_mesh_npz``)
========  ============================================================================

Every file is in a Y-up frame: a world fit's own (floor at y = 0), or a camera-frame fit
turned upright (``skeleton.export_axes``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lift3d.export.skeleton import NAMINGS, Rig, bone_names, export_axes, rig_from_fit

FORMATS = ("bvh", "fbx", "glb", "gltf", "obj", "ply", "npz")


def export_fit(fit, path: str | Path, format: str | None = None, person: int = 0,
               naming: str = "model", units: str = "cm", stride: int = 1,
               progress: bool = False) -> Path:
    """Write one person of a ``BodyFit`` as an animation or mesh file.

    Args:
        fit: a ``lift3d.BodyFit``.
        path: output file (a folder for "obj"/"ply").
        format: one of ``FORMATS``; from the extension of ``path`` if None.
        person: which person of the fit.
        naming: bone names: "model", "mixamo", "unity" or "ue" (see ``bone_names``).
        units: "cm" or "m" for BVH and FBX (glTF is always metres).
        stride: for mesh formats, every stride-th frame.
        progress: tqdm progress for per-frame mesh files.
    Returns:
        The path written.
    Raises:
        Lift3DError: an unknown format, naming or units, or a person the fit does not have.
    """
    from lift3d.io_utils import Lift3DError

    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise Lift3DError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not 0 <= person < fit.num_people:
        raise Lift3DError(f"person {person} is not in the fit (it has {fit.num_people})")
    if naming not in NAMINGS:
        raise Lift3DError(f"unknown bone naming {naming!r}; use one of {', '.join(NAMINGS)}")
    if units not in ("cm", "m"):
        raise Lift3DError(f"units must be 'cm' or 'm', got {units!r}")
    if not (np.isfinite(fit.pose).all() and np.isfinite(fit.transl).all() and np.isfinite(fit.shape).all()):
        raise Lift3DError("the fit's pose, shape or translation is not finite (NaN or inf); nothing written")
    if fmt == "bvh":
        from lift3d.export.bvh import write_bvh

        write_bvh(rig_from_fit(fit, person, naming, mesh=False), path, units=units)
    elif fmt == "fbx":
        from lift3d.export.fbx import write_fbx

        write_fbx(rig_from_fit(fit, person, naming), path, units=units)
    elif fmt in ("glb", "gltf"):
        from lift3d.export.gltf import write_gltf

        write_gltf(rig_from_fit(fit, person, naming), path)
    else:
        from lift3d.export.meshes import write_mesh_files, write_mesh_npz

        model = fit.body_model()
        frames = list(range(0, fit.num_frames, max(1, stride)))
        verts = fit.subset(frames).vertices(person, model) @ export_axes(fit).T
        if fmt == "npz":
            write_mesh_npz(verts, fit.faces(model), path, fit.fps / max(1, stride))
        else:
            write_mesh_files(verts, fit.faces(model), path, frames, fmt, progress)
    return path


__all__ = ["FORMATS", "NAMINGS", "Rig", "bone_names", "export_axes", "export_fit", "rig_from_fit"]
