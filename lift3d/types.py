"""Core data types shared by every stage.

Conventions (see DESIGN.md): metres and seconds; camera frame is OpenCV (x right, y down,
z forward); world frame is right-handed, Y up; extrinsics map world to camera as
``x_cam = R @ x_world + t``. Arrays are numpy at this level. Missing keypoints carry
confidence 0, never NaN.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lift3d import formats
from lift3d.io_utils import atomic_path, load_npz, LoadError


@dataclass
class Camera:
    """A pinhole camera with OpenCV distortion.

    Attributes:
        K: (3, 3) intrinsics.
        dist: (N,) OpenCV distortion coefficients (k1, k2, p1, p2[, k3, ...]); zeros if none.
        R: (3, 3) world-to-camera rotation.
        t: (3,) world-to-camera translation, metres.
        image_size: (width, height) in pixels.
    """

    K: np.ndarray
    image_size: tuple[int, int]
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        self.dist = np.asarray(self.dist, dtype=np.float64).ravel()
        self.R = np.asarray(self.R, dtype=np.float64).reshape(3, 3)
        self.t = np.asarray(self.t, dtype=np.float64).reshape(3)
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        for name in ("K", "dist", "R", "t"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"camera {name} contains NaN or infinity")
        if self.K[0, 0] <= 0 or self.K[1, 1] <= 0:
            raise ValueError("camera focal lengths must be positive")
        if abs(np.linalg.det(self.R) - 1.0) > 1e-3:
            raise ValueError("camera R is not a rotation matrix (det != 1)")

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float = 60.0) -> "Camera":
        """A camera at the world origin with the given horizontal field of view.

        Used when a video comes without calibration: 60 degrees matches a typical phone or
        webcam main lens closely enough for a monocular fit.
        """
        f = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
        K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
        return cls(K=K, image_size=(width, height))

    @property
    def focal(self) -> float:
        return float(0.5 * (self.K[0, 0] + self.K[1, 1]))

    @property
    def center(self) -> np.ndarray:
        """(3,) camera centre in world coordinates."""
        return -self.R.T @ self.t

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 3) camera-frame points."""
        return np.asarray(points) @ self.R.T + self.t

    def camera_to_world(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame points -> (..., 3) world points."""
        return (np.asarray(points) - self.t) @ self.R

    def project(self, points: np.ndarray) -> np.ndarray:
        """Project (..., 3) world points to (..., 2) pixels, applying distortion.

        Points behind the camera (z <= 0) project to NaN-free but meaningless pixels; callers
        check depth with ``world_to_camera`` when it matters.
        """
        pc = self.world_to_camera(points)
        z = np.where(np.abs(pc[..., 2:3]) < 1e-9, 1e-9, pc[..., 2:3])
        xy = pc[..., :2] / z
        xy = self._distort(xy)
        return xy @ self.K[:2, :2].T + self.K[:2, 2]

    def normalized(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels (..., 2) -> (..., 2) undistorted normalised image coordinates (x/z, y/z)."""
        d = np.asarray(pixels, dtype=np.float64) - self.K[:2, 2]
        # K's upper-left block is upper triangular (fx, skew, fy): solved directly, which is
        # also far cheaper than a LAPACK inverse in a per-frame loop.
        y = d[..., 1] / self.K[1, 1]
        x = (d[..., 0] - self.K[0, 1] * y) / self.K[0, 0]
        return self._undistort(np.stack([x, y], axis=-1))

    def unproject(self, pixels: np.ndarray, depth: np.ndarray | float) -> np.ndarray:
        """Pixels (..., 2) at camera-frame depth z (...,) -> (..., 3) world points."""
        xy = self.normalized(pixels)
        depth = np.asarray(depth, dtype=np.float64)[..., None]
        pc = np.concatenate([xy * depth, np.broadcast_to(depth, xy.shape[:-1] + (1,))], axis=-1)
        return self.camera_to_world(pc)

    def _distort(self, xy: np.ndarray) -> np.ndarray:
        d = np.zeros(5)
        d[: min(5, self.dist.size)] = self.dist[:5]
        if not np.any(d):
            return xy
        k1, k2, p1, p2, k3 = d
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([xd, yd], axis=-1)

    def _undistort(self, xy: np.ndarray) -> np.ndarray:
        if not np.any(self.dist):
            return xy
        from lift3d.distortion import invert_distortion

        d = np.zeros(5)
        d[: min(5, self.dist.size)] = self.dist[:5]
        flat = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        x, y, good = invert_distortion(flat[:, 0], flat[:, 1], list(d))
        # Where the lens model cannot be inverted (far outside the image), keep the pixel's
        # distorted direction rather than a NaN.
        return np.where(good[:, None], np.stack([x, y], -1), flat).reshape(np.shape(xy))

    def to_dict(self) -> dict[str, Any]:
        return {
            "K": self.K.tolist(), "dist": self.dist.tolist(), "R": self.R.tolist(),
            "t": self.t.tolist(), "image_size": list(self.image_size),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Camera":
        try:
            return cls(K=d["K"], dist=d.get("dist", np.zeros(5)), R=d.get("R", np.eye(3)),
                       t=d.get("t", np.zeros(3)), image_size=d["image_size"])
        except (KeyError, TypeError) as e:
            raise LoadError(f"camera description is missing or has a malformed field: {e}") from None

    def save(self, path: str | Path) -> None:
        """Write the camera as JSON (atomically)."""
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "Camera":
        path = Path(path)
        if not path.is_file():
            raise LoadError(f"camera file not found: {path}")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise LoadError(f"camera file {path} is not valid JSON ({e})") from None


def _check_points(data: np.ndarray, last: int, what: str) -> np.ndarray:
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 3:  # (T, J, C): one person
        data = data[:, None]
    if data.ndim != 4 or data.shape[-1] != last:
        raise ValueError(f"{what} must have shape (T, P, J, {last}), got {data.shape}")
    return data


@dataclass
class Keypoints2D:
    """2D keypoints of P tracked people over T frames.

    Attributes:
        data: (T, P, J, 3) pixel x, y and confidence in [0, 1]; missing joints have confidence 0.
        format: keypoint format name (see ``lift3d.formats``).
        fps: frames per second.
        image_size: (width, height) in pixels.
    """

    data: np.ndarray
    format: str
    fps: float
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        data = _check_points(self.data, 3, "Keypoints2D.data")
        if data.shape[2] != len(formats.names(self.format)):
            raise ValueError(
                f"format {self.format} has {len(formats.names(self.format))} joints, data has {data.shape[2]}"
            )
        bad = ~np.isfinite(data).all(axis=-1)
        data[bad] = 0.0  # NaN in, confidence 0 out: the public types never carry NaN
        data[..., 2] = np.clip(data[..., 2], 0.0, 1.0)
        self.data = data
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        self.fps = float(self.fps)

    @property
    def xy(self) -> np.ndarray:
        """(T, P, J, 2) pixel coordinates."""
        return self.data[..., :2]

    @property
    def confidence(self) -> np.ndarray:
        """(T, P, J) confidences."""
        return self.data[..., 2]

    @property
    def num_frames(self) -> int:
        return self.data.shape[0]

    @property
    def num_people(self) -> int:
        return self.data.shape[1]

    @property
    def joint_names(self) -> list[str]:
        return formats.names(self.format)

    def to_format(self, fmt: str) -> "Keypoints2D":
        """The same keypoints in another named format (see ``lift3d.formats.convert``)."""
        return Keypoints2D(formats.convert(self.data, self.format, fmt), fmt, self.fps, self.image_size)

    def save(self, path: str | Path) -> None:
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez_compressed(tmp, data=self.data, format=self.format, fps=self.fps,
                                image_size=np.array(self.image_size), kind="Keypoints2D")

    @classmethod
    def load(cls, path: str | Path) -> "Keypoints2D":
        z = load_npz(path, ["data", "format", "fps", "image_size"])
        return cls(z["data"], str(z["format"]), float(z["fps"]), tuple(z["image_size"]))


@dataclass
class Joints3D:
    """3D joints of P people over T frames.

    Attributes:
        data: (T, P, J, 3) positions in metres.
        format: joint format name.
        fps: frames per second.
        frame: "camera" (OpenCV camera frame) or "world" (Y up).
        confidence: (T, P, J) in [0, 1]; ones if not given.
    """

    data: np.ndarray
    format: str
    fps: float
    frame: str = "camera"
    confidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        data = _check_points(self.data, 3, "Joints3D.data")
        if data.shape[2] != len(formats.names(self.format)):
            raise ValueError(f"format {self.format} has {len(formats.names(self.format))} joints, data has {data.shape[2]}")
        if self.frame not in ("camera", "world"):
            raise ValueError(f"frame must be 'camera' or 'world', got {self.frame!r}")
        conf = np.ones(data.shape[:3]) if self.confidence is None else np.asarray(self.confidence, dtype=np.float64).reshape(data.shape[:3])
        bad = ~np.isfinite(data).all(axis=-1)
        data[bad] = 0.0
        conf = np.where(bad, 0.0, conf)
        self.data, self.confidence, self.fps = data, conf, float(self.fps)

    @property
    def num_frames(self) -> int:
        return self.data.shape[0]

    def to_format(self, fmt: str) -> "Joints3D":
        both = np.concatenate([self.data, self.confidence[..., None]], axis=-1)
        out = formats.convert(both, self.format, fmt)
        return Joints3D(out[..., :3], fmt, self.fps, self.frame, out[..., 3])

    def save(self, path: str | Path) -> None:
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez_compressed(tmp, data=self.data, format=self.format, fps=self.fps,
                                frame=self.frame, confidence=self.confidence, kind="Joints3D")

    @classmethod
    def load(cls, path: str | Path) -> "Joints3D":
        z = load_npz(path, ["data", "format", "fps", "frame", "confidence"])
        return cls(z["data"], str(z["format"]), float(z["fps"]), str(z["frame"]), z["confidence"])


@dataclass
class BodyFit:
    """A body model fitted to a sequence: everything needed to rebuild meshes and joints.

    Attributes:
        model_name: body model name understood by ``body_models.load`` ("anny", "smpl", ...).
        pose: (T, P, J, 3, 3) local joint rotations; joint 0 is the global orientation.
        shape: (P, S) shape parameters, shared by all frames of a person.
        transl: (T, P, 3) root translation in metres.
        fps: frames per second.
        frame: "camera" or "world" coordinates of the result.
        camera: the camera the fit was made through, if any.
        quality: per-frame diagnostics, each (T, P), e.g. "reprojection_px".
        model_kwargs: arguments to rebuild the body model (e.g. {"gender": "neutral"}).
    """

    model_name: str
    pose: np.ndarray
    shape: np.ndarray
    transl: np.ndarray
    fps: float
    frame: str = "camera"
    camera: Camera | None = None
    quality: dict[str, np.ndarray] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pose = np.asarray(self.pose, dtype=np.float64)
        self.shape = np.asarray(self.shape, dtype=np.float64)
        self.transl = np.asarray(self.transl, dtype=np.float64)
        T, P = self.pose.shape[:2]
        if self.pose.ndim != 5 or self.pose.shape[-2:] != (3, 3):
            raise ValueError(f"BodyFit.pose must be (T, P, J, 3, 3), got {self.pose.shape}")
        if self.transl.shape != (T, P, 3) or self.shape.ndim != 2 or self.shape.shape[0] != P:
            raise ValueError("BodyFit.transl must be (T, P, 3) and shape (P, S)")
        self.fps = float(self.fps)

    @property
    def num_frames(self) -> int:
        return self.pose.shape[0]

    @property
    def num_people(self) -> int:
        return self.pose.shape[1]

    def body_model(self, device: str = "cpu"):
        """The body model this fit was made with (built on first use, then cached)."""
        import body_models

        return body_models.load(self.model_name, device=device, **self.model_kwargs)

    def _evaluate(self, person: int, batch: int, what: str, model=None, fmt: str | None = None) -> np.ndarray:
        import torch

        model = model or self.body_model()
        outs = []
        with torch.no_grad():
            for s in range(0, self.num_frames, batch):
                sl = slice(s, s + batch)
                n = self.pose[sl].shape[0]
                out = model(
                    pose=torch.as_tensor(self.pose[sl, person], dtype=model.dtype),
                    shape=torch.as_tensor(self.shape[person], dtype=model.dtype)[None].expand(n, -1),
                    transl=torch.as_tensor(self.transl[sl, person], dtype=model.dtype),
                )
                if what == "vertices":
                    outs.append(out.vertices.cpu().numpy())
                elif what == "joints":
                    outs.append(out.joints.cpu().numpy())
                else:
                    outs.append(model.keypoints(out, fmt)[..., :3].cpu().numpy())
        return np.concatenate(outs, axis=0)

    def vertices(self, person: int = 0, model=None, batch: int = 64) -> np.ndarray:
        """(T, V, 3) mesh vertices of one person, in the fit's frame."""
        return self._evaluate(person, batch, "vertices", model)

    def joints(self, person: int = 0, model=None, batch: int = 64) -> np.ndarray:
        """(T, J, 3) kinematic joint positions of one person, in the fit's frame."""
        return self._evaluate(person, batch, "joints", model)

    def standing_height(self, model=None) -> np.ndarray:
        """(P,) each person's fitted stature in metres (``BodyModel.standing_height``)."""
        import torch

        model = model or self.body_model()
        with torch.no_grad():
            return model.standing_height(torch.as_tensor(self.shape, dtype=model.dtype)).double().cpu().numpy()

    def keypoints3d(self, fmt: str = "coco17", person: int = 0, model=None, batch: int = 64) -> np.ndarray:
        """(T, K, 3) named 3D keypoints of one person (format ``fmt``), in the fit's frame."""
        return self._evaluate(person, batch, "keypoints", model, fmt)

    def in_camera_frame(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) points in this fit's frame -> the camera frame (a world fit's camera holds
        the world-to-camera extrinsics)."""
        if self.frame == "camera" or self.camera is None:
            return np.asarray(points)
        return self.camera.world_to_camera(points)

    def subset(self, frames) -> "BodyFit":
        """The same fit restricted to some frames (a slice, or a list of frame indices)."""
        q = {k: v[frames] for k, v in self.quality.items()}
        return BodyFit(self.model_name, self.pose[frames], self.shape, self.transl[frames], self.fps,
                       self.frame, self.camera, q, self.model_kwargs)

    def export(self, path: str | Path, format: str | None = None, **kwargs: Any) -> Path:
        """Write an animation or mesh file: BVH, FBX, GLB/glTF, OBJ/PLY per frame or a mesh npz.

        The format comes from ``format`` or the extension; options (``person``, ``naming`` =
        "model" | "mixamo" | "unity" | "ue", ``units``, ``stride``) are those of
        ``lift3d.export.export_fit``.
        """
        from lift3d.export import export_fit

        return export_fit(self, path, format, **kwargs)

    def faces(self, model=None) -> np.ndarray:
        """(F, 3) triangle indices of the body model's mesh."""
        model = model or self.body_model()
        return model.faces.cpu().numpy()

    def save(self, path: str | Path) -> None:
        arrays = {f"quality_{k}": v for k, v in self.quality.items()}
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez_compressed(
                tmp, kind="BodyFit", model_name=self.model_name, pose=self.pose, shape=self.shape,
                transl=self.transl, fps=self.fps, frame=self.frame,
                camera=json.dumps(self.camera.to_dict() if self.camera else None),
                model_kwargs=json.dumps(self.model_kwargs), **arrays,
            )

    @classmethod
    def load(cls, path: str | Path) -> "BodyFit":
        z = load_npz(path, ["model_name", "pose", "shape", "transl", "fps"])
        cam = json.loads(str(z["camera"])) if "camera" in z else None
        return cls(
            model_name=str(z["model_name"]), pose=z["pose"], shape=z["shape"], transl=z["transl"],
            fps=float(z["fps"]), frame=str(z.get("frame", "camera")),
            camera=Camera.from_dict(cam) if cam else None,
            quality={k[len("quality_"):]: z[k] for k in z if k.startswith("quality_")},
            model_kwargs=json.loads(str(z["model_kwargs"])) if "model_kwargs" in z else {},
        )
