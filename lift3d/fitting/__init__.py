"""Body-model fitting: optimise pose, shape and root motion against keypoints, masks and priors."""
from lift3d.fitting.fit import FitOptions, fit_body, to_world
from lift3d.fitting.prior import PosePrior
from lift3d.fitting.retarget import retarget

__all__ = ["FitOptions", "PosePrior", "fit_body", "retarget", "to_world"]
