"""Body-model fitting: optimise pose, shape and root motion against keypoints."""
from lift3d.fitting.fit import FitOptions, fit_body

__all__ = ["FitOptions", "fit_body"]
