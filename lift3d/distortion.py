"""Inverse of the OpenCV lens distortion model (k1, k2, p1, p2, k3) used by ``Camera.project``."""
from __future__ import annotations

import numpy as np


def invert_distortion(u: np.ndarray, v: np.ndarray, k: list, iterations: int = 10
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undistorted normalised coordinates (x, y) with distort(x, y) = (u, v).

    Newton's method with the analytic 2x2 Jacobian, from the first-order inverse: 2-3 steps
    reach ~1e-14 for ordinary lenses (the fixed-point iteration OpenCV uses needs ~20, and
    diverges far outside the image under strong distortion).

    Args:
        u, v: (...) distorted normalised coordinates.
        k: the five coefficients k1, k2, p1, p2, k3, each a scalar or an array broadcastable
            to ``u`` (e.g. (C, 1) for C cameras).
        iterations: most Newton steps for points that have not converged after two.
    Returns:
        x, y (...) and ``good`` (...) bool: False where the inversion did not converge (far
        outside the lens model's valid range).
    """
    r2 = u * u + v * v
    radial = 1 + r2 * (k[0] + r2 * (k[1] + r2 * k[4]))
    radial = np.where(np.abs(radial) > 1e-3, radial, 1.0)
    x, y = u / radial, v / radial  # first-order inverse
    # Two Newton steps on every point, then more only on the few not yet converged (a step
    # below 1e-7 leaves an error of ~1e-14: the convergence is quadratic).
    for _ in range(2):
        x, y, step = _newton_undistort_step(x, y, u, v, *k)
    todo = np.nonzero(step > 1e-7)
    if todo[0].size:
        kk = [np.broadcast_to(ki, u.shape)[todo] for ki in k]
        xs, ys, us, vs = x[todo], y[todo], u[todo], v[todo]
        for _ in range(iterations - 2):
            xs, ys, st = _newton_undistort_step(xs, ys, us, vs, *kk)
            if not st.max(initial=0.0) > 1e-7:
                break  # (also stops on NaN, which ``good`` catches)
        x[todo], y[todo], step[todo] = xs, ys, st
    good = np.isfinite(x) & np.isfinite(y) & (step < 1e-6)
    return x, y, good


def _newton_undistort_step(x, y, u, v, k1, k2, p1, p2, k3):
    """One Newton step for distort(x, y) = (u, v); returns x, y and the step size |dx| + |dy|."""
    xx, yy, xy = x * x, y * y, x * y
    r2 = xx + yy
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    dr = k1 + r2 * (2 * k2 + 3 * k3 * r2)
    ex = x * radial + 2 * p1 * xy + p2 * (r2 + 2 * xx) - u
    ey = y * radial + p1 * (r2 + 2 * yy) + 2 * p2 * xy - v
    jxx = radial + 2 * xx * dr + 2 * p1 * y + 6 * p2 * x
    jyy = radial + 2 * yy * dr + 6 * p1 * y + 2 * p2 * x
    jxy = 2 * xy * dr + 2 * p1 * x + 2 * p2 * y
    det = jxx * jyy - jxy * jxy
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    dx = (jyy * ex - jxy * ey) / det
    dy = (jxx * ey - jxy * ex) / det
    return x - dx, y - dy, np.abs(dx) + np.abs(dy)
