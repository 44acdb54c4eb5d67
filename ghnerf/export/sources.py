"""Where exported keypoints come from: a trained student, or a pose teacher's shards.

Both give, per frame, 2D keypoints of every capture view in the *full-resolution undistorted*
pixels of the dataset's images (the convention of the readers' ``joints2d`` and of the teachers'
targets) and 3D joints in world metres.

* **Student**: each capture view is rendered from its nearest other capture cameras
  (:func:`ghnerf.student.inference.render_full_view`); 2D keypoints are read off the rendered
  heatmaps the OpenPose way with sub-pixel refinement (:func:`ghnerf.eval.metrics.openpose_keypoints`,
  confidence = heatmap value at the peak, >= 0.1, and 0 where the student sees no joint); 3D joints
  (:data:`JOINTS3D`) by default those keypoints of every capture view triangulated robustly, as the teacher's
  below, or from the occupancy-weighted heatmap volume over the frame's views
  (:class:`ghnerf.eval.volumetric.HeatmapVolume`, confidence = volume peak; a peak on the volume's border is
  absent).
* **Teacher**: its stored keypoints (:meth:`storage.targets.TargetStore.keypoints`); 3D joints by
  robust triangulation over the views it labelled (:func:`triangulated_joints`), confidence = mean teacher
  confidence of the inlier views. A view it has no keypoints for is reported
  (``FrameKeypoints.missing``) with the error its distillation recorded.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from jaxtyping import Float

from ghnerf.base.body25 import NUM_JOINTS
from ghnerf.base.errors import ConfigError
from ghnerf.data.records import MultiViewFrame

Progress = Callable[[int, int], None]
"""Called after each view with (views done, views in all)."""

# How a student's 3D joints are made (``ghnerf export --joints3d``; the evaluation reports both as MPJPE); in the
# student benchmark (benchmarks/student_quality.py) triangulated is about 3x closer to the true joints.
JOINTS3D = {
    "triangulated": "the student's 2D keypoints of every capture view triangulated robustly (as the teacher's), the "
                    "evaluation's 'MPJPE tri.'",
    "volumetric": "the peaks of the student's occupancy-weighted joint volume, the evaluation's 'MPJPE vol.'",
}
DEFAULT_JOINTS3D = "triangulated"


@dataclass(frozen=True, eq=False)
class FrameKeypoints:
    """One frame's keypoints.

    Attributes:
        frame: the dataset's frame (subject, frame id, every camera's image, mask files and 2D joints).
        views: camera name -> (25, 3) x, y, confidence (full-resolution undistorted pixels; NaN / 0 missing).
        joints3d: (25, 4) x, y, z (metres), confidence; NaN / 0 where missing.
        missing: camera name -> why that view has no keypoints (it is in no ``views``).
    """

    frame: MultiViewFrame
    views: dict[str, Float[np.ndarray, "25 3"]]
    joints3d: Float[np.ndarray, "25 4"]
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return self.frame.subject

    @property
    def frame_id(self) -> int:
        return self.frame.frame_id


def student_keypoints(run: str | Path, data: str | Path, subject: str, frames: str = ":",
                      checkpoint: str | Path | None = None, source_views: int | None = None, device: str = "auto",
                      on_view: Progress | None = None, with_2d: bool = True, with_3d: bool = True,
                      joints3d: str = DEFAULT_JOINTS3D) -> Iterator[FrameKeypoints]:
    """Keypoints of every capture view of ``subject``'s chosen frames, rendered once by the run's student
    (``with_2d`` / ``with_3d`` off: that part is skipped, left empty / zero); 3D joints made as ``joints3d``
    (a key of :data:`JOINTS3D`) says.

    Raises:
        ConfigError: the student has no heatmap head, or bad subject / frames / source views.
    """
    from ghnerf.data.images import pinhole
    from ghnerf.eval.evaluate import load_run_model
    from ghnerf.eval.volumetric import HeatmapVolume
    from ghnerf.eval.metrics import openpose_keypoints
    from ghnerf.render.scene import open_scene
    from ghnerf.render.views import source_views as pick_sources
    from ghnerf.render.views import view_example
    from ghnerf.student.cpu_policy import apply_inference_policy
    from ghnerf.student.distributed import pick_device
    from ghnerf.student.inference import FrameEncodings, render_full_view

    if joints3d not in JOINTS3D:
        raise ConfigError(f"unknown joints3d {joints3d!r}; choose one of {', '.join(JOINTS3D)}")
    ck_path = Path(checkpoint) if checkpoint else Path(run) / "checkpoints" / "latest.pt"
    dev = pick_device(device)
    model, ck = load_run_model(ck_path, dev)
    apply_inference_policy(dev)
    if model.heatmap_head is None:
        raise ConfigError(f"{ck_path}: {ck['student_config'].name} has no heatmap head, so no keypoints to export")
    scene = open_scene(data, subject, frames, ck["train_config"].image_scale,
                       source_views or ck["student_config"].source_views)
    render_2d = with_2d or (with_3d and joints3d == "triangulated")
    total, done = len(scene.frames) * len(scene.captures), 0
    volumetric = with_3d and joints3d == "volumetric"
    encodings = FrameEncodings(model, dev)  # a frame's views sharing their sources encode them once
    for f in scene.frames:
        frame = scene.sequence.frame(f)
        views = {}
        volume = HeatmapVolume(model, frame.bounds, dev) if volumetric and frame.bounds is not None else None
        for c, cam in enumerate(scene.captures):
            srcs = pick_sources(scene.captures, cam, scene.candidates, scene.source_views)
            ex = view_example(frame, cam, srcs, scene.scale, frame.views[c].name)
            encoding = encodings.get(f, srcs, ex.batch) if render_2d or volume is not None else None
            if render_2d:
                kp = openpose_keypoints(render_full_view(model, ex, dev, encoding=encoding)["heatmaps"].numpy())
                kp[:, :2] /= scene.scale  # the student's pixels are the K-scaled ones (as its training targets)
                views[frame.views[c].name] = kp
            if volume is not None:  # the view's occupancy-weighted heatmaps, from the encoding the render used
                volume.add(ex.batch, encoding)
            done += 1
            if on_view:
                on_view(done, total)
        joints = None
        if with_3d and joints3d == "triangulated":
            joints = triangulated_joints([pinhole(v.camera) for v in frame.views], np.stack(list(views.values())))
        elif volume is not None:
            joints = volume.joints()
        yield FrameKeypoints(frame, views if with_2d else {},
                             joints if joints is not None else np.zeros((NUM_JOINTS, 4)))


def triangulated_joints(cameras, keypoints: Float[np.ndarray, "C 25 3"]) -> Float[np.ndarray, "25 4"]:
    """(25, 4) x, y, z (metres), confidence of C views' keypoints triangulated robustly
    (:func:`ghnerf.base.multiview.consistency_report`); confidence = the mean keypoint confidence of the joint's
    inlier views; zeros where no two views agree."""
    from ghnerf.base.multiview import consistency_report

    rep = consistency_report(cameras, keypoints)
    inlier = np.isfinite(rep.reprojection_error) & ~rep.outlier  # (C, 25)
    conf = np.where(inlier, np.nan_to_num(keypoints[..., 2]), 0).sum(0) / np.maximum(inlier.sum(0), 1)
    joints = np.zeros((NUM_JOINTS, 4))
    ok = np.isfinite(rep.joints3d).all(1)
    joints[ok, :3], joints[ok, 3] = rep.joints3d[ok], conf[ok]
    return joints


def teacher_keypoints(store: str, teacher: str, data: str | Path, subject: str, frames: str = ":",
                      on_view: Progress | None = None) -> Iterator[FrameKeypoints]:
    """A pose teacher's keypoints of ``subject``'s chosen frames; a view it has no target for is in
    ``missing`` with the failure its distillation recorded.

    Raises:
        ConfigError: bad subject / frames, or the teacher labelled none of the chosen frames.
    """
    from ghnerf.data import open_dataset
    from ghnerf.data.images import pinhole
    from ghnerf.render.scene import frame_indices
    from storage.targets import TargetStore

    targets = TargetStore(store, teacher)
    targets.check_inputs(data)
    failures = {f["key"]: f.get("error", "") for e in targets.entries for f in e.failures}
    reader = open_dataset(data)
    if subject not in reader.subjects():
        raise ConfigError(f"{data}: no subject {subject!r}; the dataset has {', '.join(reader.subjects())}")
    seq = reader.sequence(subject)
    chosen = frame_indices(frames, seq.num_frames)
    found, done = 0, 0
    for f in chosen:
        frame = seq.frame(f)
        views, cams, missing = {}, [], {}
        for v in frame.views:
            done += 1
            try:
                views[v.name] = targets.keypoints(subject, frame.frame_id, v.name)
                cams.append(pinhole(v.camera))
            except KeyError:
                error = failures.get(f"{subject}/{frame.frame_id}/{v.name}")
                missing[v.name] = (f"teacher {teacher} failed on this view: {error}" if error else
                                   f"teacher {teacher} has no target for this view in {store}")
            if on_view:
                on_view(done, len(chosen) * len(frame.views))
        if not views:
            continue
        found += 1
        joints = triangulated_joints(cams, np.stack(list(views.values()))) if len(views) >= 2 else \
            np.zeros((NUM_JOINTS, 4))
        yield FrameKeypoints(frame, views, joints, missing)
    if not found:
        raise ConfigError(f"{store}: teacher {teacher} has no targets for {subject} frames {frames}; distill them "
                          "first (`ghnerf distill`)")
