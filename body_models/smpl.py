"""SMPL, SMPL-H and SMPL-X behind the uniform ``BodyModel`` interface, from the user's own files.

The SMPL family is licensed: lift3d cannot ship the model files, so this module only runs when
the user has registered on the model's website, accepted its licence and downloaded the files.
A missing or unreadable file raises ``BodyModelError`` with one message saying where to get the
files and exactly where to put them.

Where the files are looked for (first hit wins, file names matched case-insensitively):

- ``model_path`` pointing at a ``.pkl`` / ``.npz`` file: that file.
- ``model_path`` pointing at a folder, or, when it is None, the folder named by the
  ``LIFT3D_MODELS`` environment variable, else ``~/.lift3d/models``: the smplx layout
  ``<folder>/<kind>/<KIND>_<GENDER>.{npz,pkl}`` (e.g. ``smpl/SMPL_NEUTRAL.pkl``,
  ``smplx/SMPLX_NEUTRAL.npz``), the same names directly in ``<folder>``, and the names the files
  have when downloaded (``basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl`` for SMPL,
  ``smplh/<gender>/model.npz`` for the extended SMPL+H of the MANO site).

Loading is safe: ``.npz`` files are read with ``allow_pickle=False`` and ``.pkl`` files through
``_RestrictedUnpickler``, which builds numpy arrays, scipy CSC/CSR matrices (as dense arrays) and
inert stand-ins for chumpy objects, and refuses every other global, so a tampered file cannot run
code. chumpy itself is not needed.

Conventions: SMPL's native frame is already lift3d's world frame (metres, Y up, right-handed,
the rest body facing +Z with its left side towards +X), so vertices and joints are used as they
are. The model is posed with smplx's own linear-blend skinning (``smplx.lbs.lbs`` with
``pose2rot=False``): the local rotation matrices go in unchanged, which is exact and
differentiable (no axis-angle round trip, whose gradient is undefined at the identity).
Identity rotations are the model's rest pose, so SMPL-H / SMPL-X hands are flat (smplx's
``flat_hand_mean=True``) and the SMPL-X face has a neutral expression and closed jaw.
"""
from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from smplx.joint_names import JOINT_NAMES as _SMPLX_JOINT_NAMES
from smplx.lbs import batch_rigid_transform, blend_shapes, lbs
from smplx.vertex_ids import vertex_ids as _SMPLX_VERTEX_IDS

from body_models.base import BodyModel, BodyModelError, BodyOutput

MODELS_ENV = "LIFT3D_MODELS"
DEFAULT_MODELS_DIR = Path("~/.lift3d/models")
GENDERS = ("neutral", "male", "female")

# The arrays a model file must hold; everything else in it (priors, symmetry tables, SMPL-X
# landmark tables, hand PCA) is never read, so it can never make loading fail.
REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
                 "kintree_table", "f")


@dataclass(frozen=True)
class _Kind:
    label: str                 # how the model's authors write its name
    prefix: str                # file-name stem used by smplx: SMPL_NEUTRAL.pkl, SMPLX_MALE.npz
    url: str                   # where to register and download
    joint_names: tuple[str, ...]
    vertex_ids: dict[str, int]  # smplx's vertex ids for the face and foot keypoints


_BODY22 = tuple(_SMPLX_JOINT_NAMES[:22])          # pelvis ... right_wrist
_FACE3 = tuple(_SMPLX_JOINT_NAMES[22:25])         # jaw, left_eye_smplhf, right_eye_smplhf
_HANDS30 = tuple(_SMPLX_JOINT_NAMES[25:55])       # left, right: index middle pinky ring thumb

KINDS: dict[str, _Kind] = {
    "smpl": _Kind("SMPL", "SMPL", "https://smpl.is.tue.mpg.de",
                  _BODY22 + ("left_hand", "right_hand"), _SMPLX_VERTEX_IDS["smplh"]),
    # SMPL-H shares SMPL's topology, so smplx draws its extra vertices from the same table.
    "smplh": _Kind("SMPL-H", "SMPLH", "https://mano.is.tue.mpg.de",
                   _BODY22 + _HANDS30, _SMPLX_VERTEX_IDS["smplh"]),
    "smplx": _Kind("SMPL-X", "SMPLX", "https://smpl-x.is.tue.mpg.de",
                   _BODY22 + _FACE3 + _HANDS30, _SMPLX_VERTEX_IDS["smplx"]),
}
# SMPL-X v1.1 files store 300 shape then 100 expression directions in ``shapedirs``; v1.0
# files 10 + 10 (smplx's own reading of the array).
SMPLX_SHAPE_SPACE, SMPLX_EXPRESSION_SPACE = 300, 100

# Native keypoints, named in the lift3d.formats vocabulary: ("j", kinematic joint) or
# ("v", key of smplx.vertex_ids). Face and feet come from surface vertices because the
# skeleton has no joint there; limbs use the kinematic joints (SMPL's hip joints sit inside
# the pelvis, a little medial of COCO's hip labels: close enough for fitting).
KEYPOINT_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("nose", "v", "nose"), ("left_eye", "v", "leye"), ("right_eye", "v", "reye"),
    ("left_ear", "v", "lear"), ("right_ear", "v", "rear"),
    ("left_shoulder", "j", "left_shoulder"), ("right_shoulder", "j", "right_shoulder"),
    ("left_elbow", "j", "left_elbow"), ("right_elbow", "j", "right_elbow"),
    ("left_wrist", "j", "left_wrist"), ("right_wrist", "j", "right_wrist"),
    ("left_hip", "j", "left_hip"), ("right_hip", "j", "right_hip"),
    ("left_knee", "j", "left_knee"), ("right_knee", "j", "right_knee"),
    ("left_ankle", "j", "left_ankle"), ("right_ankle", "j", "right_ankle"),
    ("left_big_toe", "v", "LBigToe"), ("left_small_toe", "v", "LSmallToe"),
    ("left_heel", "v", "LHeel"),
    ("right_big_toe", "v", "RBigToe"), ("right_small_toe", "v", "RSmallToe"),
    ("right_heel", "v", "RHeel"),
)


# --------------------------------------------------------------------------------------------
# Finding the file


def default_models_dir() -> Path:
    """The folder searched when no ``model_path`` is given: $LIFT3D_MODELS or ~/.lift3d/models."""
    env = os.environ.get(MODELS_ENV)
    return Path(env).expanduser() if env else DEFAULT_MODELS_DIR.expanduser()


def _candidates(kind: str, gender: str, folder: Path) -> list[tuple[Path, tuple[str, ...]]]:
    """(folder, file names) pairs to try, in order. npz before pkl: it needs no unpickling."""
    stem = f"{KINDS[kind].prefix}_{gender.upper()}"
    names = (stem + ".npz", stem + ".pkl")
    out = [(folder / kind, names), (folder, names)]
    if kind == "smpl":
        # Names of the files as downloaded from smpl.is.tue.mpg.de (v1.1, v1.0 and the
        # SMPLify neutral model), so users need not rename them.
        short = {"neutral": "neutral", "male": "m", "female": "f"}[gender]
        downloaded = tuple(f"basicmodel_{short}_lbs_10_207_0_v1.{minor}.0.pkl" for minor in (1, 0))
        out += [(folder / kind, downloaded), (folder, downloaded)]
    if kind == "smplh":
        # The "extended SMPL+H" download of the MANO site (also used by AMASS).
        out.append((folder / kind / gender, ("model.npz",)))
    return out


def _find_in(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` present in ``folder``, compared case-insensitively (the
    downloads spell them basicModel_f_..., SMPLH_female.pkl, ...)."""
    if not folder.is_dir():
        return None
    present = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    for n in names:
        if n.lower() in present:
            return present[n.lower()]
    return None


def _missing_message(kind: str, gender: str, searched: list[Path], target: Path) -> str:
    k = KINDS[kind]
    env = os.environ.get(MODELS_ENV)
    env_note = f"currently {env!r}" if env else "currently unset"
    folders = sorted({str(p.parent) for p in searched})
    hint = ""
    if kind == "smplh" and gender == "neutral":
        hint = (" (the SMPL+H release of the MANO site has male and female files: use gender "
                "'male' or 'female', or its 'extended SMPL+H' download, which has a neutral one)")
    # One line: the CLI prints it as its single error line.
    return (
        f"{k.label} model file ({gender}) not found in {', '.join(folders)}; the {k.label} files are "
        f"licensed and cannot ship with lift3d: register at {k.url}, accept the licence, download "
        f"the model and put it at {target} (.npz or .pkl; likewise _MALE/_FEMALE), or set "
        f"{MODELS_ENV} ({env_note}) to the folder holding '{kind}/', or pass model_path= / "
        f"--model-path{hint}"
    )


def find_model_file(kind: str, model_path: str | os.PathLike | None = None,
                    gender: str = "neutral") -> Path:
    """Locate the model file for ``kind`` and ``gender`` (see the module docstring for the search).

    Raises:
        BodyModelError: nothing found; the message says where to download and where to put it.
    """
    kind, gender = _check_kind_gender(kind, gender)
    if model_path is not None:
        path = Path(model_path).expanduser()
        if path.is_file():
            return path
        if path.suffix.lower() in (".pkl", ".npz"):
            # A file was named explicitly and is absent: report that file, not a folder search.
            raise BodyModelError(_missing_message(kind, gender, [path], path))
        folder = path
    else:
        folder = default_models_dir()
    searched: list[Path] = []
    for sub, names in _candidates(kind, gender, folder):
        hit = _find_in(sub, names)
        if hit is not None:
            return hit
        searched += [sub / n for n in names]
    ext = "pkl" if kind == "smpl" else "npz"  # the format each official download comes in
    target = folder / kind / f"{KINDS[kind].prefix}_{gender.upper()}.{ext}"
    raise BodyModelError(_missing_message(kind, gender, searched, target))


def _check_kind_gender(kind: str, gender: str) -> tuple[str, str]:
    kind, gender = str(kind).lower(), str(gender).lower()
    if kind not in KINDS:
        raise BodyModelError(f"unknown SMPL-family model {kind!r}; "
                             f"choose one of {', '.join(KINDS)}")
    if gender not in GENDERS:
        raise BodyModelError(f"unknown gender {gender!r} for {KINDS[kind].label}; "
                             f"choose one of {', '.join(GENDERS)}")
    return kind, gender


# --------------------------------------------------------------------------------------------
# Reading the file without running code


class _Refused(pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list (as opposed to being corrupt)."""


class _ChumpyStub:
    """Inert stand-in for any chumpy class found in a model pickle.

    chumpy's ``Ch.__getstate__`` pickles the instance ``__dict__`` (minus caches), and a plain
    ``Ch`` keeps its value in ``'x'``; this class only stores that state. Subclasses are made
    per pickled class name (``_chumpy_stub``) so errors can say what the object was.
    """

    chumpy_class = "chumpy"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_ChumpyStub":
        # NEWOBJ / REDUCE may pass constructor arguments; they are ignored, never interpreted.
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def value(self) -> np.ndarray:
        """The array this object holds (its ``'x'``); expressions of other objects are refused."""
        if isinstance(self.state, dict) and "x" in self.state:
            return _to_numpy(self.state["x"], self.chumpy_class)
        raise BodyModelError(
            f"the file holds a chumpy expression ({self.chumpy_class}) rather than a stored array; "
            "it cannot be evaluated without chumpy. Re-download the official model file, or "
            "convert the file to .npz with plain numpy arrays.")


_STUBS: dict[str, type[_ChumpyStub]] = {}


def _chumpy_stub(module: str, name: str) -> type[_ChumpyStub]:
    qual = f"{module}.{name}"
    if qual not in _STUBS:
        _STUBS[qual] = type(name, (_ChumpyStub,), {"chumpy_class": qual})
    return _STUBS[qual]


class _SparseStub:
    """Inert stand-in for a pickled scipy CSC / CSR matrix (SMPL's ``J_regressor``).

    scipy pickles these as ``__dict__`` with ``data``, ``indices``, ``indptr`` and ``_shape``
    (``shape`` in old releases); the dense array is rebuilt with numpy, so scipy code never runs.
    """

    compressed_axis = 1  # CSC: indptr runs over columns

    def __new__(cls, *args: Any, **kwargs: Any) -> "_SparseStub":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def value(self) -> np.ndarray:
        s = self.state if isinstance(self.state, dict) else {}
        try:
            data = np.asarray(_to_numpy(s["data"], "sparse data"), dtype=np.float64)
            indices = np.asarray(_to_numpy(s["indices"], "sparse indices"), dtype=np.int64)
            indptr = np.asarray(_to_numpy(s["indptr"], "sparse indptr"), dtype=np.int64)
            shape = tuple(int(n) for n in s.get("_shape", s.get("shape")))
        except (KeyError, TypeError, ValueError) as e:
            raise BodyModelError(f"unreadable sparse matrix in model file ({e!r})") from None
        if len(shape) != 2 or len(indptr) != shape[self.compressed_axis] + 1:
            raise BodyModelError("unreadable sparse matrix in model file (inconsistent shape)")
        dense = np.zeros(shape, dtype=np.float64)
        outer = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        rows, cols = (indices, outer) if self.compressed_axis == 1 else (outer, indices)
        np.add.at(dense, (rows, cols), data)  # add: duplicate entries sum, as in scipy
        return dense


class _CsrStub(_SparseStub):
    compressed_axis = 0


def _numpy_core() -> Any:
    """numpy's core module under either name (``numpy.core`` before 2.0, ``numpy._core`` after)."""
    core = getattr(np, "_core", None)
    return core if core is not None and hasattr(core, "multiarray") else np.core


class _Guarded:
    """An allowed function as the unpickler hands it out. A pickle can apply BUILD (set state)
    to any object it holds, globals included; this wrapper refuses that, so a file cannot
    change the loader's own functions (their defaults or attributes) for later loads."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Any) -> None:
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    def __setstate__(self, state: Any) -> None:
        raise _Refused(f"refusing to modify {self._fn.__name__}")


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """Stand-in for ``copyreg._reconstructor`` (protocol 0/1 pickles of new-style objects):
    only ever instantiates the inert stubs, never runs another class's ``__new__``/``__init__``."""
    if isinstance(cls, type) and issubclass(cls, (_ChumpyStub, _SparseStub)) and base is object:
        return cls.__new__(cls)
    raise _Refused(f"refusing to reconstruct {cls!r}")


def _safe_codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode``: Python 3 writes bytes in protocol 0-2 pickles as
    ``_codecs.encode(text, 'latin1')``; nothing else is allowed through."""
    norm = str(encoding).replace("-", "").replace("_", "").lower()
    if isinstance(obj, str) and norm in ("latin1", "iso88591"):
        return obj.encode("latin1")
    raise _Refused(f"refusing _codecs.encode with encoding {encoding!r}")


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only build plain data: the allow-list lives in ``find_class``.

    Every object a pickle builds other than lists, dicts, tuples, strings and numbers comes
    from a global that ``find_class`` resolves, so refusing all globals but these makes the
    load inert:

    - numpy arrays, dtypes and scalars (``_reconstruct``, ``ndarray``, ``dtype``, ``scalar``),
      under both ``numpy.core`` and ``numpy._core`` module names;
    - ``set``/``frozenset``/``object`` (chumpy state holds sets; protocol 0/1 name ``object``);
    - ``copyreg._reconstructor`` and ``_codecs.encode``, as the restricted stand-ins above;
    - anything in ``chumpy`` -> an inert ``_ChumpyStub`` subclass that keeps its state;
    - scipy CSC / CSR matrices -> ``_SparseStub``, rebuilt as dense arrays with numpy.

    Everything else raises ``_Refused`` (a ``pickle.UnpicklingError``). Module names arrive
    raw (Python 2 spellings such as ``copy_reg`` and ``__builtin__`` included) because this
    override skips pickle's own name fixing.
    """

    def find_class(self, module: str, name: str) -> Any:
        core = _numpy_core()
        if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            if name == "_reconstruct":
                return core.multiarray._reconstruct
            if name == "scalar":
                return core.multiarray.scalar
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module in ("builtins", "__builtin__") and name in ("set", "frozenset", "object"):
            return {"set": set, "frozenset": frozenset, "object": object}[name]
        if module in ("copyreg", "copy_reg") and name == "_reconstructor":
            return _Guarded(_safe_reconstructor)
        if module == "_codecs" and name == "encode":
            return _Guarded(_safe_codecs_encode)
        if module == "chumpy" or module.startswith("chumpy."):
            return _chumpy_stub(module, name)
        if module == "scipy.sparse" or module.startswith("scipy.sparse."):
            if name in ("csc_matrix", "csc_array"):
                return _SparseStub
            if name in ("csr_matrix", "csr_array"):
                return _CsrStub
        raise _Refused(f"global '{module}.{name}' is not allowed in a model file")


def _to_numpy(obj: Any, what: str) -> np.ndarray:
    """A loaded value as a plain numeric numpy array (stubs resolved)."""
    if isinstance(obj, (_ChumpyStub, _SparseStub)):
        return obj.value()
    try:
        arr = np.asarray(obj)
        if arr.dtype == object:  # e.g. a Python 2 list of floats pickled as an object array
            arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise BodyModelError(f"'{what}' in the model file is a {type(obj).__name__}, "
                             "not an array") from None
    return arr


def _unreadable(path: Path, kind: str, why: str) -> BodyModelError:
    k = KINDS[kind]
    return BodyModelError(
        f"cannot read {k.label} model file {path}: {why}. Use the unmodified file from {k.url} "
        f"(registration and licence acceptance required), or pass model_path= / set "
        f"{MODELS_ENV} to point at it.")


def load_model_arrays(path: str | os.PathLike, kind: str = "smpl") -> dict[str, np.ndarray]:
    """Read the arrays of an SMPL-family model file without executing code from it.

    Args:
        path: a ``.npz`` (read with ``allow_pickle=False``) or a ``.pkl`` (read through
            ``_RestrictedUnpickler``, latin1 as the files are Python 2 pickles).
        kind: only used in error messages.
    Returns:
        {key: array} for ``REQUIRED_KEYS``, as plain numpy arrays (chumpy and scipy objects
        converted).
    Raises:
        BodyModelError: unreadable file, missing key, or a pickle that asks for anything
            outside the allow-list ("refusing to load ...").
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in REQUIRED_KEYS if k not in z.files]
                if missing:
                    raise _unreadable(path, kind, f"missing {', '.join(missing)}")
                return {k: z[k] for k in REQUIRED_KEYS}
        with open(path, "rb") as f:
            data = _RestrictedUnpickler(f, encoding="latin1").load()
    except BodyModelError:
        raise
    except _Refused as e:
        raise BodyModelError(f"refusing to load {path}: {e}. Model files hold only arrays; "
                             f"this one asks for other Python objects, which could run code, so "
                             f"it is not an official {KINDS[kind].label} file (get those from "
                             f"{KINDS[kind].url}).") from None
    except ValueError as e:  # np.load on object arrays, corrupt zip members
        raise _unreadable(path, kind, str(e)) from None
    except Exception as e:  # truncated or foreign file: EOFError, zipfile.BadZipFile, ...
        raise _unreadable(path, kind, f"{type(e).__name__}: {e}") from None
    if not isinstance(data, dict):
        raise _unreadable(path, kind, f"expected a dict of arrays, found {type(data).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise _unreadable(path, kind, f"missing {', '.join(missing)}")
    try:
        return {k: _to_numpy(data[k], k) for k in REQUIRED_KEYS}
    except BodyModelError as e:  # add the file's name to what the stubs report
        raise _unreadable(path, kind, str(e)) from None


# --------------------------------------------------------------------------------------------
# The model


class SMPLFamily(BodyModel):
    """SMPL (24 joints), SMPL-H (52) or SMPL-X (55) as a lift3d ``BodyModel``.

    Args:
        kind: "smpl", "smplh" or "smplx".
        model_path: a model file (.pkl / .npz) or a folder to search; None searches
            ``$LIFT3D_MODELS`` or ``~/.lift3d/models`` (see the module docstring).
        gender: "neutral", "male" or "female".
        num_betas: S, shape parameters to use (clamped to what the file has: 10 for most
            SMPL files, 16 for SMPL+H, 10 or 300 for SMPL-X).
        dtype: parameter dtype.

    Buffers (non-persistent: the licensed data never lands in a state_dict):
        v_template: (V, 3); shapedirs: (V, 3, S); posedirs: (9 * (J - 1), V * 3);
        J_regressor: (J, V); lbs_weights: (V, J); faces: (F, 3) long.
    """

    def __init__(self, kind: str = "smpl", model_path: str | os.PathLike | None = None,
                 gender: str = "neutral", num_betas: int = 10,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__(dtype=dtype)
        kind, gender = _check_kind_gender(kind, gender)
        info = KINDS[kind]
        path = find_model_file(kind, model_path, gender)
        arrays = load_model_arrays(path, kind)
        self.name = kind
        self.gender = gender
        self.model_file = path

        v_template = np.asarray(arrays["v_template"], dtype=np.float64)
        shapedirs = np.asarray(arrays["shapedirs"], dtype=np.float64)
        posedirs = np.asarray(arrays["posedirs"], dtype=np.float64)
        J_regressor = np.asarray(arrays["J_regressor"], dtype=np.float64)
        weights = np.asarray(arrays["weights"], dtype=np.float64)
        kintree = np.asarray(arrays["kintree_table"]).astype(np.int64)
        faces = np.asarray(arrays["f"]).astype(np.int64)
        if shapedirs.ndim == 2:
            shapedirs = shapedirs[:, :, None]
        V, J = v_template.shape[0], len(info.joint_names)
        expected = {
            "v_template": (v_template.shape, (V, 3)),
            "shapedirs": (shapedirs.shape[:2], (V, 3)),
            "posedirs": ((posedirs.size,), (V * 3 * 9 * (J - 1),)),
            "J_regressor": (J_regressor.shape, (J, V)),
            "weights": (weights.shape, (V, J)),
            "kintree_table": (kintree.shape, (2, J)),
        }
        bad = [f"{k} {tuple(got)} (expected {tuple(want)})" for k, (got, want) in expected.items()
               if tuple(got) != tuple(want)]
        if bad or faces.ndim != 2 or faces.shape[1] != 3:
            raise _unreadable(path, kind, f"it does not look like a {info.label} model with {J} "
                              f"joints: {'; '.join(bad) or 'faces are not (F, 3)'}")
        if faces.min() < 0 or faces.max() >= V:
            raise _unreadable(path, kind, "face indices out of range")
        kp_vertex_ids = [info.vertex_ids[src] for _, how, src in KEYPOINT_SOURCES if how == "v"]
        if max(kp_vertex_ids) >= V:
            raise _unreadable(path, kind, f"{V} vertices, fewer than {info.label}'s topology has")

        # SMPL-X keeps its expression directions after the shape ones in the same array;
        # expression stays zero (neutral face), so only the shape columns are kept.
        available = shapedirs.shape[2]
        if kind == "smplx":
            full = SMPLX_SHAPE_SPACE + SMPLX_EXPRESSION_SPACE
            available = SMPLX_SHAPE_SPACE if available >= full else min(10, available)
        if num_betas > available:
            warnings.warn(f"{info.label} file {path.name} has {available} shape parameters; "
                          f"using {available} instead of {num_betas}", stacklevel=2)
        S = max(0, min(int(num_betas), available))
        shapedirs = shapedirs[:, :, :S]
        # smplx's layout: (V, 3, P) in the file -> (P, V * 3) so that pose_feature @ posedirs.
        P = 9 * (J - 1)
        posedirs = posedirs.reshape(-1, P).T

        parents = kintree[0].copy()
        parents[0] = -1
        if any(not (0 <= p < i) for i, p in enumerate(parents[1:], start=1)):
            # batch_rigid_transform walks joints in index order and needs parents first.
            raise _unreadable(path, kind, "kinematic tree is not in parent-before-child order")

        self.joint_names = list(info.joint_names)
        self.parents = [int(p) for p in parents]
        self.body_joints = list(range(22))  # trunk, legs, arms, neck, head: no hands, face, eyes
        self.keypoint_names = [name for name, _, _ in KEYPOINT_SOURCES]
        self.num_shape = S

        def buf(name: str, value: np.ndarray, dt: torch.dtype = dtype) -> None:
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(value)).to(dt),
                                 persistent=False)

        buf("v_template", v_template)
        buf("shapedirs", shapedirs)
        buf("posedirs", posedirs)
        buf("J_regressor", J_regressor)
        buf("lbs_weights", weights)
        buf("faces", faces, torch.long)
        buf("_parents", parents, torch.long)

        # Joints-only path (forward(vertices=False)): the joints are linear in the betas, so
        # regress template and shape directions once, and skin only the keypoint vertices.
        vidx = np.asarray(kp_vertex_ids, dtype=np.int64)
        buf("_J_template", J_regressor @ v_template)                           # (J, 3)
        buf("_J_shapedirs", np.einsum("jv,vds->jds", J_regressor, shapedirs))  # (J, 3, S)
        buf("_kp_vertex_idx", vidx, torch.long)
        buf("_kp_v_template", v_template[vidx])                                # (Kv, 3)
        buf("_kp_shapedirs", shapedirs[vidx])                                  # (Kv, 3, S)
        buf("_kp_posedirs", posedirs.reshape(P, V, 3)[:, vidx].reshape(P, -1))  # (P, Kv * 3)
        buf("_kp_weights", weights[vidx])                                      # (Kv, J)
        # keypoints = cat([joints, keypoint vertices])[:, _kp_gather]
        gather, v_seen = [], 0
        for _, how, src in KEYPOINT_SOURCES:
            if how == "j":
                gather.append(self.joint_names.index(src))
            else:
                gather.append(J + v_seen)
                v_seen += 1
        buf("_kp_gather", np.asarray(gather), torch.long)

    def extra_repr(self) -> str:
        return (f"kind={self.name}, gender={self.gender}, joints={self.num_joints}, "
                f"vertices={self.v_template.shape[0]}, num_shape={self.num_shape}, "
                f"file={self.model_file}")

    def skin_weights(self) -> torch.Tensor:
        """(V, J) linear-blend-skinning weights."""
        return self.lbs_weights

    def forward(self, pose: torch.Tensor, shape: torch.Tensor | None = None,
                transl: torch.Tensor | None = None, vertices: bool = True) -> BodyOutput:
        """Pose the body (see ``BodyModel.forward``).

        Args:
            pose: (B, J, 3, 3) local joint rotations; ``pose[:, 0]`` is the global orientation,
                applied about the root joint.
            shape: (B, S) or (1, S) betas; zeros if None.
            transl: (B, 3) or (1, 3) added to everything after posing; zeros if None.
            vertices: False skips skinning the mesh (only the keypoint vertices are skinned).
        Returns:
            BodyOutput: vertices (B, V, 3) or None, joints (B, J, 3), keypoints (B, K, 3).
        """
        if pose.ndim != 4 or pose.shape[1:] != (self.num_joints, 3, 3):
            raise ValueError(f"{self.name}: pose must be (B, {self.num_joints}, 3, 3), "
                             f"got {tuple(pose.shape)}")
        B = pose.shape[0]
        pose = pose.contiguous()  # lbs views it flat
        if shape is None:
            betas = pose.new_zeros(B, self.num_shape)
        else:
            if shape.ndim != 2 or shape.shape[1] != self.num_shape or shape.shape[0] not in (1, B):
                raise ValueError(f"{self.name}: shape must be ({B} or 1, {self.num_shape}), "
                                 f"got {tuple(shape.shape)}")
            # lbs sizes its joint arrays from the betas, so they must carry the full batch.
            betas = shape.expand(B, -1)

        if vertices:
            verts, joints = lbs(betas, pose, self.v_template, self.shapedirs, self.posedirs,
                                self.J_regressor, self._parents, self.lbs_weights, pose2rot=False)
            kp_verts = verts[:, self._kp_vertex_idx]
        else:
            verts = None
            joints, kp_verts = self._joints_and_keypoint_vertices(betas, pose)
        keypoints = torch.cat([joints, kp_verts], dim=1)[:, self._kp_gather]

        if transl is not None:
            t = transl.reshape(-1, 1, 3)
            joints, keypoints = joints + t, keypoints + t
            verts = None if verts is None else verts + t
        return BodyOutput(vertices=verts, joints=joints, keypoints=keypoints)

    def _joints_and_keypoint_vertices(self, betas: torch.Tensor, pose: torch.Tensor
                                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """What ``lbs`` computes, restricted to the joints and the Kv keypoint vertices.

        Args:
            betas: (B, S); pose: (B, J, 3, 3).
        Returns:
            joints (B, J, 3) and keypoint vertices (B, Kv, 3), both before translation.
        """
        B = pose.shape[0]
        J_rest = self._J_template + blend_shapes(betas, self._J_shapedirs)   # (B, J, 3)
        joints, A = batch_rigid_transform(pose, J_rest, self._parents, dtype=pose.dtype)
        eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
        pose_feature = (pose[:, 1:] - eye).reshape(B, -1)                    # (B, P)
        v = (self._kp_v_template + blend_shapes(betas, self._kp_shapedirs)
             + (pose_feature @ self._kp_posedirs).reshape(B, -1, 3))         # (B, Kv, 3)
        T = torch.einsum("kj,bjxy->bkxy", self._kp_weights, A)               # (B, Kv, 4, 4)
        v = (T[..., :3, :3] @ v[..., None])[..., 0] + T[..., :3, 3]
        return joints, v


def load_smpl(kind: str = "smpl", model_path: str | os.PathLike | None = None,
              gender: str = "neutral", **kw: Any) -> SMPLFamily:
    """Build an SMPL-family model: ``load_smpl("smplx", "~/models", gender="female")``.

    ``**kw`` goes to ``SMPLFamily`` (``num_betas``, ``dtype``). Raises ``BodyModelError`` when
    the file is missing or unreadable.
    """
    return SMPLFamily(kind=kind, model_path=model_path, gender=gender, **kw)


__all__ = ["SMPLFamily", "load_smpl", "find_model_file", "load_model_arrays", "default_models_dir",
           "KINDS", "KEYPOINT_SOURCES", "MODELS_ENV"]
