"""Optimisation settings of a training run (:class:`TrainConfig`, one source of defaults)."""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ghnerf.student.config import source_views_problem

PAPER_TOTAL_STEPS = 200_000  # "converged after about 200k iterations" (paper §4.1)
PAPER_HALVING_STEPS = 50_000
# ENeRF's ZJU-MoCap training (configs/enerf/zjumocap_eval.yaml: train_input_views [2, 3], _prob [0.9, 0.1])
ENERF_SOURCE_VIEW_MIX: dict[int, float] = {2: 0.9, 3: 0.1}
# 2D pretraining steps of a student's own pose network (its source heatmap head) in the student benchmark's best rows
# (26, 33, 35: four times the 6000 of rows 18-24 lifted the teacher-free student at K = 2 and 3)
OWN_POSE_NETWORK_2D_STEPS = 24_000
CpuPrecision = Literal["auto", "float32", "bfloat16"]  # ghnerf.student.precision


def _mix_is_a_distribution(mix: dict[int, float]) -> dict[int, float]:
    for k in mix:
        if source_views_problem(k):
            raise ValueError(f"source_view_mix: {k} source views: {source_views_problem(k)}")
    if any(w < 0 for w in mix.values()) or (mix and sum(mix.values()) <= 0):
        raise ValueError("source_view_mix: weights must be >= 0 with a positive sum (e.g. 2=0.9 3=0.1)")
    return dict(sorted(mix.items()))


SourceViewMix = Annotated[dict[int, float], AfterValidator(_mix_is_a_distribution)]


class TrainConfig(BaseModel):
    """Optimisation settings (one source of defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    steps: int = Field(2000, ge=1, description="training steps")
    lr: float = Field(5e-4, gt=0)
    lr_halving_steps: int | None = Field(None, ge=1, description="default: 50k scaled by steps / 200k")
    grad_clip: float = Field(1.0, gt=0)
    rays: tuple[int, ...] = Field((256, 1024), description="rays per level per step")
    in_mask_fraction: float = Field(0.8, ge=0, le=1, description="share of rays inside the mask (rest: body box)")
    near_joints_fraction: float = Field(0.0, ge=0, le=1, description="share of rays drawn where a target heatmap "
                                                                     "is >= 0.1 (before the mask / box split)")
    heatmap_in_mask: bool = Field(False, description="zero the heatmap targets outside the foreground mask (volume "
                                                     "rendering gives heatmaps only where there is density)")
    patch: int = Field(0, ge=0, description="side of the fine-level patch for the perceptual loss (0: none)")
    image_scale: float = Field(0.5, gt=0, le=1, description="image resize factor (ENeRF input_ratio)")
    seed: int = 0
    checkpoint_every: int = Field(500, ge=1, description="steps between checkpoints")
    val_every: int = Field(500, ge=1)
    device: str = Field("auto", description="auto | cpu | cuda")
    pretrain_2d_steps: int = Field(0, ge=0, description="2D pretraining steps of the encoder and its source heatmap "
                                   "head on the source views' targets before the NeRF steps (configs with that head, "
                                   "e.g. ghnerf-resnet18-evidence; fresh runs only)")
    pretrain_2d_augment: bool = Field(True, description="during the 2D pretraining, warp each source view and its "
                                      "heatmap targets at random (rotation, zoom, mirror with left and right "
                                      "exchanged, brightness: ghnerf.student.augment_2d.Augment2D), as 2D pose "
                                      "networks are trained")
    freeze_pretrained_2d: bool = Field(False, description="after the 2D pretraining, keep the encoder, its projection "
                                       "and the source heatmap head as they are (BatchNorm statistics too) during "
                                       "the NeRF steps: the student's own pose network, used as a frozen one is")
    pretrain_2d_cache: str | None = Field(None, description="folder of 2D-pretrained pose networks: a run whose 2D "
                                          "pretraining is there (same initial weights, settings, seed, examples and "
                                          "code) takes it instead of pretraining, and one that pretrains adds its "
                                          "own (ghnerf.student.pretrain_2d_cache)")
    source_view_mix: SourceViewMix = Field(
        default_factory=dict,
        description="source views per training example, drawn per example with these weights (ENeRF's ZJU-MoCap "
                    "training: 2=0.9 3=0.1, train_input_views / _prob); empty: always the config's source_views",
        json_schema_extra={"cli": {"as": "pairs", "example": "2=0.9", "json": True}})
    example_cache_mb: float = Field(1024.0, ge=0, description="memory for training examples kept between steps "
                                    "(decoded images, heatmaps; most recently used first); 0: build each afresh")
    cpu_precision: CpuPrecision = Field("auto", description="what a training step computes in on the CPU: auto "
                                        "(bfloat16 autocast where the CPU has native bfloat16, AVX512-BF16 or AMX, "
                                        "else float32; said and recorded) | float32 | bfloat16. Weights, optimiser "
                                        "and evaluation stay float32; CUDA trains under float16 autocast either way")
    batch_examples: int = Field(1, ge=1, description="examples per step over all processes (under torchrun a "
                                                     "multiple of the process count; docs/scaling.md)")

    @model_validator(mode="after")
    def _freeze_needs_pretraining(self) -> "TrainConfig":
        if self.freeze_pretrained_2d and not self.pretrain_2d_steps:
            raise ValueError("freeze_pretrained_2d keeps the 2D-pretrained encoder fixed: pass --pretrain-2d-steps N "
                             "(N > 0) as well, or leave the encoder trainable")
        return self

    def halving(self) -> int:
        return self.lr_halving_steps or max(1, round(PAPER_HALVING_STEPS * self.steps / PAPER_TOTAL_STEPS))
