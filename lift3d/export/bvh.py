"""BVH (Biovision Hierarchy) writer.

Conventions of the files written here, the ones Blender, MotionBuilder, Maya and most
retargeting tools assume:

- Y up, the character facing +Z in its rest pose, right-handed (lift3d's own axes: no
  conversion);
- positions in centimetres by default (``units="m"`` writes metres);
- rotation channels ``Zrotation Xrotation Yrotation`` for every joint, degrees: the local
  rotation is R = Rz(z) @ Rx(x) @ Ry(y) acting on column vectors (intrinsic Z, X', Y'', the
  order of the CMU BVH files);
- the root carries ``Xposition Yposition Zposition`` as its absolute position, with a zero
  OFFSET, so readers that add OFFSET to the channels and readers that take the channels as
  absolute agree;
- the rest pose (all channels zero but the root position) is the fitted body's identity pose,
  bone offsets being its joint differences (the fitted shape's proportions);
- every leaf joint gets an ``End Site`` 5 cm along its bone so readers can draw it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lift3d.export.skeleton import Rig, continuous_euler
from lift3d.io_utils import atomic_path

SCALE = {"cm": 100.0, "m": 1.0}
END_SITE_LENGTH = 0.05  # metres


def _end_site(rig: Rig, j: int) -> np.ndarray:
    """A short offset continuing the bone into joint j, or straight up for a zero-length bone."""
    d = rig.offsets[j] if rig.parents[j] >= 0 else np.zeros(3)
    n = np.linalg.norm(d)
    return (d / n if n > 1e-6 else np.array([0.0, 1.0, 0.0])) * END_SITE_LENGTH


def write_bvh(rig: Rig, path: str | Path, units: str = "cm") -> None:
    """Write the rig's skeleton and animation as BVH (see the module docstring).

    Args:
        rig: a ``Rig`` (``rig_from_fit(fit, mesh=False)`` is enough).
        path: output file; written to a temporary name, then renamed.
        units: "cm" (default, what most tools expect) or "m".
    """
    if units not in SCALE:
        raise ValueError(f"units must be 'cm' or 'm', got {units!r}")
    s = SCALE[units]
    children: list[list[int]] = [[] for _ in rig.names]
    for j, p in enumerate(rig.parents):
        if p >= 0:
            children[p].append(j)
    roots = [j for j, p in enumerate(rig.parents) if p < 0]
    if roots != [0]:
        raise ValueError("a BVH skeleton needs exactly one root, joint 0")

    lines = ["HIERARCHY"]
    order: list[int] = []  # joints in the order their channels appear

    def emit(j: int, depth: int) -> None:
        pad = "\t" * depth
        order.append(j)
        if j == 0:
            lines.extend([f"ROOT {rig.names[j]}", "{", "\tOFFSET 0.000000 0.000000 0.000000",
                      "\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"])
        else:
            o = rig.offsets[j] * s
            lines.extend([f"{pad}JOINT {rig.names[j]}", f"{pad}{{",
                          f"{pad}\tOFFSET {o[0]:.6f} {o[1]:.6f} {o[2]:.6f}",
                          f"{pad}\tCHANNELS 3 Zrotation Xrotation Yrotation"])
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            e = _end_site(rig, j) * s
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{",
                          f"{pad}\t\tOFFSET {e[0]:.6f} {e[1]:.6f} {e[2]:.6f}", f"{pad}\t}}"])
        lines.append(f"{pad}}}")

    emit(0, 0)
    T = rig.num_frames
    angles = continuous_euler(rig.rotations[:, order], "ZXY")  # (T, J, 3) as z, x, y
    values = np.concatenate([rig.root_positions * s, angles.reshape(T, -1)], axis=1)
    lines += ["MOTION", f"Frames: {T}", f"Frame Time: {1.0 / rig.fps:.10f}"]
    body = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in values)
    with atomic_path(path, suffix=".bvh") as tmp:
        with open(tmp, "w", encoding="ascii", newline="\n") as f:
            f.write("\n".join(lines) + "\n" + body + "\n")
