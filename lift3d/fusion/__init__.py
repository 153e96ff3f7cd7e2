"""Fusion: several calibrated cameras and/or body-worn IMUs.

- ``calib_io``: calibration files of Pose2Sim/anipose (TOML), EasyMocap (YAML), OpenCV (YAML/XML).
- ``calibration``: checkerboard/ChArUco calibration with bundle adjustment; refinement from people.
- ``sync``: frame offsets between unsynchronised videos.
- ``associate``: the same person across views.
- ``triangulate``: robust, confidence-weighted triangulation and temporal filtering.
- ``imu``: IMU streams, their alignment to a fit; ``fit_body(imu=...)`` fuses them.
- ``imu_fit``: a body motion from the IMUs alone (``fit_imu_only``), with mocap priors.
- ``multiview``: the whole multi-camera pipeline (``reconstruct_multiview``).
"""
from lift3d.fusion.calib_io import load_calibration, save_calibration
from lift3d.fusion.imu import IMUData, align_imus, synthesize_imu
from lift3d.fusion.imu_fit import fit_imu_only
from lift3d.fusion.sync import apply_offsets, estimate_offsets
from lift3d.fusion.triangulate import triangulate

__all__ = ["IMUData", "align_imus", "apply_offsets", "estimate_offsets", "fit_imu_only", "load_calibration",
           "save_calibration", "synthesize_imu", "triangulate"]
