"""Read an animation file with Blender (the PyPI ``bpy`` module) and dump what Blender sees.

Run as a separate process so Blender's libraries never share a process with torch:

    python tests/blender_read.py FILE OUT.npz [--frames 0,5,9] [--vertices] [--reexport PATH]
        [--bvh-scale 0.01]

OUT.npz holds, in lift3d's axes (Y up, metres; Blender's Z-up world mapped back by
(x, y, z) -> (x, z, -y)):
  names (J,) bone names; heads (F, J, 3) world bone heads at the requested frames;
  frame_start, frame_end (the scene's frame range after import); vertex_count; fps;
  vertices (F, V, 3) the evaluated (skinned) mesh at those frames, with --vertices.
--reexport writes what Blender imported back out (format from the extension: .fbx, .glb,
.bvh), for round-trip tests.
glTF keeps time in seconds and Blender turns it into frames at the scene's frame rate, so
before importing a glTF the scene rate is set to --fps, else to the file's asset.extras.fps
(lift3d writes it), else left at Blender's 24. glTF bones are imported without bone shapes,
so the only meshes are the file's.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys

import numpy as np


def _blender_to_lift3d(p: np.ndarray) -> np.ndarray:
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def _gltf_fps(path: str) -> float | None:
    """The frame rate a glTF/GLB file records in asset.extras.fps, if any."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"glTF":  # GLB: 12-byte header, then the JSON chunk (length, type, bytes)
        data = data[20:20 + struct.unpack_from("<I", data, 12)[0]]
    fps = (json.loads(data).get("asset", {}).get("extras") or {}).get("fps")
    return float(fps) if isinstance(fps, (int, float)) and fps > 0 else None


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("out")
    ap.add_argument("--frames", default="")
    ap.add_argument("--vertices", action="store_true")
    ap.add_argument("--reexport", default="")
    ap.add_argument("--bvh-scale", type=float, default=0.01)
    ap.add_argument("--fps", type=float, default=0.0)
    a = ap.parse_args(argv)

    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    ext = a.file.lower().rsplit(".", 1)[-1]
    if ext == "bvh":
        bpy.ops.import_anim.bvh(filepath=a.file, global_scale=a.bvh_scale, update_scene_fps=True,
                                update_scene_duration=True, axis_forward="-Z", axis_up="Y")
    elif ext == "fbx":
        bpy.ops.import_scene.fbx(filepath=a.file)
    elif ext in ("glb", "gltf"):
        fps = a.fps or _gltf_fps(a.file)
        if fps:
            # Blender's glTF importer multiplies seconds by fps * fps_base: keep fps_base 1.
            scene = bpy.context.scene
            scene.render.fps, scene.render.fps_base = max(1, round(fps)), 1.0
        bpy.ops.import_scene.gltf(filepath=a.file, disable_bone_shape=True)
    else:
        raise SystemExit(f"unknown extension {ext}")

    scene = bpy.context.scene
    arms = [o for o in scene.objects if o.type == "ARMATURE"]
    if len(arms) != 1:
        raise SystemExit(f"expected one armature, found {len(arms)}")
    arm = arms[0]
    if arm.animation_data and arm.animation_data.action:
        start, end = arm.animation_data.action.frame_range
        scene.frame_start, scene.frame_end = int(round(start)), int(round(end))
    meshes = [o for o in scene.objects if o.type == "MESH"]
    frames = [int(f) for f in a.frames.split(",") if f != ""]
    names = [b.name for b in arm.pose.bones]
    heads, verts = [], []
    for f in frames:
        scene.frame_set(f)
        mw = np.array(arm.matrix_world)
        h = np.array([list(b.head) for b in arm.pose.bones])
        h = h @ mw[:3, :3].T + mw[:3, 3]
        heads.append(_blender_to_lift3d(h))
        if a.vertices and meshes:
            dg = bpy.context.evaluated_depsgraph_get()
            ob = meshes[0].evaluated_get(dg)
            me = ob.to_mesh()
            co = np.zeros(len(me.vertices) * 3)
            me.vertices.foreach_get("co", co)
            co = co.reshape(-1, 3) @ np.array(ob.matrix_world)[:3, :3].T + np.array(ob.matrix_world)[:3, 3]
            verts.append(_blender_to_lift3d(co))
            ob.to_mesh_clear()
    out = dict(names=np.array(names), heads=np.array(heads).reshape(len(frames), len(names), 3),
               frame_start=scene.frame_start, frame_end=scene.frame_end,
               vertex_count=len(meshes[0].data.vertices) if meshes else 0,
               fps=scene.render.fps / scene.render.fps_base)
    if verts:
        out["vertices"] = np.array(verts)
    np.savez(a.out, **out)

    if a.reexport:
        rext = a.reexport.lower().rsplit(".", 1)[-1]
        if rext == "fbx":
            bpy.ops.export_scene.fbx(filepath=a.reexport, add_leaf_bones=False, bake_anim=True)
        elif rext in ("glb", "gltf"):
            bpy.ops.export_scene.gltf(filepath=a.reexport, export_format="GLB")
        elif rext == "bvh":
            bpy.context.view_layer.objects.active = arm
            bpy.ops.export_anim.bvh(filepath=a.reexport, global_scale=1.0 / a.bvh_scale,
                                    frame_start=scene.frame_start, frame_end=scene.frame_end)
        else:
            raise SystemExit(f"unknown re-export extension {rext}")


if __name__ == "__main__":
    main(sys.argv[1:])
    # bpy 4.2 segfaults while shutting down after a glTF import (any glTF, Blender's own
    # exports included); everything is written by now, so leave without the teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
