"""What a user asks of a training run (:class:`TrainSpec`): every option of ``ghnerf train`` and every parameter of
the ``train`` flow, declared once here (the command and the flow are generated from it, :mod:`ghnerf.app.spec_options`).

Light to import (no torch): the command line is built from it at start-up.
"""

from dataclasses import replace
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ghnerf.base.errors import ConfigError, OptionError
from ghnerf.base.spec_fields import OutputFolder, field_from
from ghnerf.student.config import PRESETS, LossWeights, StudentConfig, preset
from ghnerf.student.train_config import (
    ENERF_SOURCE_VIEW_MIX,
    OWN_POSE_NETWORK_2D_STEPS,
    CpuPrecision,
    SourceViewMix,
    TrainConfig,
)
from storage.root import StorageOptions

# `ghnerf train`'s default config: the student benchmark's best recipe (student_quality_rows.BEST_RECIPE), its own
# pose network pretrained in 2D first (--pretrain-2d-steps auto)
DEFAULT_CONFIG = "ghnerf-resnet18-mediapipe-hypotheses"
# the best recipe without 2D pretraining (benchmark rows 22 and 28): what runs with a budget of minutes train (the
# main job, a nightly retraining's first model)
QUICK_CONFIG = "ghnerf-mediapipe-hypotheses"
_PRETRAIN_2D = TrainConfig.model_fields["pretrain_2d_steps"].description
_FREEZE_2D = TrainConfig.model_fields["freeze_pretrained_2d"].description


class TrainSpec(BaseModel):
    """A training run, as a user asks for it: the options of ``ghnerf train`` and the ``train`` flow's parameters."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # the default is the student benchmark's best recipe (student_quality_rows.BEST_RECIPE), with the mix and the
    # 2D pretraining below
    config: str = Field(DEFAULT_CONFIG, description=f"{' | '.join(PRESETS)}, optionally +cse and/or +coord")
    data: str = Field(..., description="dataset folder (ZJU-MoCap or RenderPeople layout)")
    out: OutputFolder = Field(..., description="run folder (checkpoints, validation images, history)")
    targets: str | None = Field(None, description="storage root of distilled targets")
    teacher: str | None = Field(None, description="pose teacher whose heatmaps to learn (with --targets); "
                                                  "default: the dataset's own 2D joints")
    cse_teacher: str | None = Field(None, description="CSE teacher for the +cse head (with --targets)")
    fuse_targets: bool = Field(False, description="fuse the teacher's keypoints over each frame's views (robust "
                                                  "triangulation, reprojected into every view) before training")
    steps: int = field_from(TrainConfig, "steps")
    resume: bool = Field(False, description="continue from OUT/checkpoints/latest.pt")
    overwrite: bool = Field(False, description="clear OUT first when it holds another run (without it, a non-empty "
                                               "OUT needs --resume)")
    init_from: str | None = Field(None, description="start from this checkpoint's weights (fine-tuning)")
    pretrained: str = Field(StudentConfig.pretrained, description="encoder weights: auto (the local cache when "
                                                                  "present, else a random init, said and recorded) | "
                                                                  "imagenet (must be present) | none | PATH")
    image_scale: float = field_from(TrainConfig, "image_scale")
    perceptual_weight: Annotated[float, Field(ge=0)] | Literal["auto"] = Field(
        LossWeights.perceptual, description="LPIPS-VGG weight (0.01 as ENeRF; needs the VGG16 weights in the torch "
                                            "hub cache); auto: 0.01 when they are there, else none (said and recorded)")
    patch: int = field_from(TrainConfig, "patch", default=16)
    device: str = field_from(TrainConfig, "device")
    checkpoint_every: int = field_from(TrainConfig, "checkpoint_every")
    pretrain_2d_steps: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto", description=f"{_PRETRAIN_2D}; auto: {OWN_POSE_NETWORK_2D_STEPS} for a config that triangulates its "
                            "own source heatmap head's keypoints (its own pose network, e.g. the default), else 0")
    pretrain_2d_augment: bool = field_from(TrainConfig, "pretrain_2d_augment")
    freeze_pretrained_2d: bool | None = Field(
        None, description=f"{_FREEZE_2D}; default: whenever there is 2D pretraining (--no-freeze-pretrained-2d "
                          "keeps them trainable)")
    pretrain_2d_cache: str | None = field_from(TrainConfig, "pretrain_2d_cache")
    batch_examples: int = field_from(TrainConfig, "batch_examples")
    cpu_precision: CpuPrecision = field_from(TrainConfig, "cpu_precision")
    source_view_mix: SourceViewMix = field_from(
        TrainConfig, "source_view_mix", default_factory=lambda: dict(ENERF_SOURCE_VIEW_MIX),
        description="source views per training example, drawn per example with these weights; default: ENeRF's "
                    "ZJU-MoCap training, " + " ".join(f"{k}={w}" for k, w in ENERF_SOURCE_VIEW_MIX.items())
                    + " (its train_input_views / _prob); 3=1: always 3")
    example_cache_mb: float = field_from(TrainConfig, "example_cache_mb")
    recompute_stale_targets: bool = Field(False, description="run the teacher again for shards whose input files "
                                                             "changed since distill (default: refuse and name them)")
    allow_partial_targets: bool = Field(False, description="train on the teacher shards that are there when some "
                                                           "the catalog lists are missing or damaged (recorded; "
                                                           "default: refuse and name them)")
    exclude_bad_views: bool = Field(False, description="leave out views whose image or mask is missing, unreadable, "
                                                       "truncated or of the wrong size (recorded; default: refuse "
                                                       "and list them all before step 1)")
    storage_options: StorageOptions = None

    @model_validator(mode="after")
    def _targets_for_teachers(self) -> "TrainSpec":
        if (self.teacher or self.cse_teacher) and not self.targets:
            raise ValueError("--teacher / --cse-teacher read the teacher's shards: pass --targets ROOT (the storage "
                             "root of its shards)")
        if self.fuse_targets and not self.teacher:
            raise ValueError("--fuse-targets fuses a pose teacher's keypoints: pass --teacher and --targets")
        if self.pretrain_2d_steps == "auto" and self.init_from:
            return self  # auto reads init_from's config: checked when the run builds it (train_config)
        try:  # TrainConfig's own rules across its fields, told as the command's options
            self.train_config()
        except ConfigError:
            return self  # an unknown config: the run names it, with the choices
        except OptionError as exc:
            raise ValueError(str(exc)) from None
        return self

    def train_config(self, cfg: StudentConfig | None = None) -> TrainConfig:
        """The optimisation settings of this run: the spec's fields that :class:`TrainConfig` declares, "auto" 2D
        pretraining resolved for ``cfg``, the config the run trains (default: :meth:`student_config`, read only for
        auto).

        Raises:
            OptionError: TrainConfig's rules across its fields broken, one line in the command's terms.
        """
        steps = self.pretrain_2d_steps
        if steps == "auto":
            cfg = self.student_config() if cfg is None else cfg
            steps = OWN_POSE_NETWORK_2D_STEPS if cfg.has_own_pose_network else 0
        freeze = steps > 0 if self.freeze_pretrained_2d is None else self.freeze_pretrained_2d
        shared = self.model_dump(include=set(TrainConfig.model_fields))
        try:
            return TrainConfig(**{**shared, "pretrain_2d_steps": steps, "freeze_pretrained_2d": freeze,
                                  "val_every": self.checkpoint_every,
                                  "patch": self.patch if self.perceptual_weight != 0 else 0})
        except ValidationError as exc:
            raise OptionError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None

    def student_config(self) -> StudentConfig:
        """The :class:`~ghnerf.student.config.StudentConfig` this spec trains (from init_from's checkpoint if set)."""
        if self.init_from:
            from ghnerf.student.checkpoints import load_checkpoint  # torch: only when a run is built

            cfg = load_checkpoint(self.init_from)["student_config"]
        else:
            cfg = preset(self.config, cse=self.cse_teacher is not None, pretrained=self.pretrained)
        return replace(cfg, losses=replace(cfg.losses, perceptual=self.perceptual_weight))
