"""Mesh sequences: one OBJ or PLY per frame, or the whole sequence in one compact npz."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lift3d.io_utils import LoadError, atomic_path, load_npz

# Compact npz: vertices as int16 steps of 0.1 mm about each frame's centre (a body spans
# < 3.2 m), a quarter of float64 and exact to 0.05 mm.
STEP = 1e-4


def write_mesh_files(vertices: np.ndarray, faces: np.ndarray, folder: str | Path,
                     frames: list[int] | None = None, fmt: str = "ply",
                     progress: bool = True) -> list[Path]:
    """One mesh file per frame, ``frame_XXXXXX.<fmt>``, each written atomically.

    Args:
        vertices: (T, V, 3) metres.
        faces: (F, 3) triangles.
        folder: output folder (created).
        frames: the frame number of each of the T meshes (for the names); 0..T-1 if None.
        fmt: "ply" (binary) or "obj".
    """
    import trimesh

    if fmt not in ("ply", "obj"):
        raise ValueError(f"mesh format must be 'ply' or 'obj', got {fmt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = list(range(len(vertices))) if frames is None else frames
    paths = []
    for v, t in tqdm(list(zip(vertices, frames)), desc=f"writing {fmt} meshes", disable=not progress,
                     leave=False):
        path = folder / f"frame_{t:06d}.{fmt}"
        with atomic_path(path, suffix=f".{fmt}") as tmp:
            trimesh.Trimesh(v, faces, process=False).export(tmp, file_type=fmt)
        paths.append(path)
    return paths


def write_mesh_npz(vertices: np.ndarray, faces: np.ndarray, path: str | Path, fps: float) -> None:
    """The whole sequence in one compressed npz (read it back with ``load_mesh_npz``).

    Layout: ``faces`` (F, 3) int32; ``centre`` (T, 3) float64 metres; ``offsets`` (T, V, 3)
    int16 in steps of ``step`` metres from each frame's centre; ``fps``.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    centre = 0.5 * (vertices.min(axis=1) + vertices.max(axis=1))
    q = np.round((vertices - centre[:, None]) / STEP)
    if np.abs(q).max(initial=0) > np.iinfo(np.int16).max:
        raise ValueError("a mesh spans more than 6.5 m; the compact npz cannot hold it")
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, kind="MeshSequence", faces=np.asarray(faces, dtype=np.int32),
                            centre=centre, offsets=q.astype(np.int16), step=STEP, fps=float(fps))


def load_mesh_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Read ``write_mesh_npz``'s file: (T, V, 3) vertices in metres, (F, 3) faces, fps."""
    z = load_npz(path, ["faces", "centre", "offsets", "step", "fps"])
    if z["offsets"].ndim != 3 or z["centre"].shape != (z["offsets"].shape[0], 3):
        raise LoadError(f"{path}: not a lift3d mesh sequence (bad array shapes)")
    verts = z["offsets"].astype(np.float64) * float(z["step"]) + z["centre"][:, None]
    return verts, z["faces"].astype(np.int64), float(z["fps"])
