"""Multi-camera calibration files of other tools: read and write them as ``lift3d`` cameras.

Every reader returns ``dict[str, Camera]`` ordered by camera name (natural order: "cam2" before
"cam10"); every writer writes atomically (a crash leaves the previous file, never half a file).

Formats (``fmt`` names):

- ``"pose2sim"`` / ``"anipose"`` -- TOML with one table per camera::

      [cam_1]
      name = "cam_1"
      size = [1920.0, 1080.0]          # width, height
      matrix = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
      distortions = [k1, k2, p1, p2]   # or 5 with k3
      rotation = [rx, ry, rz]          # Rodrigues vector, world-to-camera
      translation = [tx, ty, tz]       # world-to-camera
      fisheye = false
      [metadata]
      adjusted = false
      error = 0.0

  The two tools share the layout; they differ in the unit of ``translation``: Pose2Sim writes
  metres, anipose writes the unit the board's square length was given in (often millimetres).
  ``units`` is the size of one file unit in metres: 1.0 (the default, Pose2Sim) or e.g. 0.001
  for an anipose file calibrated with the board in millimetres. Reading a file whose camera
  centres lie further than 50 units from the origin without giving ``units`` warns that they
  look like millimetres. Fisheye cameras (``fisheye = true``) are refused: ``Camera`` carries the
  OpenCV pinhole model only.

- ``"easymocap"`` -- a folder with ``intri.yml`` (``names`` list, ``K_<name>``, ``dist_<name>``
  (or ``D_<name>``), optional ``H_<name>``/``W_<name>``) and ``extri.yml`` (``R_<name>``
  Rodrigues 3x1, read first as EasyMocap does, else ``Rot_<name>`` 3x3; ``T_<name>`` 3x1 in
  metres), OpenCV FileStorage YAML; both R_ and Rot_ are written. When a file has no image
  size, the size is taken as twice the principal point (rounded), and said so in a warning.

- ``"opencv"`` -- one OpenCV FileStorage file, YAML (``.yml``/``.yaml``) or XML (``.xml``). Written
  as::

      camera_names: ["cam_1", ...]     # the cameras in order (lets a reader notice a truncated file)
      camera_0:                        # camera_<i>: keys must be identifiers, names need not be
         name: "cam_1"
         image_width: 1280
         image_height: 720
         camera_matrix: !!opencv-matrix 3x3
         distortion_coefficients: !!opencv-matrix 1xN
         rotation: !!opencv-matrix 3x3     # world-to-camera (3x1 or 1x3 is read as Rodrigues)
         translation: !!opencv-matrix 3x1  # world-to-camera, metres

  Read as well: a single camera at the top level (OpenCV's calibration sample writes
  ``camera_matrix``, ``distortion_coefficients``, ``image_width``, ``image_height``) and the key
  variants ``cameraMatrix``/``K``/``M``/``intrinsics``, ``dist_coeffs``/``distCoeffs``/``D``/``dist``,
  ``R``/``rvec``/``rotation_matrix``, ``T``/``t``/``tvec``, ``image_size``/``imageSize`` [w, h],
  ``width``/``height``. ``units`` scales translations here too.

- ``"json"`` -- lift3d's own: ``{"name": Camera.to_dict(), ...}`` (written), or a list of
  ``Camera.to_dict()`` (names from their ``"name"`` field, else ``cam_<i>``), or one
  ``Camera.to_dict()`` (named after the file), as ``Camera.save`` writes it.

The world frame is the file's own: a Z-up Pose2Sim world stays Z-up here (see
``lift3d.fusion.calibration.transform_world`` to re-orient it to lift3d's Y-up convention).
"""
from __future__ import annotations

import json
import math
import re
import tomllib
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lift3d.io_utils import LoadError, atomic_path
from lift3d.types import Camera

__all__ = ["load_calibration", "save_calibration", "FORMATS"]

FORMATS = ("pose2sim", "anipose", "easymocap", "opencv", "json")
_FMT_ALIASES = {"toml": "pose2sim", "yaml": "opencv", "yml": "opencv", "xml": "opencv"}
# Distortion vector lengths OpenCV's pinhole model accepts.
_DIST_LENGTHS = (4, 5, 8, 12, 14)
# FileStorage keys must start with a letter or '_' and hold only letters, digits, '_' and '-'.
_FS_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class _Bad(Exception):
    """A problem inside a file; turned into a LoadError naming the file by the public functions."""


# --------------------------------------------------------------------------- public API


def load_calibration(path: str | Path, fmt: str | None = None, units: float | None = None) -> dict[str, Camera]:
    """Read a multi-camera calibration file (or EasyMocap folder) into lift3d cameras.

    Args:
        path: a .toml, .yml/.yaml, .xml or .json file, or a folder holding intri.yml + extri.yml
            (EasyMocap; naming either file also works).
        fmt: one of ``FORMATS`` (also "toml", "yaml", "xml"); when None, from the extension,
            checked against the content for YAML (an intri.yml or extri.yml under another name
            is EasyMocap) and from the content alone for unknown extensions.
        units: metres per translation unit in the file (0.001 for millimetres). None means
            metres, except that a TOML whose cameras look like millimetres triggers a warning.

    Returns:
        {camera name: Camera}, ordered by name (natural order). R, t map world to camera;
        t in metres.

    Raises:
        LoadError: missing, unreadable, truncated or malformed file, with one line naming the
            file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise LoadError(f"calibration file not found: {path}")
    fmt = _resolve_format(path, fmt)
    readers = {"pose2sim": _read_toml, "anipose": _read_toml, "easymocap": _read_easymocap,
               "opencv": _read_opencv, "json": _read_json}
    try:
        cams = readers[fmt](path, units)
        if not cams:
            raise _Bad("no cameras in the file")
    except _Bad as e:
        raise LoadError(f"cannot load calibration {path}: {e}") from None
    return {name: cams[name] for name in sorted(cams, key=_natural_key)}


def save_calibration(cameras: Mapping[str, Camera] | Sequence[Camera], path: str | Path,
                     fmt: str | None = None, units: float = 1.0) -> Path:
    """Write cameras in another tool's calibration format (atomically).

    Args:
        cameras: {name: Camera} (written in this order) or a list (named cam_1, cam_2, ...).
        path: output file; for "easymocap" a folder that receives intri.yml and extri.yml.
        fmt: one of ``FORMATS``; from the extension when None (.toml -> pose2sim,
            .yml/.yaml/.xml -> opencv, .json -> json, no extension -> easymocap).
        units: metres per translation unit written (0.001 writes millimetres, as anipose files
            calibrated in millimetres hold). Applies to pose2sim/anipose and opencv.

    Returns:
        The path written (the folder for EasyMocap).
    """
    path = Path(path)
    cams = _named(cameras)
    if fmt is None:
        fmt = _format_from_extension(path) or ("easymocap" if path.suffix == "" else None)
        if fmt is None:
            raise ValueError(f"cannot tell the calibration format from {path.name!r}; pass fmt= one of {FORMATS}")
    fmt = _FMT_ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise ValueError(f"unknown calibration format {fmt!r}; expected one of {FORMATS}")
    if not units > 0:
        raise ValueError(f"units must be positive, got {units}")
    if fmt in ("pose2sim", "anipose"):
        _write_text(path, _toml_text(cams, units))
    elif fmt == "opencv":
        _write_text(path, _opencv_text(cams, units, xml=path.suffix.lower() == ".xml"))
    elif fmt == "json":
        _write_text(path, json.dumps({n: c.to_dict() for n, c in cams.items()}, indent=2))
    else:
        if path.name in ("intri.yml", "extri.yml"):
            path = path.parent
        intri, extri = _easymocap_texts(cams)
        path.mkdir(parents=True, exist_ok=True)
        _write_text(path / "intri.yml", intri)
        _write_text(path / "extri.yml", extri)
    return path


# --------------------------------------------------------------------------- format detection


def _format_from_extension(path: Path) -> str | None:
    ext = path.suffix.lower()
    return {".toml": "pose2sim", ".json": "json", ".xml": "opencv", ".yml": "opencv", ".yaml": "opencv"}.get(ext)


def _resolve_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        fmt = _FMT_ALIASES.get(fmt, fmt)
        if fmt not in FORMATS:
            raise ValueError(f"unknown calibration format {fmt!r}; expected one of {FORMATS}")
        return fmt
    if path.is_dir():
        if (path / "intri.yml").is_file() and (path / "extri.yml").is_file():
            return "easymocap"
        raise LoadError(f"cannot load calibration {path}: a folder must hold EasyMocap's intri.yml and extri.yml")
    if path.name in ("intri.yml", "extri.yml"):
        return "easymocap"
    found = _format_from_extension(path)
    if found in ("opencv", None):
        found = _sniff(path) or found
    if found is None:
        raise LoadError(f"cannot load calibration {path}: unknown extension {path.suffix!r} and unrecognised "
                        f"content (expected .toml, .yml, .yaml, .xml or .json, or an EasyMocap folder)")
    return found


def _sniff(path: Path) -> str | None:
    """The format from a file's first bytes: EasyMocap's intri/extri YAML under another name
    (a ``names`` list with K_ or R_/T_ keys), other FileStorage, JSON, or TOML tables."""
    try:
        head = path.read_bytes()[:65536].decode("utf-8", errors="replace")
    except OSError:
        return None
    text = head.lstrip()
    if text.startswith(("%YAML", "<?xml", "<opencv_storage")):
        if re.search(r"^names:", head, re.M) and re.search(r"^(K|R|Rot|T)_\S+:", head, re.M):
            return "easymocap"
        return "opencv"
    if text.startswith(("{", "[")) and not text.startswith("[cam") and not re.match(r"\[\w+\]\s*\n", text):
        return "json"
    if re.match(r"\[[\w.\-\"]+\]\s*\n", text):
        return "pose2sim"
    return None


# --------------------------------------------------------------------------- validation


def _natural_key(text: str) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in re.split(r"(\d+)", text) if p]


def _array(value: Any, what: str, shapes: Sequence[tuple[int, ...]]) -> np.ndarray:
    """``value`` as a float array of one of ``shapes`` (after squeezing 1-sized axes for vectors)."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):  # text, or ragged nested lists
        raise _Bad(f"{what} is not a rectangular numeric array") from None
    for shape in shapes:
        if len(shape) == 1 and a.size == shape[0] and sum(s > 1 for s in a.shape) <= 1:
            a = a.reshape(shape)
        if a.shape == shape:
            break
    else:
        raise _Bad(f"{what} has shape {a.shape}, expected {' or '.join(str(s) for s in shapes)}")
    if not np.all(np.isfinite(a)):
        raise _Bad(f"{what} contains NaN or infinity")
    return a


def _rotation(value: Any, what: str) -> np.ndarray:
    """A 3x3 rotation from a 3x3 matrix or a Rodrigues 3-vector; refuses non-rotations."""
    a = _array(value, what, [(3, 3), (3,)])
    R = cv2.Rodrigues(a)[0] if a.shape == (3,) else a
    # Files print 6-17 digits; 1e-4 accepts rounded matrices and rejects anything else.
    if np.abs(R.T @ R - np.eye(3)).max() > 1e-4 or np.linalg.det(R) < 0:
        raise _Bad(f"{what} is not a rotation matrix (R^T R != I or det < 0)")
    return R


def _camera(name: str, K: Any, dist: Any, R: Any, t: Any, size: Any, units: float = 1.0) -> Camera:
    """Validate the raw fields of one camera and build it; problems name the camera."""
    K = _array(K, f"camera {name!r}: matrix", [(3, 3)])
    dist = np.zeros(5) if dist is None else _array(dist, f"camera {name!r}: distortions", [(np.size(dist),)])
    if dist.size not in _DIST_LENGTHS:
        raise _Bad(f"camera {name!r}: {dist.size} distortion coefficients (OpenCV takes {_DIST_LENGTHS})")
    R = _rotation(R, f"camera {name!r}: rotation")
    t = _array(t, f"camera {name!r}: translation", [(3,)]) * units
    size = _array(size, f"camera {name!r}: image size", [(2,)])
    if np.any(size < 1) or np.any(np.abs(size - np.round(size)) > 1e-6):
        raise _Bad(f"camera {name!r}: image size {size.tolist()} is not two positive integers")
    try:
        return Camera(K=K, dist=dist, R=R, t=t, image_size=(int(round(size[0])), int(round(size[1]))))
    except ValueError as e:
        raise _Bad(f"camera {name!r}: {e}") from None


def _named(cameras: Mapping[str, Camera] | Sequence[Camera]) -> dict[str, Camera]:
    if isinstance(cameras, Mapping):
        cams = {str(k): v for k, v in cameras.items()}
    else:
        cams = {f"cam_{i + 1}": c for i, c in enumerate(cameras)}
    if not cams:
        raise ValueError("no cameras to write")
    for name, cam in cams.items():
        if not isinstance(cam, Camera):
            raise TypeError(f"camera {name!r} is a {type(cam).__name__}, not a lift3d.types.Camera")
    return cams


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _Bad("not a text file") from None
    except OSError as e:
        raise _Bad(e.strerror or str(e)) from None


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def _warn_if_millimetres(cams: dict[str, Camera], path: Path) -> None:
    centres = np.array([np.linalg.norm(c.center) for c in cams.values()])
    if np.median(centres) > 50:
        warnings.warn(f"{path}: camera centres lie {np.median(centres):.0f} units from the origin, which "
                      f"looks like millimetres (an anipose file?); pass units=0.001 to read them as such",
                      stacklevel=3)


# --------------------------------------------------------------------------- TOML (Pose2Sim, anipose)


def _read_toml(path: Path, units: float | None) -> dict[str, Camera]:
    try:
        doc = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as e:
        raise _Bad(f"not valid TOML ({e})") from None
    cams: dict[str, Camera] = {}
    for key, table in doc.items():
        if key == "metadata" or not isinstance(table, dict):
            continue
        missing = [k for k in ("matrix", "rotation", "translation", "size") if k not in table]
        if missing:
            raise _Bad(f"table [{key}] lacks {', '.join(missing)}")
        if table.get("fisheye", False):
            raise _Bad(f"camera [{key}] is a fisheye camera, which lift3d's pinhole Camera cannot represent")
        name = str(table.get("name", key))
        if name in cams:
            raise _Bad(f"two cameras are named {name!r}")
        cams[name] = _camera(name, table["matrix"], table.get("distortions"), table["rotation"],
                             table["translation"], table["size"], 1.0 if units is None else units)
    if units is None and cams:
        _warn_if_millimetres(cams, path)
    return cams


def _toml_value(v: Any) -> str:
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, str):
        # JSON strings without ASCII escaping are valid TOML basic strings (TOML forbids the
        # surrogate \u escapes that ensure_ascii would write for characters beyond the BMP).
        return json.dumps(v, ensure_ascii=False)
    f = float(v)
    if not math.isfinite(f):
        raise ValueError("cannot write NaN or infinity to a calibration file")
    return repr(f)  # repr round-trips doubles exactly


def _toml_text(cams: dict[str, Camera], units: float) -> str:
    lines = []
    for i, (name, cam) in enumerate(cams.items()):
        rvec = cv2.Rodrigues(cam.R)[0].ravel()
        fields = {
            "name": name, "size": [float(s) for s in cam.image_size], "matrix": cam.K.tolist(),
            "distortions": _short_dist(cam.dist).tolist(), "rotation": rvec.tolist(),
            "translation": (cam.t / units).tolist(), "fisheye": False,
        }
        lines.append(f"[cam_{i + 1}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in fields.items()]
        lines.append("")
    lines += ["[metadata]", "adjusted = false", "error = 0.0", ""]
    return "\n".join(lines)


def _short_dist(dist: np.ndarray) -> np.ndarray:
    """Drop trailing zeros down to OpenCV's shortest accepted length (4), as Pose2Sim writes."""
    nonzero = np.flatnonzero(dist)
    used = int(nonzero[-1]) + 1 if nonzero.size else 0
    n = min(L for L in _DIST_LENGTHS if L >= used)
    out = np.zeros(n)
    out[: min(dist.size, n)] = dist[:n]
    return out


# --------------------------------------------------------------------------- OpenCV FileStorage helpers


def _fs_open(text: str) -> cv2.FileStorage:
    if not text.strip():  # cv2 4.11 raises SystemError, not cv2.error, on an empty buffer
        raise _Bad("not a readable OpenCV FileStorage file (empty)")
    try:
        fs = cv2.FileStorage(text, cv2.FILE_STORAGE_READ | cv2.FILE_STORAGE_MEMORY)
    except cv2.error as e:
        raise _Bad(f"not a readable OpenCV FileStorage file ({_cv_message(e)})") from None
    except SystemError:  # what cv2 4.11 raises for some unparsable buffers
        raise _Bad("not a readable OpenCV FileStorage file (unparsable content)") from None
    if not fs.isOpened():
        raise _Bad("not a readable OpenCV FileStorage file")
    return fs


def _cv_message(e: cv2.error) -> str:
    """The useful part of a cv2.error, on one line."""
    msg = getattr(e, "err", None) or str(e)
    return " ".join(str(msg).split())[:200]


def _node_value(node: cv2.FileNode, what: str) -> Any:
    """A FileNode as a numpy array (matrices, sequences), float (numbers) or str; None if absent."""
    if node is None or node.empty() or node.isNone():
        return None
    try:
        if node.isString():
            return node.string()
        if node.isInt() or node.isReal():
            return node.real()
        if node.isSeq():  # plain YAML lists (e.g. image_size: [w, h]) as nested Python lists
            return [_node_value(node.at(i), what) for i in range(node.size())]
        mat = node.mat()
    except cv2.error as e:
        raise _Bad(f"{what} is malformed (OpenCV: {_cv_message(e)})") from None
    if mat is None:
        raise _Bad(f"{what} is not a matrix")
    return np.asarray(mat, dtype=np.float64)


def _first(node: cv2.FileNode, keys: Sequence[str], what: str) -> Any:
    for k in keys:
        v = _node_value(node.getNode(k), f"{what}{k}")
        if v is not None:
            return v
    return None


def _seq_strings(node: cv2.FileNode, what: str) -> list[str]:
    if node.empty() or node.isNone():
        return []
    if not node.isSeq():
        raise _Bad(f"{what} is not a list")
    out = []
    for i in range(node.size()):
        item = node.at(i)
        # Hand-written YAML may list bare numbers (- 1) instead of strings ("1").
        out.append(item.string() if item.isString() else f"{item.real():g}")
    return out


def _fs_writer(xml: bool) -> cv2.FileStorage:
    flags = cv2.FILE_STORAGE_WRITE | cv2.FILE_STORAGE_MEMORY
    flags |= cv2.FILE_STORAGE_FORMAT_XML if xml else cv2.FILE_STORAGE_FORMAT_YAML
    return cv2.FileStorage("calibration.xml" if xml else "calibration.yml", flags)


def _fs_write_strings(fs: cv2.FileStorage, key: str, items: Sequence[str]) -> None:
    fs.startWriteStruct(key, cv2.FileNode_SEQ)
    for s in items:
        fs.write("", s)
    fs.endWriteStruct()


def _check_keys(cams: dict[str, Camera], fmt: str) -> None:
    bad = [n for n in cams if not _FS_KEY.match(f"K_{n}")]
    if bad:
        raise ValueError(f"{fmt} keys are built from camera names, which must hold only letters, digits, "
                         f"'_' and '-'; rename {bad}")


# --------------------------------------------------------------------------- EasyMocap


def _read_easymocap(path: Path, units: float | None) -> dict[str, Camera]:
    if path.is_dir():
        intri_path, extri_path = path / "intri.yml", path / "extri.yml"
    elif "extri" in path.name:  # e.g. extri.yml, or scene_extri.yml beside scene_intri.yml
        intri_path, extri_path = path.with_name(path.name.replace("extri", "intri")), path
    else:
        intri_path, extri_path = path, path.with_name(path.name.replace("intri", "extri"))
    if intri_path == extri_path:
        raise _Bad("cannot tell which file holds the intrinsics and which the extrinsics; name them "
                   "intri.yml and extri.yml (EasyMocap's names)")
    for p in (intri_path, extri_path):
        if not p.is_file():
            raise _Bad(f"EasyMocap calibration needs both intri and extri files; {p} is missing")
    intri, extri = _fs_open(_read_text(intri_path)), _fs_open(_read_text(extri_path))
    names = (_seq_strings(intri.getNode("names"), "intri.yml: names")
             or _seq_strings(extri.getNode("names"), "extri.yml: names"))
    if not names:
        raise _Bad("intri.yml has no 'names' list of cameras")
    scale = 1.0 if units is None else units
    cams, guessed = {}, []
    for name in names:
        K = _node_value(intri.getNode(f"K_{name}"), f"intri.yml: K_{name}")
        dist = _first(intri, [f"dist_{name}", f"D_{name}"], "intri.yml: ")
        rot = _first(extri, [f"R_{name}", f"Rot_{name}"], "extri.yml: ")  # EasyMocap itself reads R_
        T = _node_value(extri.getNode(f"T_{name}"), f"extri.yml: T_{name}")
        for value, key, file in ((K, "K", "intri.yml"), (rot, "R", "extri.yml"), (T, "T", "extri.yml")):
            if value is None:
                raise _Bad(f"{file} lacks {key}_{name} (truncated file?)")
        H = _node_value(intri.getNode(f"H_{name}"), f"intri.yml: H_{name}")
        W = _node_value(intri.getNode(f"W_{name}"), f"intri.yml: W_{name}")
        if not (isinstance(W, float) and isinstance(H, float) and W > 0 and H > 0):
            # EasyMocap files often have no image size (or -1); a centred principal point is the best guess.
            K_arr = _array(K, f"intri.yml: K_{name}", [(3, 3)])
            W, H = round(2 * K_arr[0, 2]), round(2 * K_arr[1, 2])
            guessed.append(name)
        cams[name] = _camera(name, K, dist, rot, T, [W, H], scale)
    if guessed:
        warnings.warn(f"{intri_path}: no H_/W_ image size for camera(s) {guessed}; assumed twice the "
                      f"principal point", stacklevel=3)
    return cams


def _easymocap_texts(cams: dict[str, Camera]) -> tuple[str, str]:
    _check_keys(cams, "EasyMocap")
    intri, extri = _fs_writer(False), _fs_writer(False)
    _fs_write_strings(intri, "names", list(cams))
    _fs_write_strings(extri, "names", list(cams))
    for name, cam in cams.items():
        intri.write(f"K_{name}", cam.K)
        intri.write(f"dist_{name}", cam.dist[None, :])  # EasyMocap keeps dist as a 1xN row
        intri.write(f"H_{name}", int(cam.image_size[1]))
        intri.write(f"W_{name}", int(cam.image_size[0]))
        extri.write(f"R_{name}", cv2.Rodrigues(cam.R)[0])
        extri.write(f"Rot_{name}", cam.R)
        extri.write(f"T_{name}", cam.t[:, None])
    return intri.releaseAndGetString(), extri.releaseAndGetString()


# --------------------------------------------------------------------------- OpenCV YAML / XML

_K_KEYS = ("camera_matrix", "cameraMatrix", "K", "M", "intrinsics", "intrinsic_matrix")
_D_KEYS = ("distortion_coefficients", "dist_coeffs", "distCoeffs", "dist", "D", "distortion")
_R_KEYS = ("rotation", "rotation_matrix", "R", "rvec", "rotation_vector")
_T_KEYS = ("translation", "T", "t", "tvec", "translation_vector")


def _opencv_camera(node: cv2.FileNode, name: str, scale: float) -> Camera:
    where = f"camera {name!r}: "
    K = _first(node, _K_KEYS, where)
    if K is None:
        raise _Bad(f"{where}no camera matrix ({'/'.join(_K_KEYS)})")
    dist = _first(node, _D_KEYS, where)
    R = _first(node, _R_KEYS, where)
    t = _first(node, _T_KEYS, where)
    size = _first(node, ("image_size", "imageSize"), where)
    if size is None:
        w, h = _first(node, ("image_width", "width"), where), _first(node, ("image_height", "height"), where)
        if w is None or h is None:
            raise _Bad(f"{where}no image_width/image_height (or image_size)")
        size = [w, h]
    return _camera(name, K, dist, np.eye(3) if R is None else R, np.zeros(3) if t is None else t, size, scale)


def _read_opencv(path: Path, units: float | None) -> dict[str, Camera]:
    fs = _fs_open(_read_text(path))
    scale = 1.0 if units is None else units
    root = fs.root()
    if _first(root, _K_KEYS, "") is not None:  # one camera at the top level
        return {path.stem: _opencv_camera(root, path.stem, scale)}
    cams: dict[str, Camera] = {}
    for key in root.keys():
        node = root.getNode(key)
        if not node.isMap():
            continue
        label = node.getNode("name")
        name = label.string() if label.isString() else key
        if name in cams:
            raise _Bad(f"two cameras are named {name!r}")
        cams[name] = _opencv_camera(node, name, scale)
    listed = _seq_strings(root.getNode("camera_names"), "camera_names")
    missing = [n for n in listed if n not in cams]
    if missing:
        raise _Bad(f"camera(s) {missing} listed in camera_names are missing (truncated file?)")
    return cams


def _opencv_text(cams: dict[str, Camera], units: float, xml: bool) -> str:
    fs = _fs_writer(xml)
    _fs_write_strings(fs, "camera_names", list(cams))
    for i, (name, cam) in enumerate(cams.items()):
        fs.startWriteStruct(f"camera_{i}", cv2.FileNode_MAP)
        fs.write("name", name)
        fs.write("image_width", int(cam.image_size[0]))
        fs.write("image_height", int(cam.image_size[1]))
        fs.write("camera_matrix", cam.K)
        fs.write("distortion_coefficients", cam.dist[None, :])
        fs.write("rotation", cam.R)
        fs.write("translation", (cam.t / units)[:, None])
        fs.endWriteStruct()
    return fs.releaseAndGetString()


# --------------------------------------------------------------------------- lift3d JSON


def _read_json(path: Path, units: float | None) -> dict[str, Camera]:
    try:
        doc = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise _Bad(f"not valid JSON ({e})") from None
    scale = 1.0 if units is None else units
    if isinstance(doc, dict) and "K" in doc:
        entries = [(path.stem, doc)]
    elif isinstance(doc, dict):
        entries = list(doc.items())
    elif isinstance(doc, list):
        entries = [(str(d.get("name", f"cam_{i + 1}")) if isinstance(d, dict) else f"cam_{i + 1}", d)
                   for i, d in enumerate(doc)]
    else:
        raise _Bad("expected a camera, a list of cameras or a {name: camera} object")
    cams: dict[str, Camera] = {}
    for name, d in entries:
        if not isinstance(d, dict):
            raise _Bad(f"camera {name!r} is not an object")
        missing = [k for k in ("K", "image_size") if k not in d]
        if missing:
            raise _Bad(f"camera {name!r} lacks {', '.join(missing)}")
        if name in cams:
            raise _Bad(f"two cameras are named {name!r}")
        cams[name] = _camera(name, d["K"], d.get("dist"), d.get("R", np.eye(3)), d.get("t", np.zeros(3)),
                             d["image_size"], scale)
    return cams
