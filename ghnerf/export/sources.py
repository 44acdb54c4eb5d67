"""Where exported keypoints come from: a trained student, or a pose teacher's shards.

Both give, per frame, 2D keypoints of every capture view in the *full-resolution undistorted*
pixels of the dataset's images (the convention of the readers' ``joints2d`` and of the teachers'
targets) and 3D joints in world metres.

* **Student**: each capture view is rendered from its nearest other capture cameras
  (:func:`ghnerf.student.inference.render_full_view`); 2D keypoints are read off the rendered
  heatmaps the OpenPose way (:func:`ghnerf.eval.metrics.openpose_keypoints`, confidence = heatmap
  value at the peak); 3D joints from the occupancy-weighted heatmap volume over the frame's views
  (:func:`ghnerf.eval.evaluate.volumetric_joints`, confidence = volume peak).
* **Teacher**: its stored keypoints (:meth:`storage.targets.TargetStore.keypoints`); 3D joints by
  robust triangulation over the views it labelled (:func:`ghnerf.base.multiview.consistency_report`),
  confidence = mean teacher confidence of the inlier views.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import Float

from ghnerf.base.body25 import NUM_JOINTS
from ghnerf.base.errors import ConfigError


@dataclass(frozen=True, eq=False)
class FrameKeypoints:
    """One frame's keypoints.

    Attributes:
        subject, frame_id: which frame (``frame_id`` as in the dataset's file names).
        views: camera name -> (25, 3) x, y, confidence (full-resolution undistorted pixels; NaN / 0 missing).
        image_paths, sizes: camera name -> image file and its (H, W).
        joints3d: (25, 4) x, y, z (metres), confidence; NaN / 0 where missing.
    """

    subject: str
    frame_id: int
    views: dict[str, Float[np.ndarray, "25 3"]]
    image_paths: dict[str, Path]
    sizes: dict[str, tuple[int, int]]
    joints3d: Float[np.ndarray, "25 4"]


def _frame_files(frame) -> tuple[dict, dict]:
    return ({v.name: v.image_path for v in frame.views},
            {v.name: (v.camera.height, v.camera.width) for v in frame.views})


def student_keypoints(run: str | Path, data: str | Path, subject: str, frames: str = ":",
                      checkpoint: str | Path | None = None, source_views: int | None = None, device: str = "auto",
                      on_view: Callable[[], None] | None = None, with_2d: bool = True,
                      with_3d: bool = True) -> Iterator[FrameKeypoints]:
    """Keypoints of every capture view of ``subject``'s chosen frames, rendered by the run's student
    (``with_2d`` / ``with_3d`` off: that part is skipped, left empty / zero).

    Raises:
        ConfigError: the student has no heatmap head, or bad subject / frames / source views.
    """
    from ghnerf.eval.evaluate import load_run_model, volumetric_joints
    from ghnerf.eval.metrics import openpose_keypoints
    from ghnerf.render.scene import open_scene
    from ghnerf.render.views import source_views as pick_sources
    from ghnerf.render.views import view_example
    from ghnerf.student.distributed import pick_device
    from ghnerf.student.inference import render_full_view

    ck_path = Path(checkpoint) if checkpoint else Path(run) / "checkpoints" / "latest.pt"
    dev = pick_device(device)
    model, ck = load_run_model(ck_path, dev)
    if model.heatmap_head is None:
        raise ConfigError(f"{ck_path}: {ck['student_config'].name} has no heatmap head, so no keypoints to export")
    scene = open_scene(data, subject, frames, ck["train_config"].image_scale,
                       source_views or ck["student_config"].source_views)
    for f in scene.frames:
        frame = scene.sequence.frame(f)
        views, examples = {}, []
        for c, cam in enumerate(scene.captures):
            srcs = pick_sources(scene.captures, cam, scene.candidates, scene.source_views)
            ex = view_example(frame, cam, srcs, scene.scale, frame.views[c].name)
            if with_2d:
                kp = openpose_keypoints(render_full_view(model, ex, dev)["heatmaps"].numpy())
                kp[:, :2] /= scene.scale
                views[frame.views[c].name] = kp
            examples.append(ex)
            if on_view:
                on_view()
        joints = volumetric_joints(model, examples, dev) if with_3d else None
        paths, sizes = _frame_files(frame)
        yield FrameKeypoints(subject, frame.frame_id, views, paths, sizes,
                             joints if joints is not None else np.zeros((NUM_JOINTS, 4)))


def teacher_keypoints(store: str, teacher: str, data: str | Path, subject: str, frames: str = ":",
                      on_view: Callable[[], None] | None = None) -> Iterator[FrameKeypoints]:
    """A pose teacher's keypoints of ``subject``'s chosen frames (views it has no target for are left out).

    Raises:
        ConfigError: bad subject / frames, or the teacher labelled none of the chosen frames.
    """
    from ghnerf.base.multiview import consistency_report
    from ghnerf.data import open_dataset
    from ghnerf.data.images import pinhole
    from ghnerf.render.scene import frame_indices
    from storage.targets import TargetStore

    targets = TargetStore(store, teacher)
    targets.check_inputs(data)
    reader = open_dataset(data)
    if subject not in reader.subjects():
        raise ConfigError(f"{data}: no subject {subject!r}; the dataset has {', '.join(reader.subjects())}")
    seq = reader.sequence(subject)
    found = 0
    for f in frame_indices(frames, seq.num_frames):
        frame = seq.frame(f)
        views, cams = {}, []
        for v in frame.views:
            try:
                views[v.name] = targets.keypoints(subject, frame.frame_id, v.name)
            except KeyError:
                continue
            cams.append(pinhole(v.camera))
            if on_view:
                on_view()
        if not views:
            continue
        found += 1
        joints = np.zeros((NUM_JOINTS, 4))
        if len(views) >= 2:
            kps = np.stack(list(views.values()))
            rep = consistency_report(cams, kps)
            inlier = np.isfinite(rep.reprojection_error) & ~rep.outlier  # (C, 25)
            conf = np.where(inlier, np.nan_to_num(kps[..., 2]), 0).sum(0) / np.maximum(inlier.sum(0), 1)
            ok = np.isfinite(rep.joints3d).all(1)
            joints[ok, :3], joints[ok, 3] = rep.joints3d[ok], conf[ok]
        paths, sizes = _frame_files(frame)
        yield FrameKeypoints(subject, frame.frame_id, views, {k: paths[k] for k in views},
                             {k: sizes[k] for k in views}, joints)
    if not found:
        raise ConfigError(f"{store}: teacher {teacher} has no targets for {subject} frames {frames}; distill them "
                          "first (`ghnerf distill`)")
