"""Differentiable body models behind one interface (see ``body_models.base.BodyModel``).

``load("anny")`` gives the free default model; ``load("smpl" | "smplh" | "smplx",
model_path=...)`` the SMPL family when the user has the licensed files.
"""
from __future__ import annotations

import json
from typing import Any

import torch

from body_models.base import BodyModel, BodyModelError, BodyOutput

MODEL_NAMES = ("anny", "smpl", "smplh", "smplx")

_CACHE: dict[str, BodyModel] = {}


def load(name: str = "anny", device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
         **kwargs: Any) -> BodyModel:
    """Build (or fetch from the per-process cache) a body model.

    Args:
        name: "anny" (default, free) or "smpl", "smplh", "smplx" (need the user's model files).
        device: torch device.
        dtype: parameter dtype.
        **kwargs: model options, e.g. ``model_path``, ``gender``, ``num_betas`` for SMPL.
    Raises:
        BodyModelError: unknown name, or model files missing/unreadable (message says where
            to get them and where to put them).
    """
    key = json.dumps([name, str(device), str(dtype), sorted((k, str(v)) for k, v in kwargs.items())])
    if key in _CACHE:
        return _CACHE[key]
    if name == "anny":
        from body_models.anny import AnnyModel

        model: BodyModel = AnnyModel(dtype=dtype, **kwargs)
    elif name in ("smpl", "smplh", "smplx"):
        from body_models.smpl import SMPLFamily

        model = SMPLFamily(kind=name, dtype=dtype, **kwargs)
    else:
        raise BodyModelError(f"unknown body model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    model = model.to(device).eval()
    _CACHE[key] = model
    return model


__all__ = ["BodyModel", "BodyModelError", "BodyOutput", "load", "MODEL_NAMES"]
