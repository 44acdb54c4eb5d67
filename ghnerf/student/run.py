"""One training run from a typed spec: what ``ghnerf train``, the ``train`` flow and the pipeline all call.

:class:`TrainSpec` holds every user-facing option with its default (the CLI, the
Prefect deployment parameters and the pipeline config are built from it), and
:func:`run_training` turns it into a student config, example sets and a call to
:func:`ghnerf.student.train.train`.
"""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ghnerf.base.errors import BadViewsError, ConfigError
from ghnerf.student.config import PRESETS, LossWeights, StudentConfig
from ghnerf.student.train import TrainConfig, TrainState, load_checkpoint


class TrainSpec(BaseModel):
    """A training run, as a user asks for it."""

    model_config = ConfigDict(extra="forbid")

    config: str = Field("ghnerf-resnet18", description=f"{' | '.join(PRESETS)}, optionally +cse and/or +coord")
    data: str = Field(..., description="dataset folder (ZJU-MoCap or RenderPeople layout)")
    out: str = Field(..., description="run folder (checkpoints, validation images, history)")
    targets: str | None = Field(None, description="storage root of distilled targets")
    teacher: str | None = Field(None, description="pose teacher whose heatmaps to learn (with targets); "
                                                  "default: the dataset's own 2D joints")
    cse_teacher: str | None = Field(None, description="CSE teacher for the +cse head (with targets)")
    fuse_targets: bool = Field(False, description="fuse the teacher's keypoints over each frame's views (robust "
                                                  "triangulation, reprojected into every view) before training")
    steps: int = Field(2000, ge=1, description="training steps")
    resume: bool = Field(False, description="continue from OUT/checkpoints/latest.pt")
    init_from: str | None = Field(None, description="start from this checkpoint's weights (fine-tuning)")
    pretrained: str = Field(StudentConfig.pretrained, description="encoder weights: auto (the local cache when "
                                                                  "present, else random init) | imagenet | none | PATH")
    image_scale: float = Field(0.5, gt=0, le=1, description="image resize factor (ENeRF input_ratio)")
    perceptual_weight: Annotated[float, Field(ge=0)] | Literal["auto"] = Field(
        LossWeights.perceptual, description="LPIPS-VGG weight; auto: 0.01 when the VGG16 weights are in the local "
                                            "cache, else no perceptual loss")
    patch: int = Field(16, ge=0, description="patch side for the perceptual loss (0: none)")
    device: str = Field("auto", description="auto | cpu | cuda")
    checkpoint_every: int = Field(500, ge=1, description="steps between checkpoints")
    pretrain_2d_steps: int = Field(0, ge=0, description="2D pretraining steps of the encoder and its source heatmap "
                                                        "head on the source views' targets before the NeRF steps "
                                                        "(configs with the source heatmap head; fresh runs only)")
    batch_examples: int = Field(1, ge=1, description="examples per step over all processes (under torchrun a "
                                                     "multiple of the process count; docs/scaling.md)")
    allow_partial_targets: bool = Field(False, description="train on the teacher shards that are there when some "
                                                           "the catalog lists are missing or damaged (recorded)")
    exclude_bad_views: bool = Field(False, description="leave out views whose image or mask is missing, unreadable, "
                                                       "truncated or of the wrong size (recorded) instead of refusing")
    storage_options: dict | None = Field(None, description="fsspec options of the targets' storage root "
                                                           "(e.g. endpoint_url)")

    def student_config(self):
        """The :class:`~ghnerf.student.config.StudentConfig` this spec trains (from init_from's checkpoint if set)."""
        from ghnerf.student.config import preset

        if self.init_from:
            cfg = load_checkpoint(self.init_from)["student_config"]
        else:
            cfg = preset(self.config, cse=self.cse_teacher is not None, pretrained=self.pretrained)
        return replace(cfg, losses=replace(cfg.losses, perceptual=self.perceptual_weight))


def run_training(spec: TrainSpec, on_step: Callable[[int, dict], None] | None = None,
                 log: Callable[[str], None] = print) -> TrainState:
    """Build the example sets of ``spec`` and train.

    Args:
        spec: the run.
        on_step: called after every step with (step, record) where record has loss, psnr, lr, it_s.
        log: where progress lines go.
    Returns:
        the training state (final step and per-step history).
    Raises:
        ConfigError: inconsistent options (teacher without targets, unknown config, ...).
    """
    from ghnerf.student.data import ExampleSet
    from ghnerf.student.train import train
    from ghnerf.target_fusion import FusionConfig
    from storage.targets import TargetStore

    if (spec.teacher or spec.cse_teacher) and not spec.targets:
        raise ConfigError("a teacher / cse_teacher needs targets=ROOT (the storage root of its shards)")
    if spec.fuse_targets and not spec.teacher:
        raise ConfigError("fuse_targets fuses a pose teacher's keypoints: pass teacher= and targets=")
    cfg = spec.student_config()

    def store(teacher: str | None):
        return TargetStore(spec.targets, teacher, storage_options=spec.storage_options,
                           allow_partial=spec.allow_partial_targets) if teacher else None

    hm_store, cse_store = store(spec.teacher), store(spec.cse_teacher)
    heat = "none" if not cfg.heatmap_head else ("store" if hm_store else "dataset")
    fusion = FusionConfig() if spec.fuse_targets and heat == "store" else None
    examples = ExampleSet(spec.data, "train", cfg.source_views, spec.image_scale, heat, hm_store, cse_store,
                          fusion=fusion, source_targets=cfg.source_heatmap_head)
    val = ExampleSet(spec.data, "test", cfg.source_views, spec.image_scale, heat if heat != "store" else "none")
    for line in examples.reader.warnings():
        log(f"warning: {line}")
    for ts in (hm_store, cse_store):
        for line in (ts.left_out if ts else []):
            log(f"warning: left out (--allow-partial-targets): {line}")
    validate_views(examples, val, spec.exclude_bad_views, log)
    tcfg = TrainConfig(steps=spec.steps, image_scale=spec.image_scale,
                       patch=spec.patch if spec.perceptual_weight != 0 else 0, device=spec.device,
                       checkpoint_every=spec.checkpoint_every, val_every=spec.checkpoint_every,
                       batch_examples=spec.batch_examples, pretrain_2d_steps=spec.pretrain_2d_steps)
    return train(cfg, tcfg, examples, Path(spec.out), resume=spec.resume, val_examples=val, on_step=on_step,
                 log=log, init_from=spec.init_from)


def validate_views(examples, val, exclude: bool, log: Callable[[str], None] = print) -> None:
    """Check every view the run will use before step 1 (file headers and sizes, no decode).

    All bad files are reported at once: refused (:class:`~ghnerf.base.errors.BadViewsError`) unless ``exclude``,
    then their views are left out of ``examples`` (as targets and as sources) and of ``val``'s first example,
    and recorded (``ExampleSet.excluded``, written to run.json and every checkpoint).
    """
    bad, val_bad = examples.check_views(), val.check_views(only_first=True)
    if not (bad or val_bad):
        return
    if not exclude:
        seen, listed = set(), []
        for b in bad + val_bad:
            if (b["path"], b["view"]) not in seen:
                seen.add((b["path"], b["view"]))
                listed.append(b)
        raise BadViewsError(listed, "pass --exclude-bad-views to train without them")
    for b in bad + val_bad:
        log(f"warning: excluding view {b['view']}: {b['path']}: {b['problem']}")
    dropped = examples.exclude_views(bad) if bad else 0
    while val_bad:
        val.exclude_views(val_bad)
        val_bad = val.check_views(only_first=True)
        for b in val_bad:
            log(f"warning: excluding view {b['view']}: {b['path']}: {b['problem']}")
    log(f"warning: {len(examples.excluded) + len(val.excluded)} bad file(s) excluded (--exclude-bad-views); "
        f"{dropped} of the training examples dropped, {len(examples)} left")
