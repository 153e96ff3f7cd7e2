"""Fit a body model to a keypoint sequence by optimisation (SMPLify-style, whole sequence at once).

The fit works in the camera frame (OpenCV axes). Per frame it frees the body joints' rotations,
the global orientation and the root translation; one shape is shared by all frames of a person.
The objective is

    w_2d   * robust confidence-weighted reprojection of the model keypoints
  + w_3d   * root-relative 3D keypoints (a lifting network's or MediaPipe's world landmarks)
  + w_pose * rotation prior  + w_shape * |shape|^2
  + w_smooth * (acceleration of keypoints and translation)
  + w_height * (the body's stature - the person's known height)^2, when it is given

in two stages: global orientation and translation first (torso only), then everything (and
the feet/floor, silhouette and IMU stages where they apply). Each L-BFGS stage moves the
per-frame parameters through coarse-to-fine corrections (``fitting.multiscale``), so the
smoothness that couples the frames does not stall it.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field

import numpy as np
import roma
import torch
from tqdm.auto import tqdm

import body_models
from lift3d import formats
from lift3d.fitting import ground, losses, render
from lift3d.fitting.multiscale import TemporalPyramid
from lift3d.io_utils import Lift3DError
from lift3d.lifting.data import fill_gaps
from lift3d.rotations import interpolate_rotations
from lift3d.types import BodyFit, Camera, Joints3D, Keypoints2D

TORSO = ["left_shoulder", "right_shoulder", "left_hip", "right_hip"]
HIPS = ["left_hip", "right_hip"]


@dataclass
class FitOptions:
    """Weights and schedule of the body fit. Defaults were set on synthetic Anny sequences
    (tests/test_fitting.py) and the built-in demo clip; issue 4 retunes them on real motion."""

    w_2d: float = 1.0
    # Per m^2 (1 cm RMS error costs 0.001), times each target joint's confidence, which for the
    # lifter's target includes its trust in the joint (``lift``: the error head's). Set for
    # monocular targets (the lifter's, MediaPipe's), which are 70-100 mm off: on
    # benchmarks/fit_eval.py 3 fits real motion better than 10 and 30 (docs/BENCHMARKS.md).
    # Raise it for a target as good as the 2D (mocap, an exact synthetic one): it also carries
    # the body's size, which the 2D cannot.
    w_3d: float = 3.0
    # Robust scale of the 3D target term in metres (losses.gmof; 0 = squares): with it the 2D
    # overrules a target joint that is far off. Opt-in: on benchmarks/fit_eval.py 0.05 lowered
    # vertex error / PA-MPJPE on one sample of clips (110.6 / 44.1 -> 99.9 / 42.0 mm) and raised
    # them on the other (114.3 / 48.6 -> 115.1 / 49.8).
    sigma_3d: float = 0.0
    w_pose: float = 0.002
    w_shape: float = 0.01
    # The mocap pose prior (GMM, per nat; real poses spread ~10 nats) is opt-in: on sequences
    # 5e-4 lowers acceleration error and foot sliding a little, but on a single photo it pulled
    # the fit off the keypoints (astronaut: 4.6 -> 10 px); see docs/BENCHMARKS.md.
    w_prior: float = 0.0
    w_limits: float = 0.01      # per rad^2 outside the joint-angle limits learned from mocap
    # Smoothness and foot hold set on benchmarks/fit_eval.py with the coarse-to-fine parameters
    # below: once the fit converges, 300 / 1000 lower acceleration error 7.4 -> 4.7 mm/frame^2
    # and foot sliding 6.9 -> 3.9 mm/frame against 30 / 100, with PA-MPJPE 48.0 -> 46.6 mm.
    w_smooth: float = 300.0     # per (m/frame^2)^2
    w_slide: float = 1000.0     # per (m/frame)^2 of a foot point in contact: 1 cm/frame costs 0.1
    # Per-frame parameters optimised with coarse-to-fine corrections (fitting.multiscale): with
    # the same iterations the fit gets much nearer the objective's minimum, which is what let
    # the heavier smoothness above pay (without them it cost PA-MPJPE: docs/BENCHMARKS.md).
    multiscale: bool = True
    # Learned contacts hold more frames than the motion rule found; at 100 their floor term
    # bent the legs towards a floor tilted with the monocular fit (vertex error +2 mm).
    w_ground: float = 10.0      # per m^2 of contact height / floor penetration
    sigma_px: float = 0.0       # robust scale; 0 = 4% of the image diagonal
    # Iterations set on benchmarks/fit_eval.py: with the warm start, 20 + 100 + 30 fit as well as
    # 40 + 200 + 60 at 1.7x the speed.
    iters_global: int = 20
    iters_full: int = 100
    iters_ground: int = 30      # feet and floor stage (0 = skip it; it needs >= 10 frames)
    # Foot contacts of the feet/floor stage: "learned" = the foot-contact network on the 2D
    # keypoints (lift3d.lifting.contact); "motion" = slow and low fitted feet (their speed from
    # the detections' image motion when ``contacts_from_2d``), which misses most contacts when
    # the fitted feet jitter in depth (benchmarks/fit_eval.py).
    contacts: str = "learned"
    contacts_from_2d: bool = True  # foot speed from the detections' image motion (static camera)
    # Without a known camera up, how strongly the floor's normal is held to the torso's mean up
    # (ground.fit_plane's prior_m, metres): one camera's feet err by centimetres in depth, and a
    # plane through them alone tilts the exported world by 16-17 degrees on average on
    # benchmarks/floor_eval.py's two samples; 0.2 halves that (8-10), at 0.3 / 2.1 mm of vertex error.
    floor_prior_m: float = 0.2
    warm_start: bool = True     # start the body pose from the 3D target by retargeting (fitting.retarget)
    # Frames where the detector sees fewer keypoints than usual (occlusion) are poor evidence:
    # the 3D target's weight there scales as (visible fraction / the clip's median) ** power,
    # and frames below ``bridge_below`` of the median start from the interpolation between
    # the well-seen frames around them instead of from their own (guessed) target. Set on
    # benchmarks/imu_eval.py (half the keypoints hidden for a second).
    target_trust_power: float = 2.0
    bridge_below: float = 0.75
    w_silhouette: float = 1.0   # per unit of (1 - soft IoU) against the person mask
    # Adam steps of the silhouette stage (with masks). Off by default: on benchmarks/fit_eval.py
    # 40 steps lower vertex error 100.8 -> 99.2 mm and PA-MPJPE 40.6 -> 39.7 at 2.4x the time
    # (`lift3d run --silhouettes` sets 40).
    iters_silhouette: int = 0
    lr_silhouette: float = 5e-3  # Adam step of the silhouette stage
    silhouette_frames: int = 12  # key frames rendered per step (evenly spread)
    silhouette_size: int = 96   # side of the square crop around the person that is rendered
    # Faces of the coarse mesh the silhouette stage renders (render.decimate_faces; 0 = the full
    # mesh): at 96 pixels a 6,000-face Anny is within a pixel of the full 27,420 and 3.5x cheaper.
    silhouette_faces: int = 6000
    # IMU weights set on benchmarks/imu_eval.py (one camera + 6 IMUs under occlusion).
    w_imu_orientation: float = 30.0    # per unit of ||G - G_imu||_F^2 (1 degree costs 0.037)
    w_imu_acceleration: float = 1e-3   # per (m/s^2)^2
    # The sensors' accelerations relative to each other (losses.imu_relative_acceleration), per
    # (m/s^2)^2: free of the monocular depth jitter that swamps the absolute term above. Set on
    # benchmarks/imu_eval.py (0.03-0.3 against 0 on two samples of clips: docs/BENCHMARKS.md).
    w_imu_relative_acceleration: float = 0.1
    # In the IMU refinement the 3D target's size may change by up to this (log scale, bounded by a
    # tanh): the relative accelerations scale with the body, so they and the 2D may correct the
    # lifter's monocular size; unbounded, the scale ran away on one benchmark clip.
    imu_target_scale_range: float = 0.15
    # The IMU-conditional pose prior (fusion.imu_prior, for the six SPARSE6 sensors): the pull of
    # each joint towards the rotation the sensors imply, per unit of ||R - R_prior||_F^2 / the
    # prior's variance for it, summed over joints, in a frame the camera sees badly; in a
    # well-seen frame it falls to ``imu_prior_floor`` of that (weight * max(1 - visibility, floor)).
    # Off with a camera (it stays the IMU-only fit's, ``fusion.imu_fit``): on benchmarks/imu_eval.py
    # every lighter weight was better since the IMU lifter learnt to place hidden limbs from the
    # sensors (0.05 until then); once the body is sized by the accelerometers, of 0.02 / 0.01 /
    # 0.005 / 0.0025 / 0.001 / 0, 0 was best over both samples (on one window a stronger pull put
    # a hidden knee 29 cm off, against 12 cm without it).
    w_imu_prior: float = 0.0
    imu_prior_floor: float = 0.1
    # The IMU refinement's 3D target from the IMU lifter (lifting.lift.IMU_WEIGHTS), which also
    # sees the six sensed bones' directions (from the sensors and their alignment),
    # instead of the 3D target given: it knows from its temporal context and the sensors where
    # hidden limbs are, which the per-frame terms above do not; its target keeps full weight
    # where the camera sees little (benchmarks/imu_eval.py).
    imu_lifter: bool = True
    # The 3D target's weight in the IMU refinement (the IMU lifter's target, which knows the
    # sensed bones' directions). Set on benchmarks/imu_eval.py's occluded second: 30, then 7 as the
    # prior above was lightened; with the body sized and no prior, of 7 / 4 / 2 / 1 / 0.5 / 0, 1
    # was best over both samples (76.3 and 91.9 mm; without any target 72.5 and 97.9). The sensed
    # orientations, the 2D of what is seen and the smoothness place the body; the lifter's hidden
    # joints (~90 mm off on its own benchmark) only steady it.
    w_3d_imu: float = 1.0
    # Without a known height, the IMU refinement sizes the body (and its distance) by the head
    # sensor's accelerations (fusion.imu.scale_from_accelerations): one camera cannot tell a
    # small body near from a large one far, the accelerometers can (benchmarks/imu_eval.py).
    imu_scale: bool = True
    # With a known stature (``fit_body(height=)``), per m^2 of the fitted body's height error:
    # 1 cm costs 0.1, far above the shape prior, so the body is that tall.
    w_height: float = 1000.0


def _rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, 2) first two columns -> (..., 3, 3) rotation (Gram-Schmidt, continuous)."""
    return roma.special_gramschmidt(x)


def _initial_root(model, observed: np.ndarray, target3d: np.ndarray | None, cam: Camera,
                  names: list[str], shape: torch.Tensor | None = None, sized_target: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame global orientation (T, 3, 3) and translation (T, 3) to start from.

    Orientation: Kabsch alignment of the rest torso to the 3D target where there is one;
    otherwise upright, facing the camera or away from it as the shoulders' image order says.
    Translation: depth from the ratio of the rest body's (of ``shape``) 3D to 2D keypoint
    spread, x/y from the 2D centroid; with ``sized_target`` (a target scaled to a known height)
    and in frames where it is seen, where the target's hips' midpoint best explains the 2D
    keypoints (``lifting.lift.root_translation``, a linear least-squares solve per frame).
    On benchmarks/fit_eval.py that solve placed bodies of known height better (root 244 ->
    175 mm) but the plain fit worse (315 -> 338 mm, foot sliding 9.4 -> 10.3 mm/frame).
    """
    T = observed.shape[0]
    with torch.no_grad():
        rest = model(model.rest_pose(1), shape, vertices=False)
    rest_kp = rest.keypoints[0].double().cpu().numpy()
    root = rest.joints[0, 0].double().cpu().numpy()
    torso = [names.index(n) for n in TORSO]
    upright = np.diag([1.0, -1.0, -1.0])  # world Y up, facing +Z -> camera y down, facing the camera
    ls, rs = names.index("left_shoulder"), names.index("right_shoulder")
    both = (observed[:, ls, 2] > 0.2) & (observed[:, rs, 2] > 0.2)
    facing = np.sum((observed[both, ls, 0] - observed[both, rs, 0]))
    G2d = upright if facing >= 0 else np.diag([-1.0, -1.0, 1.0])
    G = np.repeat(G2d[None], T, 0)
    if target3d is not None:
        src = torch.as_tensor(rest_kp[torso] - rest_kp[torso].mean(0))
        ok = target3d[:, torso, 3].min(1) > 0.3
        for t in np.nonzero(ok)[0]:
            dst = torch.as_tensor(target3d[t, torso, :3] - target3d[t, torso, :3].mean(0))
            R, _ = roma.rigid_points_registration(src[None], dst[None])
            G[t] = R[0].numpy()
    transl = np.zeros((T, 3))
    valid = np.zeros(T, dtype=bool)
    f = cam.focal
    for t in range(T):
        w = observed[t, :, 2] > 0.2
        if w.sum() < 4:
            continue
        P = (rest_kp[w] - root) @ G[t].T
        uv = observed[t, w, :2]
        spread3 = np.sqrt(((P[:, :2] - P[:, :2].mean(0)) ** 2).sum(1).mean())
        spread2 = np.sqrt(((uv - uv.mean(0)) ** 2).sum(1).mean())
        if spread2 < 1e-3:
            continue
        z = f * spread3 / spread2
        xy = (uv.mean(0) - cam.K[:2, 2]) / f * z - P[:, :2].mean(0)
        transl[t] = np.array([xy[0], xy[1], z - P[:, 2].mean()]) - root
        valid[t] = True
    if not valid.any():
        raise Lift3DError("no person was detected in any frame: nothing to fit")
    if target3d is not None and sized_target:
        from lift3d.lifting.lift import root_translation

        hips = [names.index(n) for n in HIPS]
        w = observed[..., 2] * (target3d[..., 3] > 0.3) * (target3d[:, hips, 3].min(1, keepdims=True) > 0.3)
        solved = (w > 0.05).sum(1) >= 4
        if solved.any():
            rel = target3d[..., :3] - target3d[:, hips, :3].mean(1, keepdims=True)
            centre = root_translation(rel, np.concatenate([observed[..., :2], w[..., None]], -1), cam.K)
            body_hips = np.einsum("tij,kj->tki", G, rest_kp[hips] - root).mean(1)  # (T, 3)
            ok = solved & (centre[:, 2] > 0.1)  # a solve behind the camera is a bad frame's
            transl[ok] = (centre - body_hips - root)[ok]
            valid |= ok
    transl = fill_gaps(transl, valid)
    # A median over a few frames removes single-frame depth outliers from bad detections.
    from scipy.ndimage import median_filter

    transl = median_filter(transl, size=(min(5, T), 1), mode="nearest")
    return G, transl


def fit_body(
    keypoints: Keypoints2D,
    camera: Camera | None = None,
    joints3d: Joints3D | None = None,
    model: str | body_models.BodyModel = "anny",
    options: FitOptions | None = None,
    device: str = "cpu",
    progress: bool = True,
    model_kwargs: dict | None = None,
    world: bool | str = False,
    masks: np.ndarray | None = None,
    imu=None,
    imu_alignment=None,
    camera_up: np.ndarray | None = None,
    height: float | list[float] | None = None,
    camera_height: float | None = None,
) -> BodyFit:
    """Fit a body model to every tracked person of a 2D keypoint sequence.

    Args:
        keypoints: (T, P, J, 3) detections in any supported format.
        camera: intrinsics of the video; a 60-degree camera if None. The fit is expressed in
            this camera's frame (``BodyFit.frame == "camera"``).
        joints3d: optional (T, P, J', 3) root-relative 3D targets in camera axes (lifting
            network output or MediaPipe world landmarks), with confidences.
        model: a body model or its name for ``body_models.load``.
        options: weights and iteration counts.
        device: torch device for the optimisation.
        progress: show a tqdm bar per person.
        model_kwargs: passed to ``body_models.load`` (e.g. SMPL ``model_path``).
        world: express the result in the gravity-aligned world of the floor found from the
            feet (Y up, floor at y = 0; ``ground.world_from_camera``), with the camera's
            extrinsics set to match; otherwise in the camera frame. "auto": the world when a
            floor was found (the feet/floor stage ran: >= 10 frames, feet in the model's
            keypoints, ``iters_ground`` > 0), else the camera frame.
        masks: optional person masks, (T, H, W) for one person or (T, P, H, W), values in
            [0, 1], at any resolution of the image's aspect (a few hundred pixels is plenty);
            they add a silhouette stage through the soft rasteriser and a per-frame
            "silhouette_iou" quality.
        imu: optional ``lift3d.fusion.imu.IMUData`` of the first person's body-worn sensors, at
            the video's frame rate: adds orientation and acceleration terms. Without
            ``imu_alignment`` the IMUs are aligned to a first, vision-only fit (``align_imus``;
            with the mountings from ``imu.calibration`` when it has an N-pose recording), then
            the fit is refined with them.
        imu_alignment: a known ``IMUAlignment`` (e.g. from a calibration pose).
        camera_up: (3,) the world's up direction in the camera's axes (OpenCV: x right, y down,
            z forward), when the camera knows it: (0, -1, 0) for a levelled camera, a phone's
            gravity reading, or ``camera.R @ (0, 1, 0)`` for extrinsics calibrated in a Y-up
            world. The floor of the feet/floor stage (and so the ``world`` frame) is then level
            with it, only its height coming from the feet; with ``imu`` and no
            ``imu_alignment``, the IMU world's tilt comes from it too and only its heading from
            the video-only fit (``align_imus(up=)``).
        height: the person's stature in metres (one value, or one per person), when known. One
            camera cannot tell a small body near it from a large one further away; a known
            height sets the body's size (the fitted shape is held to it, ``w_height``), so its
            distance, and the 3D target is scaled to that body.
        camera_height: the camera's height above the floor in metres, when known; needs
            ``camera_up``. The floor the feet stand on then sets each body's size: a first fit
            is scaled about the camera until its floor lies ``camera_height`` below it, and fitted
            again at that stature (about twice the time). From 0.7 m up it gave statures within
            6% on benchmarks/floor_eval.py; a camera a few tens of cm above the floor sees it
            edge-on and misses by 15-21%. A person's given ``height`` wins, and it
            takes the place of the IMUs' sizing. Where no floor is found (fewer than 10 frames, no
            foot keypoints) it is not used, with a warning.
    Returns:
        BodyFit with (T, P, J, 3, 3) pose, (P, S) shape, (T, P, 3) translation and per-frame
        quality "reprojection_px" (mean error of confident keypoints; NaN where none).
    """
    opts = options or FitOptions()
    model_kwargs = dict(model_kwargs or {})
    if isinstance(model, str):
        model = body_models.load(model, device=device, **model_kwargs)
    model_name = model.name
    cam = camera or Camera.from_fov(*keypoints.image_size)
    T, P = keypoints.num_frames, keypoints.num_people
    poses, shapes, transls, planes = [], [], [], []
    reproj = np.full((T, P), np.nan)
    contact = np.zeros((T, P))
    sil_iou = np.full((T, P), np.nan)
    if masks is not None:
        masks = np.asarray(masks, dtype=np.float32)
        if len(masks) != T:
            raise Lift3DError(f"{len(masks)} masks for {T} frames")
    if camera_up is not None:  # checked before minutes of fitting, not after
        from lift3d.fusion.imu import unit_up

        camera_up = unit_up(camera_up)
    heights = person_heights(height, P)
    check_camera_height(camera_height, camera_up)
    if imu is not None and imu.num_frames != T:
        raise Lift3DError(f"the IMU streams have {imu.num_frames} samples for {T} video frames: "
                          f"resample them to {keypoints.fps:g} fps (IMUData.resampled)")
    for p in range(P):
        mask_p = None if masks is None else masks if masks.ndim == 3 else masks[:, p]
        res = _fit_person(model, keypoints, p, cam, joints3d, opts, device, progress, mask_p,
                          floor_up=camera_up, height=heights[p])
        if camera_height is not None and heights[p] is None:
            if res.plane is None:
                warnings.warn(f"camera_height not used for person {p}: no floor was found (fewer than 10 "
                              "frames, or no foot keypoints)", stacklevel=2)
            else:
                first, heights[p] = _sized_by_floor(model, res, camera_height, device)
                res = _fit_person(model, keypoints, p, cam, joints3d, opts, device, progress, mask_p,
                                  init=first, floor_up=camera_up, height=heights[p])
        if imu is not None and p == 0:
            res = _refine_with_imu(model, keypoints, cam, joints3d, opts, device, progress, mask_p,
                                   imu, imu_alignment, res, camera_up, heights[p])
        poses.append(res.pose), shapes.append(res.shape), transls.append(res.transl)
        reproj[:, p] = res.reprojection_px
        if res.silhouette_iou is not None:
            sil_iou[:, p] = res.silhouette_iou
        if res.plane is not None:
            planes.append(res.plane)
            contact[:, p] = res.contact.mean(1)
    fit = BodyFit(
        model_name=model_name, pose=np.stack(poses, 1), shape=np.stack(shapes, 0),
        transl=np.stack(transls, 1), fps=keypoints.fps, frame="camera", camera=cam,
        quality={"reprojection_px": reproj, "foot_contact": contact,
                 **({"silhouette_iou": sil_iou} if masks is not None else {})},
        model_kwargs={k: str(v) for k, v in model_kwargs.items()},
    )
    if world == "auto":
        world = bool(planes)
    if world:
        if not planes:
            raise Lift3DError("no floor was found (the body model has no foot keypoints or the "
                              "sequence is shorter than 10 frames): use world=False")
        fit = to_world(fit, planes[0], model)
    return fit


def check_camera_height(camera_height: float | None, camera_up) -> None:
    """Raise a one-line Lift3DError unless ``fit_body``'s ``camera_height`` is None or usable."""
    if camera_height is None:
        return
    if camera_up is None:
        # Without it the floor's tilt is the feet's guess, and the camera's height above that
        # floor is off by up to 3x (docs/BENCHMARKS.md), far more than the body's size.
        raise Lift3DError("camera height needs the camera's up direction too (camera_up, --camera-up; e.g. "
                          "0,-1,0 for a levelled camera): without it the floor's tilt, so the height, is a guess")
    if not np.isfinite(camera_height) or not 0.05 <= camera_height <= 20:
        raise Lift3DError(f"camera height: {camera_height:g} m is not a camera's height above the floor "
                          "(0.05-20 m; give metres)")


def person_heights(height: float | list[float] | np.ndarray | None, P: int) -> list[float | None]:
    """``fit_body``'s ``height`` as one stature (m) or None per person, checked."""
    if height is None:
        return [None] * P
    h = np.atleast_1d(np.asarray(height, dtype=np.float64))
    if h.ndim != 1 or len(h) not in (1, P):
        raise Lift3DError(f"height: give one value or one per person ({P}), not {len(h)}")
    if not np.all(np.isfinite(h)) or h.min() < 0.4 or h.max() > 2.6:
        raise Lift3DError(f"height: {', '.join(f'{v:g}' for v in h)} m is not a person's stature "
                          "(0.4-2.6 m; give metres, not centimetres)")
    return [float(v) for v in np.broadcast_to(h, (P,))]


def shape_for_height(model: body_models.BodyModel, height: float, iters: int = 40) -> torch.Tensor:
    """(1, S) the shape closest to the mean body (least |shape|^2) that stands ``height`` metres
    tall (``BodyModel.standing_height``), or as near as the model's shape space reaches."""
    shape = torch.zeros(1, model.num_shape, dtype=model.dtype, device=model.device, requires_grad=True)
    optim = torch.optim.LBFGS([shape], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optim.zero_grad()
        # 1 cm of height error weighs as much as a shape 0.1 from the mean.
        loss = ((model.standing_height(shape) - height) / 0.01).square().sum() + 100.0 * shape.square().sum()
        loss.backward()
        return loss

    optim.step(closure)
    return shape.detach()


# Bones whose length sets a 3D target's size: the legs and the torso's sides, the vertical chain
# of a standing body. The lifter's skeleton (mocap joints) and a body model's keypoints place
# shoulders, hips and wrists differently (against the posed truth the lifter's forearms read
# 0.85 of Anny's, its shoulder width 1.1-1.3), so arms and widths measure a definition as much
# as a size; on benchmarks/fit_eval.py these six placed bodies of known height better than all
# twelve limb, width and side bones (root 264 -> 244 mm).
SIZE_BONES = [("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"),
              ("right_knee", "right_ankle"), ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip")]


def target_scale(target: np.ndarray, rest_keypoints: np.ndarray, names: list[str]) -> float:
    """How much a (T, K, 4) 3D target (xyz + confidence) must be scaled to have the bone lengths
    of the body whose (K, 3) rest keypoints are given: the ratio of their summed ``SIZE_BONES``
    lengths, each target bone's length its median over the frames where both ends are
    confident (> 0.3); 1 when no bone is seen."""
    body = tgt = 0.0
    for a, b in SIZE_BONES:
        if a not in names or b not in names:
            continue
        i, j = names.index(a), names.index(b)
        ok = (target[:, i, 3] > 0.3) & (target[:, j, 3] > 0.3)
        if ok.sum() < 1:
            continue
        tgt += float(np.median(np.linalg.norm(target[ok, i, :3] - target[ok, j, :3], axis=-1)))
        body += float(np.linalg.norm(rest_keypoints[i] - rest_keypoints[j]))
    return body / tgt if tgt > 0 else 1.0


def _rest_roots(fit: BodyFit, model: body_models.BodyModel) -> np.ndarray:
    """(P, 3) each person's root joint in the rest pose: the point global orientations turn about."""
    roots = []
    with torch.no_grad():
        for p in range(fit.num_people):
            out = model(model.rest_pose(1), torch.as_tensor(fit.shape[p][None], dtype=model.dtype), vertices=False)
            roots.append(out.joints[0, 0].double().cpu().numpy())
    return np.stack(roots)


def world_axes(fit: BodyFit, plane: ground.GroundPlane, model: body_models.BodyModel
               ) -> tuple[np.ndarray, np.ndarray]:
    """(A, o) with x_world = A (x - o): the world of ``plane`` (Y up, floor y = 0, origin under the
    first person's first-frame root) from the fit's current frame."""
    return ground.world_from_camera(plane, _rest_roots(fit, model)[0] + fit.transl[0, 0])


def moved_camera(camera: Camera, A: np.ndarray, o: np.ndarray) -> Camera:
    """``camera`` (extrinsics from the old frame) with extrinsics from the new frame x' = A (x - o)."""
    return Camera(K=camera.K, dist=camera.dist, R=camera.R @ A.T, t=camera.R @ o + camera.t,
                  image_size=camera.image_size)


def to_world(fit: BodyFit, plane: ground.GroundPlane, model: body_models.BodyModel) -> BodyFit:
    """Re-express a fit (camera frame, or any world such as a calibration's) in the world of
    ``plane`` (``world_axes``); the camera gets the matching extrinsics."""
    A, o = world_axes(fit, plane, model)
    root = _rest_roots(fit, model)
    pose = fit.pose.copy()
    pose[:, :, 0] = A @ fit.pose[:, :, 0]
    # x_w = A (x - o); a body point is (x - root) G^T + root + transl in the old frame.
    transl = (root + fit.transl - o) @ A.T - root
    cam = fit.camera
    if cam is not None:
        # A camera-frame fit's frame is its camera's own: identity extrinsics from it.
        old = cam if fit.frame == "world" else Camera(K=cam.K, dist=cam.dist, image_size=cam.image_size)
        cam = moved_camera(old, A, o)
    return BodyFit(fit.model_name, pose, fit.shape, transl, fit.fps, "world", cam, fit.quality,
                   fit.model_kwargs)


def _refine_with_imu(model, keypoints, cam, joints3d, opts, device, progress, masks, imu, alignment, first,
                     camera_up=None, height=None):
    """Align the IMUs to the vision-only fit ``first`` (unless given) and fit again with them."""
    from lift3d.fusion.imu import (align_imus, mountings_from_calibration, segment_rotations,
                                   sensed_bone_directions)

    missing = [s for s in imu.segments if s not in model.joint_names]
    if missing:
        raise Lift3DError(f"IMU segment(s) {', '.join(missing)} are not joints of the {model.name} model")
    idx = [model.joint_names.index(s) for s in imu.segments]
    seen = _segment_visibility(model, keypoints, idx)  # (T, N)
    if alignment is None:
        G = segment_rotations(first.pose, model.parents, idx)
        mount = None if imu.calibration is None else mountings_from_calibration(imu.calibration)
        alignment = align_imus(imu, G, seen, mountings=mount, up=camera_up)
    if height is None and opts.imu_scale and imu.acceleration is not None:
        first, height = _sized_by_accelerometers(model, first, imu, alignment, idx, seen, keypoints.fps, device)
    if opts.imu_lifter:
        from lift3d.lifting.lift import IMU_WEIGHTS, lift

        dirs = sensed_bone_directions(model, imu, alignment)
        if dirs is not None and IMU_WEIGHTS.is_file():
            one = Keypoints2D(keypoints.data[:, :1], keypoints.format, keypoints.fps, keypoints.image_size)
            # Its joints the camera does not see are placed by the sensors, not guessed: full
            # weight, also in poorly seen frames (benchmarks/imu_eval.py: 111.9 -> 107.6 mm).
            joints3d = lift(one, cam, bone_directions=dirs[:, None], detector_weight=False)
            opts = dataclasses.replace(opts, target_trust_power=0.0)
    opts = dataclasses.replace(opts, w_3d=opts.w_3d_imu)
    # Without a known up the floor is level with the sensors' gravity: on the IMU benchmark's
    # clips the feet and torso leave it 12.2 degrees off on average, the alignment 4.0
    # (docs/BENCHMARKS.md, "How level the exported world is").
    floor_up = camera_up
    if floor_up is None:
        floor_up = alignment.Q[:, 2].mean(0)  # Q^T z: the IMU world's up in the fit's axes
        floor_up = floor_up / np.linalg.norm(floor_up)
    return _fit_person(model, keypoints, 0, cam, joints3d, opts, device, progress, masks,
                       imu=(imu, alignment, idx), init=first, floor_up=floor_up, height=height)


def _sized_by_accelerometers(model, first: "PersonFit", imu, alignment, idx: list[int], seen: np.ndarray,
                             fps: float, device: str) -> tuple["PersonFit", float | None]:
    """The vision-only fit ``first`` scaled about the camera centre to the size one trunk
    sensor's accelerations give (``fusion.imu.scale_from_accelerations``), and that size's
    stature; or ``first`` and None when they cannot tell (too little motion, no trunk sensor).
    ``seen`` (T, N) is how well the video sees each sensed segment (``_segment_visibility``).

    The sensor is the one highest on the chain from the root to the head: a monocular fit
    places the head best (five face keypoints) and it sways most, while the pelvis barely moves
    sideways and the fit's forearms and shins are off where hidden. On the IMU benchmark's two
    samples of windows the head alone missed the true stature ratio by 5.1% and 6.9% (RMS of
    the log), the head and pelvis 5.5% and 5.4%, all six sensors 6.7% and 10.3%, the pelvis
    alone 42% and 21%, the camera's own guess 16.5% and 20.0% (benchmarks/imu_scale_eval.py)."""
    from lift3d.fusion.imu import scale_from_accelerations

    chain, j = [], model.joint_names.index("head") if "head" in model.joint_names else -1
    while j >= 0:
        chain.append(j)
        j = model.parents[j]
    sensor = next((idx.index(j) for j in chain if j in idx), None)
    terms = _imu_targets((imu, alignment, idx), lambda x: torch.as_tensor(x, dtype=torch.float64), fps)
    if sensor is None or terms["force"] is None:
        return first, None
    measured = (terms["force"] + terms["gravity"][:, None]).numpy()
    weights = np.zeros(imu.valid.shape)
    weights[:, sensor] = seen[:, sensor]
    dt = model.dtype
    with torch.no_grad():
        shape = torch.as_tensor(first.shape[None], dtype=dt, device=device)
        out = model(torch.as_tensor(first.pose, dtype=dt, device=device), shape,
                    torch.as_tensor(first.transl, dtype=dt, device=device), vertices=False)
        points = out.joints[:, idx].double().cpu().numpy()
    scale, _ = scale_from_accelerations(points, measured, weights, fps, imu.valid)
    if scale == 1.0:
        return first, None
    return _rescaled(model, first, scale, device)


def _sized_by_floor(model, first: "PersonFit", camera_height: float, device: str
                    ) -> tuple["PersonFit", float]:
    """The fit ``first`` scaled about the camera centre until its floor lies ``camera_height``
    metres below the camera, and that size's stature. One camera sees the body and the floor
    only up to one common scale, which a known camera height fixes. With the camera's up known
    and the camera 0.7 m or more above the floor, this gives every stature of
    benchmarks/floor_eval.py's windows to within 6%, where the camera's guess is off by up to
    41%; a camera 0.2-0.3 m up sees the floor edge-on and misses by 15-21% (docs/BENCHMARKS.md)."""
    return _rescaled(model, first, camera_height / max(first.plane.offset, 1e-3), device)


def _rescaled(model, first: "PersonFit", scale: float, device: str) -> tuple["PersonFit", float]:
    """``first`` with the stature ``scale`` times its own and the translation scaled about the
    camera centre to match, and that stature. The scale is clamped to 0.5-2, and the stature is
    the one the body model reaches (a tall enough Anny may not exist), the distance following it."""
    with torch.no_grad():
        h = float(model.standing_height(torch.as_tensor(first.shape[None], dtype=model.dtype, device=device))[0])
    shape = shape_for_height(model, float(np.clip(scale, 0.5, 2.0)) * h)
    with torch.no_grad():
        height = float(model.standing_height(shape)[0])
    shape = shape[0].detach().double().cpu().numpy()
    return dataclasses.replace(first, shape=shape, transl=first.transl * (height / h)), height


def _imu_targets(imu, as_t, fps: float) -> dict:
    """The IMU measurements in the fit's frame: segment rotations Q^T R M^T, specific force
    Q^T R f, gravity Q^T (0, 0, -g), sample weights."""
    from lift3d.fusion.imu import GRAVITY

    data, al, idx = imu
    Qt = al.Q.transpose(0, 2, 1)[:, None]  # (T, 1, 3, 3)
    rot = Qt @ data.orientation @ al.M[None].transpose(0, 1, 3, 2)
    force = None
    if data.acceleration is not None:
        force = as_t((Qt @ data.orientation @ data.acceleration[..., None])[..., 0])
    gravity = al.Q.transpose(0, 2, 1) @ np.array([0.0, 0.0, -GRAVITY])
    return {"idx": idx, "rot": as_t(rot), "force": force, "gravity": as_t(gravity),
            "w": as_t(data.valid.astype(np.float64))}


def _imu_prior_terms(model, imu_terms: dict, vis: np.ndarray, opts: FitOptions, fps: float) -> dict | None:
    """The IMU-conditional prior's rotations for the fit (``fusion.imu_prior``) and their
    per-frame weights; None when it is off or the sensors are not the six it was trained on."""
    from lift3d.fusion.imu_prior import conditional_rotations

    if opts.w_imu_prior <= 0:
        return None
    g = imu_terms["gravity"]
    got = conditional_rotations(model, imu_terms["rot"], imu_terms["idx"], -g / g.norm(), fps)
    if got is None:
        return None
    valid = imu_terms["w"].min(1).values  # a dropped sample leaves the frame unconditioned
    trust = torch.as_tensor(np.maximum(1.0 - vis, opts.imu_prior_floor), dtype=g.dtype, device=g.device)
    return {"joints": got[0], "rot": got[1], "var": got[2], "w": opts.w_imu_prior * trust * valid}


def _segment_visibility(model, keypoints: Keypoints2D, idx: list[int]) -> np.ndarray:
    """(T, N) how well the video sees each sensed segment: the smaller confidence of the two
    model keypoints nearest the segment's joint in the rest pose (trust for IMU alignment)."""
    names = model.keypoint_names
    obs = formats.convert(keypoints.data[:, 0], keypoints.format, names)[..., 2]  # (T, K)
    with torch.no_grad():
        rest = model(model.rest_pose(1), vertices=False)
    kp, j = rest.keypoints[0].double().cpu().numpy(), rest.joints[0].double().cpu().numpy()
    seen = obs.max(0) > 0  # keypoints the detector's format provides at all
    out = []
    for i in idx:
        d = np.where(seen, np.linalg.norm(kp - j[i], axis=1), np.inf)
        near = np.argsort(d)[:2]
        out.append(obs[:, near].min(1))
    return np.stack(out, 1)


def frame_visibility(observed: np.ndarray) -> np.ndarray:
    """(T,) how much of the person the detector sees in each frame of (T, K, 3) keypoints: the
    fraction of the keypoints it gives in any frame that are confident in this one, over the
    median of that fraction on the frames where the person was found, at most 1."""
    seen = observed[..., 2] > 0
    frac = seen[:, seen.any(0)].mean(1) if seen.any() else np.zeros(len(observed))
    typical = np.median(frac[frac > 0]) if (frac > 0).any() else 1.0
    return np.clip(frac / typical, 0.0, 1.0)


def _fit_person(model, keypoints: Keypoints2D, p: int, cam: Camera, joints3d: Joints3D | None,
                opts: FitOptions, device: str, progress: bool, masks: np.ndarray | None = None,
                imu=None, init: "PersonFit | None" = None, floor_up: np.ndarray | None = None,
                height: float | None = None):
    names = model.keypoint_names
    observed = formats.convert(keypoints.data[:, p], keypoints.format, names)  # (T, K, 3)
    target = None
    if joints3d is not None:
        both = np.concatenate([joints3d.data[:, p], joints3d.confidence[:, p, :, None]], -1)
        target = formats.convert(both, joints3d.format, names)  # (T, K, 4)
    if observed[..., 2].max() <= 0:
        raise Lift3DError(f"person {p} has no confident keypoint in any frame: nothing to fit")
    T = observed.shape[0]
    dt = model.dtype
    as_t = lambda x: torch.as_tensor(x, dtype=dt, device=device)  # noqa: E731
    shape0 = None  # the shape to start from: the mean body unless the height is known
    if init is not None:
        shape0 = as_t(init.shape)[None]
    elif height is not None:
        shape0 = shape_for_height(model, height)
    if height is not None and target is not None:
        # The target's size is the lifter's guess at a typical body: the known height's is better.
        with torch.no_grad():
            rest_kp = model(model.rest_pose(1), shape0, vertices=False).keypoints[0].double().cpu().numpy()
        target = target.copy()
        target[..., :3] *= target_scale(target, rest_kp, names)
    vis = frame_visibility(observed)
    if target is not None and opts.target_trust_power > 0:
        target = target.copy()
        target[..., 3] *= vis[:, None] ** opts.target_trust_power
    if init is None:
        G0, t0 = _initial_root(model, observed, target, cam, names, shape0, sized_target=height is not None)
    obs_t, K_t = as_t(observed), as_t(cam.K)
    tgt_t = as_t(target) if target is not None else None
    sigma = opts.sigma_px or 0.04 * float(np.hypot(*keypoints.image_size))
    hips = [names.index(n) for n in HIPS]
    torso = [names.index(n) for n in TORSO]
    body = model.body_joints[1:]  # joint 0 (root) is the global orientation

    body_R = np.broadcast_to(np.eye(3), (T, len(body), 3, 3))
    if init is not None:  # refine a previous fit of this person (e.g. with IMU terms added)
        G0, t0 = init.pose[:, 0], init.transl
        body_R = init.pose[:, body]
    elif opts.warm_start and target is not None:
        # The 3D target already says how the limbs bend: a few Levenberg-Marquardt steps of the
        # mocap retargeter turn it into joint rotations, so the fit starts near the answer.
        from lift3d.fitting.retarget import retarget

        ws = retarget(target, names, model, iters=5, progress=False,
                      shape=np.zeros(model.num_shape) if shape0 is None else shape0[0].double().cpu().numpy())
        G0 = ws["pose"][:, 0]
        body_R = ws["pose"][:, body]
    well_seen = vis >= opts.bridge_below
    if opts.bridge_below > 0 and well_seen.any() and not well_seen.all():
        G0, body_R = interpolate_rotations(G0, well_seen), interpolate_rotations(body_R, well_seen)
        t0 = fill_gaps(np.asarray(t0, dtype=np.float64), well_seen)
    body_init = as_t(np.ascontiguousarray(body_R))[..., :2]
    root6 = torch.nn.Parameter(as_t(G0)[..., :2].contiguous().clone())
    transl = torch.nn.Parameter(as_t(t0).clone())
    body6 = torch.nn.Parameter(body_init.contiguous().clone())
    shape = torch.nn.Parameter(torch.zeros(1, model.num_shape, dtype=dt, device=device) if shape0 is None
                               else shape0.clone())
    # Per-frame parameters with coarse-to-fine corrections (fitting.multiscale): the optimiser
    # moves whole stretches of frames at once instead of one frame's gradient at a time.
    pyramids = {id(q): TemporalPyramid(q) for q in (root6, transl, body6)} if opts.multiscale else {}
    cur = lambda q: pyramids[id(q)].value() if id(q) in pyramids else q  # noqa: E731
    imu_terms = _imu_targets(imu, as_t, keypoints.fps) if imu is not None else None
    relative_acc = (imu_terms is not None and imu_terms["force"] is not None
                    and opts.w_imu_relative_acceleration > 0)
    # The 3D target's size is freed only where the relative accelerations can set it.
    free_scale = relative_acc and tgt_t is not None and opts.imu_target_scale_range > 0
    log_scale = torch.nn.Parameter(torch.zeros((), dtype=dt, device=device))  # the 3D target's, IMU pass only
    cond = _imu_prior_terms(model, imu_terms, vis, opts, keypoints.fps) if imu_terms is not None else None

    def full_pose() -> torch.Tensor:
        pose = model.rest_pose(T).clone()
        pose[:, 0] = _rot6d_to_matrix(cur(root6))
        pose[:, body] = _rot6d_to_matrix(cur(body6))
        return pose

    floor: dict = {}  # the ground stage's plane and contacts, once found
    prior = _pose_prior(model, dt, device) if (opts.w_prior > 0 or opts.w_limits > 0) else None

    def objective(only_torso: bool, shape_free: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        pose = full_pose()
        tr = cur(transl)
        out = model(pose, shape, tr, vertices=False)
        kp = out.keypoints
        obs = obs_t
        if only_torso:
            mask = torch.zeros(len(names), dtype=dt, device=device)
            mask[torso] = 1.0
            obs = torch.cat([obs_t[..., :2], (obs_t[..., 2] * mask)[..., None]], -1)
        loss = opts.w_2d * losses.reprojection(kp, obs, K_t, sigma)
        if tgt_t is not None:
            tgt = tgt_t
            if free_scale:
                sc = (opts.imu_target_scale_range * torch.tanh(log_scale)).exp()
                tgt = torch.cat([tgt_t[..., :3] * sc, tgt_t[..., 3:]], -1)
            loss = loss + opts.w_3d * losses.root_relative_3d(kp, tgt, hips, opts.sigma_3d)
        loss = loss + opts.w_smooth * (losses.acceleration(kp) + losses.acceleration(tr))
        if not only_torso:
            loss = loss + opts.w_pose * losses.rotation_prior(pose[:, body])
            loss = loss + opts.w_shape * shape.square().sum()
            if height is not None and shape_free:  # a mesh evaluation: skipped where the shape is held
                loss = loss + opts.w_height * (model.standing_height(shape) - height).square().sum()
            if prior is not None:
                loss = loss + opts.w_prior * prior.nll(pose).mean()
                loss = loss + opts.w_limits * prior.angle_limit_penalty(pose).mean()
        if imu_terms is not None and not only_torso:
            from lift3d.fusion.imu import segment_rotations

            seg = segment_rotations(pose, model.parents, imu_terms["idx"])
            loss = loss + opts.w_imu_orientation * losses.imu_orientation(seg, imu_terms["rot"], imu_terms["w"])
            if cond is not None:
                loss = loss + losses.conditional_rotation(pose[:, cond["joints"]], cond["rot"], cond["var"], cond["w"])
            sensors = out.joints[:, imu_terms["idx"]]  # (T, N, 3) sensor points
            if imu_terms["force"] is not None and opts.w_imu_acceleration > 0:
                loss = loss + opts.w_imu_acceleration * losses.imu_acceleration(
                    sensors, imu_terms["force"], imu_terms["gravity"], imu_terms["w"], keypoints.fps)
            if relative_acc:
                loss = loss + opts.w_imu_relative_acceleration * losses.imu_relative_acceleration(
                    sensors, imu_terms["force"], imu_terms["w"], keypoints.fps)
        if floor:
            feet = kp[:, floor["feet"]]
            loss = loss + opts.w_slide * losses.foot_sliding(feet, floor["contact"])
            loss = loss + opts.w_ground * losses.ground_contact(feet, floor["contact"], floor["normal"],
                                                                floor["offset"], floor["lift"])
        return loss, kp

    feet = [names.index(n) for n in ground.FOOT_POINTS if n in names]
    with_ground = opts.iters_ground > 0 and len(feet) >= 2 and T >= 10
    stages = [([root6, transl], opts.iters_global, True), ([root6, transl, body6, shape], opts.iters_full, False)]
    if init is not None:  # already placed: no torso-only stage
        stages = stages[1:]
    if free_scale:
        stages = [(params + [log_scale], iters, torso_only) for params, iters, torso_only in stages]
    if with_ground:
        stages.append(([root6, transl, body6], opts.iters_ground, False))
    # L-BFGS may evaluate the objective up to 1.25x max_iter times (its max_eval default).
    # After silhouettes, L-BFGS steps of the smooth objective (as many as the feet stage's) take
    # out the jitter of the key-frame Adam steps.
    resmooth = (opts.iters_ground or 30) if masks is not None and opts.iters_silhouette > 0 else 0
    total = sum(int(1.25 * s[1]) for s in stages) + int(1.25 * resmooth)
    bar = tqdm(total=total, desc=f"fitting person {p}", unit="eval",
               disable=not progress, leave=False)

    def lbfgs(params: list, iters: int, only_torso: bool) -> None:
        # L-BFGS: the objective is smooth and the parameters few per frame, so a quasi-Newton
        # step converges in far fewer evaluations than Adam (see docs/BENCHMARKS.md).
        moved = [r for q in params for r in (pyramids[id(q)].parameters() if id(q) in pyramids else [q])]
        optim = torch.optim.LBFGS(moved, lr=1.0, max_iter=iters, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_change=1e-10, tolerance_grad=1e-9)

        def closure() -> torch.Tensor:
            optim.zero_grad()
            loss, _ = objective(only_torso, any(q is shape for q in params))
            loss.backward()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.5f}")
            return loss

        optim.step(closure)
        for pyr in pyramids.values():
            pyr.bake()

    plane, contact = None, None
    for k, (params, iters, only_torso) in enumerate(stages):
        if with_ground and k == len(stages) - 1:  # the feet and floor stage starts from the full fit
            planted = _planted_feet(keypoints, p, cam, names, feet) if opts.contacts == "learned" else None
            plane, contact, lift = _find_floor(model, shape, full_pose(), transl, names, feet, keypoints.fps,
                                               observed if opts.contacts_from_2d else None, cam.focal,
                                               planted=planted, up=floor_up, prior_m=opts.floor_prior_m)
            floor.update(feet=feet, contact=torch.as_tensor(contact, device=device),
                         normal=as_t(plane.normal), offset=as_t(plane.offset), lift=as_t(lift))
        lbfgs(params, iters, only_torso)
    sil_iou = None
    if masks is not None:
        sil = _Silhouettes(model, masks, cam, opts, device)
        if opts.iters_silhouette > 0:
            # Adam, not L-BFGS: each step renders a different subset of key frames, so the
            # objective changes between steps, which a quasi-Newton history would not survive.
            optim = torch.optim.Adam([root6, transl, body6, shape], lr=opts.lr_silhouette)
            for step in range(opts.iters_silhouette):
                keys = sil.key_frames(step)
                loss, _ = objective(False)
                verts = model(full_pose()[keys], shape, transl[keys]).vertices
                loss = loss + opts.w_silhouette * sil.loss(verts, keys)
                optim.zero_grad()
                loss.backward()
                optim.step()
                bar.set_postfix(loss=f"{loss.item():.5f}")
            # Each Adam step moved only its key frames' poses; the shape the silhouettes gave is held.
            lbfgs([root6, transl, body6], resmooth, False)
        with torch.no_grad():
            sil_iou = sil.iou(lambda sl: model(full_pose()[sl], shape, transl[sl]).vertices)
    bar.close()

    with torch.no_grad():
        pose = full_pose()
        kp = model(pose, shape, transl, vertices=False).keypoints
        uv = losses.project(kp, K_t).cpu().numpy()
    err = np.linalg.norm(uv - observed[..., :2], axis=-1)
    conf = observed[..., 2] > 0.3
    with np.errstate(invalid="ignore"):
        reproj = np.where(conf.any(1), (err * conf).sum(1) / conf.sum(1), np.nan)
    return PersonFit(pose.cpu().double().numpy(), shape[0].detach().cpu().double().numpy(),
                     transl.detach().cpu().double().numpy(), reproj, plane, contact, sil_iou)


@dataclass
class PersonFit:
    """One person's result: (T, J, 3, 3) pose, (S,) shape, (T, 3) translation, (T,) mean
    reprojection error (px), the floor and (T, F) foot contacts (None without a ground stage)."""

    pose: np.ndarray
    shape: np.ndarray
    transl: np.ndarray
    reprojection_px: np.ndarray
    plane: ground.GroundPlane | None = None
    contact: np.ndarray | None = field(default=None)
    silhouette_iou: np.ndarray | None = None


_PRIORS: dict = {}


def _pose_prior(model, dtype: torch.dtype, device: str):
    """The shipped mocap pose prior for this body model, or None when there is none (a prior
    for the SMPL family is trained with ``python -m lift3d.fitting.train_prior --model smpl``)."""
    from lift3d.fitting.prior import PosePrior

    key = (model.name, str(dtype), str(device))
    if key not in _PRIORS:
        try:
            prior = PosePrior.load(dtype=dtype).to(device)
            prior.check(model)
        except (Lift3DError, OSError, ValueError, KeyError):  # no prior for this model: the plain rotation prior still applies
            prior = None
        _PRIORS[key] = prior
    return _PRIORS[key]


class _Silhouettes:
    """Person masks cropped around the person for rendering, and the silhouette term and IoU.

    Each frame renders a square crop of ``silhouette_size`` pixels around its mask's box (the
    intrinsics shifted and scaled to it), so a small, distant person still fills the render
    and the silhouette's edge is resolved whatever the video's resolution.
    """

    def __init__(self, model, masks: np.ndarray, cam: Camera, opts: FitOptions, device: str) -> None:
        import cv2

        W, _ = cam.image_size
        S = opts.silhouette_size
        sx = masks.shape[2] / W  # mask pixels per image pixel
        dt = model.dtype
        Ks, crops, has = [], [], []
        for m in masks:
            m = np.nan_to_num(m)
            ys, xs = np.nonzero(m > 0.5)
            if len(xs) < 4:
                Ks.append(cam.K), crops.append(np.zeros((S, S), np.float32)), has.append(False)
                continue
            lo = (np.array([xs.min(), ys.min()]) + 0.5) / sx - 0.5  # image pixels
            hi = (np.array([xs.max(), ys.max()]) + 0.5) / sx - 0.5
            side = 1.2 * (hi - lo).max() + 4.0
            x0, y0 = 0.5 * (lo + hi) - 0.5 * side
            s = S / side
            A = np.array([[s, 0, s * (0.5 - x0) - 0.5], [0, s, s * (0.5 - y0) - 0.5], [0, 0, 1.0]])
            a = s / sx  # mask pixel j -> crop pixel a j + (0.5 a - s x0 - 0.5)
            M = np.array([[a, 0, 0.5 * a - s * x0 - 0.5], [0, a, 0.5 * a - s * y0 - 0.5]])
            crops.append(cv2.warpAffine(m.astype(np.float32), M, (S, S), flags=cv2.INTER_AREA if a < 1
                                        else cv2.INTER_LINEAR))
            Ks.append(A @ cam.K), has.append(True)
        self.K = torch.as_tensor(np.stack(Ks), dtype=dt, device=device)
        self.size = (S, S)
        self.masks = torch.as_tensor(np.clip(np.stack(crops), 0, 1), dtype=dt, device=device)
        self.has_mask = torch.as_tensor(np.array(has), device=device)
        self.faces = model.faces.to(device)  # the IoU reported is the full mesh's
        with torch.no_grad():
            rest = model(model.rest_pose(1)).vertices[0]
        self.coarse = (render.decimate_faces(rest, model.faces, opts.silhouette_faces).to(device)
                       if opts.silhouette_faces > 0 else self.faces)
        self.n = opts.silhouette_frames
        # Soft edges a fraction of a pixel wide: wider ones bias the silhouette outwards.
        self.sigma = 0.1

    def key_frames(self, step: int) -> torch.Tensor:
        """Evenly spread frames that have a mask, shifted at every step so all get visited."""
        idx = torch.nonzero(self.has_mask).flatten()
        if len(idx) <= self.n:
            return idx
        stride = len(idx) / self.n
        pick = (torch.arange(self.n, dtype=torch.float64) * stride + (step * 0.618 * stride) % stride).long()
        return idx[pick.clamp(max=len(idx) - 1)]

    def loss(self, verts: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Mean (1 - soft IoU) of the rendered (k, V, 3) camera-frame vertices of frames ``keys``."""
        pred = render.rasterize_silhouette(verts, self.coarse, self.K[keys], self.size, sigma=self.sigma)
        return render.silhouette_loss(pred, self.masks[keys])

    def iou(self, vertices_of, batch: int = 16) -> np.ndarray:
        """(T,) hard-rendered IoU with the mask (> 0.5); NaN on frames without a mask."""
        T = len(self.masks)
        out = np.full(T, np.nan)
        for a in range(0, T, batch):
            sl = slice(a, min(T, a + batch))
            _, cover = render.render_depth(vertices_of(sl), self.faces, self.K[sl], self.size)
            m = self.masks[sl] > 0.5
            inter = (cover & m).flatten(1).sum(1).double()
            union = (cover | m).flatten(1).sum(1).double()
            iou = (inter / union.clamp(min=1)).cpu().numpy()
            out[sl] = np.where(self.has_mask[sl].cpu().numpy(), iou, np.nan)
        return out


def _planted_feet(keypoints: Keypoints2D, p: int, cam: Camera, names: list[str], feet: list[int]
                  ) -> np.ndarray | None:
    """(T, F) probability that the foot of each foot point in ``feet`` is planted (the contact
    network on the 2D keypoints), or None when it cannot say (a foot point of neither side,
    or fewer frames than 3)."""
    from lift3d.lifting.contact import SIDES, foot_contacts

    side = [next((i for i, s in enumerate(SIDES) if names[f].startswith(s + "_")), None) for f in feet]
    if None in side or keypoints.num_frames < 3:
        return None
    one = Keypoints2D(keypoints.data[:, p:p + 1], keypoints.format, keypoints.fps, keypoints.image_size)
    return foot_contacts(one, cam)[:, 0][:, side]


def _find_floor(model, shape: torch.Tensor, pose: torch.Tensor, transl: torch.Tensor, names: list[str],
                feet: list[int], fps: float, observed: np.ndarray | None = None, focal: float = 1.0,
                planted: np.ndarray | None = None, up: np.ndarray | None = None, prior_m: float = 0.05
                ) -> tuple[ground.GroundPlane, np.ndarray, np.ndarray]:
    """Floor plane, (T, F) contacts and (F,) heights of the foot points above the sole, from the
    current camera-frame fit; with ``observed`` (T, K, 3) detections, foot speeds come from
    their image motion where they are confident. With ``planted`` (T, F) probabilities, those
    are the contacts: soft weights for the sliding and floor terms (a foot the network is unsure
    of is held a little), and the plane goes through the points more likely planted than not.
    With a known (3,) unit ``up`` (``fit_body(camera_up=)``) the floor is level with it; without,
    ``prior_m`` is how firmly its normal is held to the torso's up (``ground.fit_plane``)."""
    with torch.no_grad():
        kp = model(pose, shape, transl, vertices=False).keypoints.double().cpu().numpy()
        rest = model(model.rest_pose(1), shape.detach())
    # How high each foot point sits above the sole when standing (ankle ~8 cm, toe ~2 cm):
    # the floor is fitted to the points lowered by this much.
    up_rest = rest.keypoints[0, feet, 1] - rest.vertices[0, :, 1].min()
    lift = up_rest.double().cpu().numpy()
    mid = lambda a, b: 0.5 * (kp[:, names.index(a)] + kp[:, names.index(b)])  # noqa: E731
    known = up is not None
    if not known:
        up = ground.body_up(mid("left_shoulder", "right_shoulder"), mid("left_hip", "right_hip"))
    speed = None if observed is None else ground.image_speed(observed[:, feet], kp[:, feet, 2], focal, fps)
    plane, contact = ground.estimate_ground(kp[:, feet] - lift[:, None] * up, up, fps, speed=speed,
                                            contact=None if planted is None else planted > 0.5,
                                            up_known=known, prior_m=prior_m)
    if planted is not None:
        contact = planted
    return plane, contact, lift
