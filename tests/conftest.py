import os
from pathlib import Path

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real CMU motion capture); tests needing it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared data folder {SHARED_DATA} (real CMU mocap), which is absent here")
    return SHARED_DATA


@pytest.fixture(scope="session")
def anny():
    import body_models

    return body_models.load("anny")


@pytest.fixture(scope="session")
def held_out_clip(anny, shared_data):
    """A function (take, frames, shape) -> (T, K, 3) world keypoints (the model's names) of a
    held-out CMU take (subject 02, e.g. "asfamc/02_01") retargeted onto Anny with that shape;
    ``frames`` is a slice of the take at 30 fps."""
    import numpy as np
    import torch

    from lift3d import formats
    from lift3d.fitting.retarget import retarget
    from lift3d.lifting.train import load_sequences

    seqs = {s["name"]: s for s in load_sequences(shared_data / "cmu-mocap", subjects={"02"}, progress=False)}

    def make(take: str, frames: slice, shape) -> "np.ndarray":
        seq = seqs[take]
        both = np.concatenate([seq["inp"][frames], seq["out"][frames]], 1)
        shape = np.asarray(shape, dtype=np.float64)
        truth = retarget(both, formats.names("coco17") + formats.names("h36m17"), anny, shape=shape,
                         progress=False)
        with torch.no_grad():
            out = anny(torch.as_tensor(truth["pose"], dtype=torch.float32),
                       torch.as_tensor(shape[None], dtype=torch.float32),
                       torch.as_tensor(truth["transl"], dtype=torch.float32), vertices=False)
        return out.keypoints.double().numpy()

    return make
