"""Exporters: the fitted body as files that animation tools open (BVH, FBX, glTF/GLB, meshes)."""
from lift3d.export.skeleton import NAMINGS, Rig, bone_names, rig_from_fit

__all__ = ["NAMINGS", "Rig", "bone_names", "rig_from_fit"]
