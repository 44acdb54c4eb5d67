"""The triangulated-teacher baseline: a pose teacher's keypoints of a held-out view's source views, triangulated
and projected into the held-out view (no learning; the rival a multi-view student has to beat).

Two triangulations of each joint from the K source views the student gets (the evaluation's own choice,
:meth:`ghnerf.student.data.ExampleSet.sources`):

* ``dlt``: plain DLT weighted by the teacher's confidence, over every source view that reports the joint
  (:func:`ghnerf.base.multiview.triangulate_points` without refinement);
* ``robust``: the project's robust triangulation (:func:`ghnerf.base.multiview.consistency_report`: RANSAC over
  view pairs, refit on the inliers);
* ``lifted``: ``robust`` with the joints no 2 views agree on lifted from the most confident view that detected
  them, at the depth of a triangulated neighbour (:mod:`ghnerf.base.joint_lifting`).

A joint fewer than 2 source views report (or no 2 views agree on, ``robust``; that no view reports, ``lifted``) is
missing in the projection.
Keypoints are in undistorted pixels (pinhole cameras), as the teachers produce them.
"""

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

from ghnerf.base.body25 import NUM_JOINTS
from ghnerf.base.cameras import Camera, scaled
from ghnerf.base.keypoint_codec import empty_keypoints
from ghnerf.base.multiview import consistency_report, triangulate_points
from ghnerf.base.tolerances import FEW_VIEWS_REL_THRESHOLD
from ghnerf.base.view_triangulation import triangulate_views
from ghnerf.data.images import pinhole
from ghnerf.eval.metrics import mpjpe
from ghnerf.target_fusion import FusionConfig


def _present(keypoints: np.ndarray) -> np.ndarray:
    return np.isfinite(keypoints[..., :2]).all(-1) & (np.nan_to_num(keypoints[..., 2]) > 0)


def plain_triangulation(cameras: Sequence[Camera], keypoints: Float[np.ndarray, "C 25 3"]) -> Float[np.ndarray, "25 3"]:
    """Confidence-weighted DLT of every joint over all C views that report it.

    Args:
        cameras: C pinhole cameras.
        keypoints: (C, 25, 3) x, y, confidence per view; confidence <= 0 or NaN xy: missing.
    Returns:
        (25, 3) world points, NaN where fewer than 2 views report the joint.
    """
    kp = np.asarray(keypoints, np.float64)
    present = _present(kp)
    out = np.full((NUM_JOINTS, 3), np.nan)
    for j in range(NUM_JOINTS):
        views = np.flatnonzero(present[:, j])
        if len(views) >= 2:
            out[j] = triangulate_points([cameras[v] for v in views], kp[views, j, :2], kp[views, j, 2],
                                        refine_steps=0)
    return out


def robust_triangulation(cameras: Sequence[Camera], keypoints: Float[np.ndarray, "C 25 3"],
                         more_keypoints: Float[np.ndarray, "C 25 3"] | None = None) -> Float[np.ndarray, "25 3"]:
    """The project's robust triangulation (:func:`ghnerf.base.view_triangulation.triangulate_views`) of C views'
    keypoints (and ``more_keypoints``, a second network's of the same views, pooled with them), with the outlier
    tolerance that suits a few source views best (:data:`~ghnerf.base.tolerances.FEW_VIEWS_REL_THRESHOLD`).

    Returns:
        (25, 3) world points, NaN where no 2 views agree.
    """
    return triangulate_views(cameras, keypoints, FEW_VIEWS_REL_THRESHOLD, more_keypoints=more_keypoints)


def lifted_triangulation(cameras: Sequence[Camera], keypoints: Float[np.ndarray, "C 25 3"],
                         more_keypoints: Float[np.ndarray, "C 25 3"] | None = None) -> Float[np.ndarray, "25 3"]:
    """:func:`robust_triangulation` with the joints it left missing lifted from the view that detected them
    (:func:`ghnerf.base.joint_lifting.lift_missing_joints`): the strongest rival of this kind, no learning."""
    return triangulate_views(cameras, keypoints, FEW_VIEWS_REL_THRESHOLD, lift=True, more_keypoints=more_keypoints)


TRIANGULATIONS = {"dlt": plain_triangulation, "robust": robust_triangulation, "lifted": lifted_triangulation}
ALL_CAMERAS = "robust, all cameras"  # the label ceiling: every camera of the frame, the held-out one too


def label_triangulation(cameras: Sequence[Camera],
                        keypoints: Float[np.ndarray, "C 25 3"]) -> Float[np.ndarray, "25 3"]:
    """The robust triangulation at the tolerance the fused training labels use (:class:`ghnerf.target_fusion.
    FusionConfig`): over every camera of a frame, what those labels approximate."""
    return consistency_report(cameras, keypoints, rel_threshold=FusionConfig().rel_threshold).joints3d


def frame_triangulation(cameras: Sequence[Camera], keypoints: Float[np.ndarray, "N 25 3"],
                        frames: Sequence[Hashable]) -> Float[np.ndarray, "N 25 3"]:
    """Each view's frame's joints: the keypoints of all views of the same frame (equal ``frames`` entries)
    triangulated robustly (:func:`ghnerf.base.multiview.consistency_report`, its default tolerance, as ``ghnerf
    export`` triangulates), as the evaluation turns a model's 2D keypoints of the held-out views into 3D joints;
    NaN for a frame with one view.

    Args:
        cameras: N pinhole cameras in the keypoints' pixels; keypoints: (N, 25, 3) x, y, confidence per view.
        frames: N frame keys (e.g. (subject, frame_id)).
    """
    groups: dict[Hashable, list[int]] = {}
    for i, f in enumerate(frames):
        groups.setdefault(f, []).append(i)
    out = np.full((len(frames), NUM_JOINTS, 3), np.nan)
    for views in groups.values():
        if len(views) >= 2:
            out[views] = consistency_report([cameras[i] for i in views], np.asarray(keypoints)[views]).joints3d
    return out


def project_joints(camera: Camera, joints3d: Float[np.ndarray, "25 3"]) -> Float[np.ndarray, "25 3"]:
    """(25, 3) keypoints x, y, 1 of 3D joints in a pinhole camera; NaN xy and 0 where the joint is NaN or
    behind the camera."""
    X = np.asarray(joints3d, np.float64)
    out = empty_keypoints()
    ok = np.isfinite(X).all(1)
    if ok.any():
        ok[ok] = camera.to_camera(X[ok])[:, 2] > 0
    if ok.any():
        out[ok, :2] = camera.project(X[ok], distort=False)
        out[ok, 2] = 1.0
    return out


@dataclass(frozen=True, eq=False)
class HeldOutTeacher:
    """A teacher's predictions on N held-out views, in the evaluation's pixels (image_scale applied).

    Attributes:
        keys: N (subject, frame_id, camera name), in the evaluation's order.
        on_view: (N, 25, 3) the teacher's keypoints of each view itself (all missing where it failed).
        triangulated: method -> (N, 25, 3) its source-view keypoints triangulated and projected into the view.
        joints3d: method -> (N, 25, 3) those triangulated points, metres.
        gt2d: (N, 25, 3) the dataset's 2D joints; gt3d: (N, 25, 3) its 3D joints (NaN where absent).
        cameras: N the held-out views' pinhole cameras in the evaluation's pixels (to triangulate keypoints of
            the views, as :func:`frame_triangulation` does).
        areas: (N,) the person's mask pixel count in each view (COCO's ``area``), when asked for.
    """

    keys: list[tuple[str, int, str]]
    on_view: np.ndarray
    triangulated: dict[str, np.ndarray]
    joints3d: dict[str, np.ndarray]
    gt2d: np.ndarray
    gt3d: np.ndarray
    cameras: list[Camera]
    areas: np.ndarray | None = None

    def mpjpe(self, method: str) -> float | None:
        """Mean over views of the MPJPE (metres) of ``method``'s triangulated joints; None if none is measurable."""
        errors = [e for e in (mpjpe(p, g) for p, g in zip(self.joints3d[method], self.gt3d)) if np.isfinite(e)]
        return float(np.mean(errors)) if errors else None


def teacher_keypoints(store, subject: str, frame_id: int, camera: str) -> Float[np.ndarray, "25 3"]:
    """(25, 3) a teacher's stored keypoints of one view (full-resolution pixels), all missing where it failed."""
    try:
        return store.keypoints(subject, frame_id, camera)
    except KeyError:
        return empty_keypoints()


def held_out_teacher(examples, store, max_views: int | None = None,
                     methods: Sequence[str] | Mapping[str, Callable] = tuple(TRIANGULATIONS), all_cameras: bool = False,
                     areas: bool = False, pooled_with=None) -> HeldOutTeacher:
    """The teacher on each held-out view and triangulated from that view's source views.

    Args:
        examples: a :class:`ghnerf.student.data.ExampleSet` (its split, source views and image scale).
        store: a :class:`storage.targets.TargetStore` of the pose teacher.
        max_views: the first N views only (as ``evaluate_run``).
        methods: keys of :data:`TRIANGULATIONS`, or name -> a triangulation of its signature.
        all_cameras: also triangulate (robustly, at the fused labels' tolerance: :func:`label_triangulation`) over
            every camera of the frame the teacher labelled, the held-out one included (``triangulated[ALL_CAMERAS]``):
            what training labels fused over all views approximate, so the ceiling of a student trained on them.
        areas: also read each view's mask (``HeldOutTeacher.areas``, for COCO AP).
        pooled_with: a second pose network's keypoints (read as ``store``'s), pooled with the teacher's in every
            triangulation from the source views (the methods take ``more_keypoints``: ``robust``, ``lifted``).
    """
    items = examples.items[:max_views]
    keys, on_view, gt2d, gt3d, cameras, mask_areas = [], [], [], [], [], []
    chosen = (dict(methods) if isinstance(methods, Mapping) else {m: TRIANGULATIONS[m] for m in methods}) | (
        {ALL_CAMERAS: label_triangulation} if all_cameras else {})
    tri = {m: [] for m in chosen}
    j3d = {m: [] for m in chosen}
    for index, (subject, f, cam) in enumerate(items):
        frame = examples.reader.sequence(subject).frame(f)
        keys.append((subject, frame.frame_id, frame.views[cam].name))
        target = pinhole(frame.views[cam].camera)
        cameras.append(scaled(target, examples.scale))
        srcs = examples.sources(index)

        def reader(source) -> Callable[[int], np.ndarray]:
            """camera -> ``source``'s keypoints of that view of this frame, each view read once."""
            read: dict[int, np.ndarray] = {}

            def keypoints(v: int) -> np.ndarray:
                if v not in read:
                    read[v] = teacher_keypoints(source, subject, frame.frame_id, frame.views[v].name)
                return read[v]

            return keypoints

        keypoints = reader(store)
        pooled = None if pooled_with is None else reader(pooled_with)
        for m, triangulate in chosen.items():
            views = range(len(frame.views)) if m == ALL_CAMERAS else srcs
            more = ({} if pooled is None or m == ALL_CAMERAS
                    else {"more_keypoints": np.stack([pooled(v) for v in views])})
            X = triangulate([pinhole(frame.views[v].camera) for v in views], np.stack([keypoints(v) for v in views]),
                            **more)
            j3d[m].append(X)
            tri[m].append(project_joints(target, X))
        if areas:
            mask_areas.append(float(examples.target_mask(index).sum()))
        on_view.append(keypoints(cam))
        gt = frame.views[cam].joints2d
        gt2d.append(empty_keypoints() if gt is None else gt.copy())
        gt3d.append(np.full((NUM_JOINTS, 3), np.nan) if frame.joints3d is None else frame.joints3d)

    def in_eval_pixels(kps):
        out = np.stack(kps).astype(np.float64) if kps else np.zeros((0, NUM_JOINTS, 3))
        out[..., :2] *= examples.scale
        return out

    return HeldOutTeacher(keys, in_eval_pixels(on_view), {m: in_eval_pixels(v) for m, v in tri.items()},
                          {m: np.stack(v) if v else np.zeros((0, NUM_JOINTS, 3)) for m, v in j3d.items()},
                          in_eval_pixels(gt2d),
                          np.stack(gt3d).astype(np.float64) if gt3d else np.zeros((0, NUM_JOINTS, 3)), cameras,
                          np.array(mask_areas) if areas else None)
