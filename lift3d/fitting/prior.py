"""A learned pose prior for body fits: a Gaussian mixture over joint rotations, and joint-angle limits.

Representation. A pose's feature vector is the axis-angle (rotation vector, radians) of each
prior joint's local rotation, *in world axes* as the body models define them (``body_models``:
identity = rest pose; Anny's rotations are about each bone's head in rest-pose world axes),
concatenated: D = 3 x (number of prior joints). The root (global orientation) is excluded: the
prior is about the body's articulation, not where it faces. So are the joints that the training
motion does not observe (Anny's feet and hands: mocap keypoints stop at the ankles and wrists),
which a fit leaves to its own weak rest prior; ``PosePrior.joint_names`` lists the joints covered.
Axis-angle is compact (3 numbers), smooth and unique for rotations below pi, which body joints'
local rotations stay under.

Density. A mixture of K full-covariance Gaussians. Full covariances because the features are
strongly correlated: Anny splits each limb, the spine and the neck into chains of bones that
move together, and the axes of a joint are coupled (a shoulder's abduction and twist). Each
component stores the Cholesky factor A of its precision (Sigma^-1 = A A^T), so

    -log N_k(x) = 0.5 |A_k^T (x - mu_k)|^2 - sum log diag(A_k) + 0.5 D log(2 pi).

``nll`` is the exact negative log-density -log sum_k w_k N_k(x) (a logsumexp: smooth, its
gradient a responsibility-weighted blend of the components' pulls); ``nll(..., mode="min")`` is
SMPLify's max-mixture energy min_k (-log w_k N_k(x)), an upper bound that is a plain quadratic
near each mode. Values are in nats and may be negative (a density in D dimensions).

Size and floor (``train_prior`` defaults: K = 8, variance floor (2 deg)^2). During development
(CMU, Anny, 93 dimensions, 2-degree floor) the held-out subject's mean NLL was -147.3 / -148.1 /
-149.6 / -146.6 nats for K = 1 / 4 / 8 / 12 with 8.8k training frames (10 fps), and -146.1 / -148.9
for K = 8 / 16 with 4.4k (5 fps): differences of 1-3 nats over 93 dimensions, i.e. the held-out
motion does not reward more components, while training NLL keeps improving (overfitting the five
training subjects); 8 is the smaller of the good sizes (137 KiB file). The floor is the
retargeting's own accuracy: ~14 mm keypoint error over 30-40 cm bones is about 2 degrees; a finer density would
model retargeting artefacts (a 1-degree floor fits the held-out subject better still, but makes
the prior a very stiff spring in the directions the data barely moves).

Limits. ``angle_limit_penalty`` is a squared hinge on each joint's rotation-vector components
outside a per-joint, per-axis range [lo, hi] (radians): zero inside, quadratic outside. The
components are taken along each joint's own axes: the principal axes of its rotation vectors in
the training motion (so a knee's or an elbow's first axis is its hinge, whatever its rest
direction; world axes would make a box that fits the diagonal elbow hinge loosely). The ranges
are percentiles of the retargeted training motion along those axes, widened by a margin and made
to contain the rest pose: a knee or elbow bent backwards falls below its hinge's lower bound.

File. One .npz (no pickles) holding the model name, the prior joints' names and indices in that
model, the mixture, the limits and training metadata; ``lift3d.fitting.train_prior`` writes it,
for Anny or, given its files, an SMPL-family model.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import roma
import torch

from lift3d.io_utils import Lift3DError, atomic_path, load_npz

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "data" / "pose_prior.npz"
FORMAT_VERSION = 1
_REQUIRED = ["version", "model_name", "joint_names", "joint_indices", "weights", "means", "prec_chol",
             "limit_axes", "limit_lo", "limit_hi"]


def mirror_joint_name(name: str) -> str:
    """'upperarm01.L' <-> 'upperarm01.R' (Anny), 'left_knee' <-> 'right_knee' (SMPL); else itself."""
    for a, b in ((".L", ".R"), (".R", ".L"), ("_L", "_R"), ("_R", "_L")):
        if name.endswith(a):
            return name[: -len(a)] + b
    from lift3d.formats import mirror_name

    return mirror_name(name)


def mirror_permutation(joint_names: list[str]) -> list[int]:
    """For each joint, the index of its left-right twin in ``joint_names`` (itself if none)."""
    return [joint_names.index(mirror_joint_name(n)) if mirror_joint_name(n) in joint_names else i
            for i, n in enumerate(joint_names)]


def mirror_features(x: np.ndarray, joint_names: list[str]) -> np.ndarray:
    """(N, 3J) rotation vectors of the mirror image (x -> -x) of the poses: the left and right
    joints swap, and a rotation R becomes M R M with M = diag(-1, 1, 1), i.e. (a, b, c) -> (a, -b, -c)."""
    J = len(joint_names)
    r = x.reshape(len(x), J, 3)[:, mirror_permutation(joint_names)] * np.array([1.0, -1.0, -1.0])
    return r.reshape(len(x), 3 * J)


def pose_features(pose, joint_indices) -> torch.Tensor | np.ndarray:
    """(..., Jm, 3, 3) poses -> (..., 3 * len(joint_indices)) rotation vectors (numpy in, numpy out)."""
    if isinstance(pose, np.ndarray):
        return pose_features(torch.as_tensor(pose), joint_indices).numpy()
    rv = roma.rotmat_to_rotvec(pose[..., list(joint_indices), :, :])
    return rv.flatten(-2)


class PosePrior:
    """Gaussian-mixture pose prior and joint-angle limits of one body model (see the module docstring).

    Attributes:
        model_name: the body model it was trained for ("anny", "smpl", ...).
        joint_names, joint_indices: the prior joints (names, and indices in the model's joints).
        weights (K,), means (K, D), prec_chol (K, D, D): the mixture (torch tensors).
        limit_axes: (J, 3, 3) each joint's limit axes (columns, world) ...
        limit_lo, limit_hi: (J, 3) ... and the ranges of the rotation vector's components along
            them, radians (+-inf: no limit).
        meta: training information (dict).
    """

    def __init__(self, model_name: str, joint_names: list[str], joint_indices: list[int],
                 weights, means, prec_chol, limit_axes, limit_lo, limit_hi, meta: dict | None = None,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> None:
        self.model_name = str(model_name)
        self.joint_names = [str(n) for n in joint_names]
        self.joint_indices = [int(i) for i in joint_indices]
        self.meta = dict(meta or {})
        as_t = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype, device=device)  # noqa: E731
        self.weights, self.means, self.prec_chol = as_t(weights), as_t(means), as_t(prec_chol)
        self.limit_axes, self.limit_lo, self.limit_hi = as_t(limit_axes), as_t(limit_lo), as_t(limit_hi)
        K, D = self.means.shape
        J = len(self.joint_names)
        if self.weights.shape != (K,) or self.prec_chol.shape != (K, D, D) or D != 3 * J \
                or self.limit_lo.shape != (J, 3) or self.limit_hi.shape != (J, 3) \
                or self.limit_axes.shape != (J, 3, 3):
            raise Lift3DError(f"inconsistent pose prior: K={K}, D={D}, {len(self.joint_names)} joints")
        self._refresh()

    def _refresh(self) -> None:
        diag = torch.diagonal(self.prec_chol, dim1=-2, dim2=-1)
        D = self.means.shape[1]
        # -log(w_k) - log|A_k| + D/2 log(2 pi): the constant part of each component's energy
        self._const = -torch.log(self.weights) - torch.log(diag).sum(-1) + 0.5 * D * math.log(2 * math.pi)

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def to(self, device=None, dtype=None) -> "PosePrior":
        for k in ("weights", "means", "prec_chol", "limit_axes", "limit_lo", "limit_hi"):
            setattr(self, k, getattr(self, k).to(device=device, dtype=dtype))
        self._refresh()
        return self

    def check(self, model) -> None:
        """Raise ``Lift3DError`` unless this prior was trained for ``model`` (same joints)."""
        names = [model.joint_names[i] if i < model.num_joints else None for i in self.joint_indices]
        if model.name != self.model_name or names != self.joint_names:
            raise Lift3DError(f"this pose prior is for the {self.model_name!r} body model, not this "
                              f"{model.name!r} one; train one with "
                              f"python -m lift3d.fitting.train_prior --model {model.name}")

    # -- energies ---------------------------------------------------------------------------------

    def features(self, pose: torch.Tensor) -> torch.Tensor:
        """(..., Jm, 3, 3) full model poses -> (..., D) rotation vectors of the prior joints."""
        return pose_features(pose, self.joint_indices)

    def component_energies(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) features -> (..., K) -log(w_k N_k(x))."""
        d = x[..., None, :] - self.means.to(x.dtype)  # (..., K, D)
        y = torch.einsum("...kd,kde->...ke", d, self.prec_chol.to(x.dtype))  # A_k^T d
        return 0.5 * y.square().sum(-1) + self._const.to(x.dtype)

    def nll(self, pose: torch.Tensor, mode: str = "logsumexp") -> torch.Tensor:
        """Negative log-density (nats) of (T, Jm, 3, 3) poses -> (T,), differentiable.

        Args:
            pose: local rotations of all the model's joints (identity = rest); only the prior
                joints are read, so the global orientation and hands do not matter.
            mode: "logsumexp" for the mixture's exact -log p(x), "min" for the max-mixture
                (SMPLify) energy min_k -log(w_k N_k(x)).
        """
        e = self.component_energies(self.features(pose))
        if mode == "min":
            return e.min(-1).values
        if mode != "logsumexp":
            raise ValueError(f"mode must be 'logsumexp' or 'min', not {mode!r}")
        return -torch.logsumexp(-e, dim=-1)

    __call__ = nll

    def angle_limit_penalty(self, pose: torch.Tensor) -> torch.Tensor:
        """Squared distance (rad^2) of (T, Jm, 3, 3) poses' rotation vectors outside the limits -> (T,):
        zero inside every joint's range, growing quadratically outside, differentiable."""
        rv = roma.rotmat_to_rotvec(pose[..., self.joint_indices, :, :])  # (T, J, 3)
        rv = (rv[..., None, :] @ self.limit_axes.to(rv.dtype))[..., 0, :]  # components along the limit axes
        lo, hi = self.limit_lo.to(rv.dtype), self.limit_hi.to(rv.dtype)
        below = torch.relu(torch.where(torch.isfinite(lo), lo - rv, torch.zeros_like(rv)))
        above = torch.relu(torch.where(torch.isfinite(hi), rv - hi, torch.zeros_like(rv)))
        return (below.square() + above.square()).sum((-1, -2))

    # -- files --------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the prior to an .npz (atomically, float32 mixture, no pickles)."""
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez_compressed(
                tmp, version=np.array(FORMAT_VERSION), model_name=np.array(self.model_name),
                joint_names=np.array(self.joint_names), joint_indices=np.array(self.joint_indices, dtype=np.int32),
                weights=self.weights.double().cpu().numpy(), means=self.means.cpu().numpy().astype(np.float32),
                prec_chol=np.tril(self.prec_chol.cpu().numpy()).astype(np.float32),
                limit_axes=self.limit_axes.cpu().numpy().astype(np.float32),
                limit_lo=self.limit_lo.cpu().numpy().astype(np.float32),
                limit_hi=self.limit_hi.cpu().numpy().astype(np.float32),
                meta=np.array(json.dumps(self.meta)))

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PATH, dtype: torch.dtype = torch.float32,
             device: str | torch.device = "cpu") -> "PosePrior":
        """Read a prior written by ``save`` (by default the one shipped with lift3d, for Anny)."""
        z = load_npz(path, _REQUIRED)
        if int(z["version"]) != FORMAT_VERSION:
            raise Lift3DError(f"{path}: pose prior format version {int(z['version'])}, expected {FORMAT_VERSION}")
        meta = json.loads(str(z["meta"])) if "meta" in z else {}
        return cls(str(z["model_name"]), list(z["joint_names"]), list(z["joint_indices"]), z["weights"],
                   z["means"], z["prec_chol"], z["limit_axes"], z["limit_lo"], z["limit_hi"], meta,
                   dtype=dtype, device=device)

    # -- training -----------------------------------------------------------------------------------

    @classmethod
    def fit(cls, features: np.ndarray, model_name: str, joint_names: list[str], joint_indices: list[int],
            components: int = 8, reg: float = 1e-3, iters: int = 100, seed: int = 0,
            limit_percentile: float = 0.1, limit_margin: float = math.radians(5.0), progress: bool = True,
            meta: dict | None = None) -> "PosePrior":
        """Fit the mixture (EM, ``fit_gmm``) and the limits (``angle_limits``) to (N, D) features."""
        w, mu, A, _ = fit_gmm(features, components, reg=reg, iters=iters, seed=seed, progress=progress)
        axes, lo, hi = angle_limits(features, limit_percentile, limit_margin)
        return cls(model_name, joint_names, joint_indices, w, mu, A, axes, lo, hi, meta)


def angle_limits(features: np.ndarray, percentile: float = 0.1,
                 margin: float = math.radians(5.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint-angle limits from (N, 3J) rotation vectors.

    Returns:
        axes: (J, 3, 3) per joint, the principal axes (columns) of its rotation vectors.
        lo, hi: (J, 3) the [p, 100-p] percentiles of the components along them, widened by
            ``margin`` radians on each side and stretched to contain 0 (the rest pose).
    """
    x = features.reshape(len(features), -1, 3)
    J = x.shape[1]
    axes = np.empty((J, 3, 3))
    for j in range(J):
        _, vecs = np.linalg.eigh(np.cov(x[:, j].T) + 1e-12 * np.eye(3))
        axes[j] = vecs[:, ::-1]  # largest variance first (a hinge's axis)
        if np.linalg.det(axes[j]) < 0:
            axes[j][:, 2] *= -1
    c = np.einsum("nji,jik->njk", x, axes)
    lo = np.percentile(c, percentile, axis=0) - margin
    hi = np.percentile(c, 100 - percentile, axis=0) + margin
    return axes, np.minimum(lo, 0.0), np.maximum(hi, 0.0)


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 20) -> np.ndarray:
    """k-means++ seeding then Lloyd iterations: (k, D) centres."""
    centres = [x[rng.integers(len(x))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        centres.append(x[rng.choice(len(x), p=d2 / d2.sum())])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.stack(centres)
    for _ in range(iters):
        lab = (((x[:, None] - c[None]) ** 2).sum(-1)).argmin(1)
        for j in range(k):
            if (lab == j).any():
                c[j] = x[lab == j].mean(0)
    return c


def gmm_log_prob(x: np.ndarray, weights: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
    """(N, K) log(w_k N_k(x_n)) of a full-covariance mixture given precision Cholesky factors."""
    D = x.shape[1]
    out = np.empty((len(x), len(weights)))
    for k in range(len(weights)):
        y = (x - means[k]) @ prec_chol[k]
        out[:, k] = (np.log(weights[k]) + np.log(np.diag(prec_chol[k])).sum() - 0.5 * D * np.log(2 * np.pi)
                     - 0.5 * (y * y).sum(1))
    return out


def fit_gmm(x: np.ndarray, k: int, reg: float = 1e-3, iters: int = 100, tol: float = 1e-4, seed: int = 0,
            progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Expectation-maximisation for a full-covariance Gaussian mixture (float64 numpy).

    Args:
        x: (N, D) samples.
        k: components.
        reg: added to every covariance's diagonal (variance floor, in the features' unit^2):
            keeps nearly deterministic directions (joints the data barely moves) from getting
            an unbounded precision, and regularises the components.
        iters, tol: stop after ``iters`` iterations or when the mean log-likelihood gains < tol.
    Returns:
        weights (K,), means (K, D), prec_chol (K, D, D) lower-triangular A with Sigma^-1 = A A^T,
        and the final mean log-likelihood of x.
    """
    from scipy.linalg import solve_triangular
    from scipy.special import logsumexp
    from tqdm.auto import tqdm

    x = np.asarray(x, dtype=np.float64)
    N, D = x.shape
    rng = np.random.default_rng(seed)
    means = _kmeans_pp(x, k, rng)
    lab = (((x[:, None] - means[None]) ** 2).sum(-1)).argmin(1)
    resp = np.eye(k)[lab]
    prev = -np.inf
    ll = -np.inf
    bar = tqdm(range(iters), desc="EM", disable=not progress, leave=False)
    for _ in bar:
        # M step
        nk = resp.sum(0) + 1e-10
        weights = nk / N
        means = (resp.T @ x) / nk[:, None]
        prec_chol = np.empty((k, D, D))
        for j in range(k):
            d = x - means[j]
            cov = (resp[:, j, None] * d).T @ d / nk[j] + reg * np.eye(D)
            C = np.linalg.cholesky(cov)
            # Sigma^-1 = C^-T C^-1 = A A^T with A = C^-T (upper); store its lower-triangular
            # equivalent through the Cholesky of the precision itself.
            Cinv = solve_triangular(C, np.eye(D), lower=True)
            prec_chol[j] = np.linalg.cholesky(Cinv.T @ Cinv)
        # E step
        lp = gmm_log_prob(x, weights, means, prec_chol)
        norm = logsumexp(lp, axis=1)
        resp = np.exp(lp - norm[:, None])
        ll = float(norm.mean())
        bar.set_postfix(loglik=f"{ll:.3f}")
        if ll - prev < tol:
            break
        prev = ll
    bar.close()
    return weights, means, prec_chol, ll
