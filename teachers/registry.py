"""Teacher registry: names -> constructors, and whether each teacher can run on this machine.

``build_teacher(name, options)`` is the only place teachers are constructed, so the
CLI, the flows and the tests agree on names and options.
"""

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ghnerf.base.keypoint_codec import HeatmapCodec
from ghnerf.base.errors import ConfigError
from teachers.base import Teacher, TeacherUnavailable


@dataclass(frozen=True)
class TeacherSpec:
    name: str
    kinds: str
    description: str
    build: Callable[[dict], Teacher]


def _gt(opts: dict) -> Teacher:
    from teachers.gt_joints import GTJointsTeacher

    return GTJointsTeacher(HeatmapCodec(opts.get("stride", 2), opts.get("sigma", 7.0)))


def _mediapipe(opts: dict) -> Teacher:
    from teachers.mediapipe_pose import MediaPipeTeacher

    return MediaPipeTeacher(HeatmapCodec(opts.get("stride", 2), opts.get("sigma", 7.0)))


def _surface(opts: dict) -> Teacher:
    from teachers.surface_cse import SurfaceCSETeacher

    return SurfaceCSETeacher(stride=opts.get("stride", 2))


def _path_option(opts: dict, key: str, env: str, what: str) -> Path:
    value = opts.get(key) or os.environ.get(env)
    if not value:
        raise TeacherUnavailable(f"no {what} given: pass --teacher-opt {key}=PATH or set {env} "
                                 "(see docs/optional-teachers.md)")
    return Path(value)


def _openpifpaf(opts: dict) -> Teacher:
    if importlib.util.find_spec("openpifpaf") is None:
        raise TeacherUnavailable("openpifpaf is not installed; see docs/optional-teachers.md for the recipe")
    from teachers.openpifpaf_pose import OpenPifPafTeacher

    return OpenPifPafTeacher(checkpoint=_path_option(opts, "checkpoint", "GHNERF_OPENPIFPAF_CHECKPOINT",
                                                     "openpifpaf checkpoint"),
                             codec=HeatmapCodec(opts.get("stride", 2), opts.get("sigma", 7.0)))


def _densepose(opts: dict) -> Teacher:
    if importlib.util.find_spec("detectron2") is None:
        raise TeacherUnavailable("detectron2 (with DensePose) is not installed; see docs/optional-teachers.md")
    from teachers.densepose_cse import DensePoseCSETeacher

    return DensePoseCSETeacher(
        config_file=_path_option(opts, "config", "GHNERF_DENSEPOSE_CONFIG", "DensePose CSE config file"),
        weights=_path_option(opts, "weights", "GHNERF_DENSEPOSE_WEIGHTS", "DensePose CSE weights file"),
        stride=int(opts.get("stride", 2)))


REGISTRY: dict[str, TeacherSpec] = {s.name: s for s in (
    TeacherSpec("gt-joints", "heatmap, keypoints", "Gaussian heatmaps from the dataset's 2D joints", _gt),
    TeacherSpec("mediapipe", "heatmap, keypoints", "MediaPipe Pose (bundled pretrained model), per view",
                _mediapipe),
    TeacherSpec("surface-cse", "cse", "16-d surface embedding from synthetic canonical coordinates", _surface),
    TeacherSpec("openpifpaf", "heatmap, keypoints", "openpifpaf CIF fields -> BODY_25 (optional extra)",
                _openpifpaf),
    TeacherSpec("densepose-cse", "cse", "detectron2 DensePose CSE embeddings (optional extra)", _densepose),
)}


def build_teacher(name: str, options: dict | None = None) -> Teacher:
    """Construct teacher ``name``; raises TeacherUnavailable when it cannot run here."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown teacher {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name].build(dict(options or {}))


def availability(name: str, options: dict | None = None) -> tuple[bool, str]:
    """(usable, reason) for ``ghnerf teachers list``."""
    try:
        t = build_teacher(name, options)
    except TeacherUnavailable as exc:
        return False, str(exc)
    close = getattr(t, "close", None)
    if close:
        close()
    return True, f"ready ({t.version}, weights {t.weights_digest[:12]})"
