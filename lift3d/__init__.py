"""lift3d: turn ordinary video into animated 3D human bodies.

    import lift3d
    result = lift3d.reconstruct("video.mp4", "out/")   # keypoints, fit, meshes, preview
    fit = lift3d.BodyFit.load("out/fit.npz")
    vertices = fit.vertices()                           # (T, V, 3) metres, camera frame
"""
from lift3d.io_utils import Lift3DError, LoadError
from lift3d.types import BodyFit, Camera, Joints3D, Keypoints2D

__version__ = "0.1.0"


def reconstruct(*args, **kwargs):
    """See ``lift3d.pipeline.reconstruct`` (imported lazily: it pulls in torch and mediapipe)."""
    from lift3d.pipeline import reconstruct as _reconstruct

    return _reconstruct(*args, **kwargs)


__all__ = ["BodyFit", "Camera", "Joints3D", "Keypoints2D", "Lift3DError", "LoadError", "reconstruct"]
