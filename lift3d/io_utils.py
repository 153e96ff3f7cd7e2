"""Small IO helpers: the project's error type, atomic writes, safe npz loading."""
from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np


class Lift3DError(Exception):
    """An error the user can act on; the CLI prints its message as one line and exits 1."""


class LoadError(Lift3DError):
    """An input file is missing, unreadable, truncated or malformed."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[str]:
    """Yield a temporary file name beside ``path``; rename it onto ``path`` only on success.

    A crash or Ctrl-C while writing leaves the previous file (or nothing), never a half-written
    one. ``suffix`` keeps writers that append an extension (numpy's ``savez``) on the temp name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(path.suffixes[-1:])
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_npz(path: str | Path, required: list[str]) -> dict[str, np.ndarray]:
    """Load an .npz written by lift3d (no pickled objects), checking the required keys."""
    path = Path(path)
    if not path.is_file():
        raise LoadError(f"file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise LoadError(f"{path} is not a readable .npz file ({e})") from None
    missing = [k for k in required if k not in out]
    if missing:
        raise LoadError(f"{path} lacks the field(s) {', '.join(missing)}")
    return out
