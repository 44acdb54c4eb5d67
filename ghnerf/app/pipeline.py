"""The whole chain without a server: synthetic data -> teacher shards -> student -> evaluation -> registry.

:class:`PipelineConfig` is the one source of defaults for the main job: ``ghnerf
pipeline`` runs it in-process (for scripts and CI), and ``make demo`` runs the same
steps through the Prefect deployments (``flows/demo.py``), with the same
parameters (:meth:`PipelineConfig.distill_params` and friends).
"""

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ghnerf.app.model_registry import EvalSpec, ModelRegistry, PromotionRule, decide, model_record
from ghnerf.base.spec_fields import OutputFolder, field_from
from ghnerf.student.train_config import CpuPrecision
from ghnerf.student.train_spec import QUICK_CONFIG, TrainSpec
from ghnerf.synth.records import SynthConfig


class PipelineConfig(BaseModel):
    """The main job's settings (small enough for a 2-core CPU machine)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    out: OutputFolder = Field("demo_out", description="where everything is written")
    layout: Literal["renderpeople", "zju"] = Field("renderpeople", description="synthetic layout: renderpeople | zju")
    subjects: int = field_from(SynthConfig, "subjects", default=3, ge=2,
                               description="synthetic subjects (the last ones form the test split)")
    frames: int = field_from(SynthConfig, "frames", default=4, description="frames per subject")
    cameras: int = field_from(SynthConfig, "cameras", default=8, ge=8,
                              description="cameras (the split needs 3 training views near each test view)")
    size: int = field_from(SynthConfig, "size", default=128)
    teacher: str = Field("mediapipe", description="pose teacher distilled into the student")
    # the best recipe its budget allows (issue 23; README "The main job's student"): the frozen teacher network as
    # encoder with its triangulated joint hypotheses (train's default pretrains a pose network of its own for 24,000
    # 2D steps first: most of an hour on 2 cores), on the teacher's labels fused over each frame's views
    config: str = field_from(TrainSpec, "config", default=QUICK_CONFIG)
    fuse_targets: bool = field_from(TrainSpec, "fuse_targets", default=True)
    steps: int = field_from(TrainSpec, "steps", default=300)
    image_scale: float = field_from(TrainSpec, "image_scale", default=1.0)
    pretrained: str = field_from(TrainSpec, "pretrained")
    eval_max_views: int = Field(6, ge=1, description="held-out views evaluated")
    device: str = field_from(TrainSpec, "device")
    cpu_precision: CpuPrecision = field_from(TrainSpec, "cpu_precision")

    @property
    def dataset(self) -> str:
        return str(Path(self.out) / "data" / self.layout)

    @property
    def targets(self) -> str:
        return str(Path(self.out) / "targets" / self.layout)

    @property
    def registry(self) -> str:
        return str(Path(self.out) / "models")

    @property
    def run(self) -> str:
        return str(Path(self.out) / "runs" / self.config)

    def synth_config(self) -> SynthConfig:
        return SynthConfig(layout=self.layout, subjects=self.subjects, frames=self.frames, cameras=self.cameras,
                           size=self.size)

    def distill_params(self) -> dict:
        """Parameters of the ``distill`` flow / deployment."""
        return {"dataset": self.dataset, "teacher": self.teacher, "out": self.targets, "frames_per_shard": self.frames}

    def train_spec(self) -> TrainSpec:
        return TrainSpec(config=self.config, data=self.dataset, out=self.run, targets=self.targets,
                         teacher=self.teacher, fuse_targets=self.fuse_targets, steps=self.steps, pretrained=self.pretrained,
                         image_scale=self.image_scale, perceptual_weight=0.0, device=self.device,
                         cpu_precision=self.cpu_precision,
                         checkpoint_every=max(self.steps // 2, 1), overwrite=True)  # the pipeline's own run

    def evaluate_params(self) -> dict:
        """Parameters of the ``evaluate`` flow / deployment: the held-out views, with the student beside its
        teacher and the triangulated teacher (the teacher's shards of the same views)."""
        return {"run": self.run, "data": self.dataset, "split": "test", "max_views": self.eval_max_views,
                "targets": self.targets, "teacher": self.teacher}

    def eval_spec(self) -> EvalSpec:
        return EvalSpec(dataset=str(Path(self.dataset).resolve()), split="test", max_views=self.eval_max_views)


def generate(cfg: PipelineConfig, on_frame: Callable[[str, int], None] | None = None) -> str:
    """Write the synthetic dataset (replacing an older one); returns its folder."""
    from ghnerf.synth.generate import generate_dataset

    generate_dataset(cfg.synth_config(), cfg.dataset, overwrite=True, on_frame=on_frame)
    return cfg.dataset


def promote_if_better(cfg: PipelineConfig, report: dict, run_id: str | None = None,
                      rule: PromotionRule | None = None):
    """Register the evaluated run: promoted when the registry has no better model (see :func:`decide`)."""
    from ghnerf.app.model_registry import Decision

    rule = rule or PromotionRule()
    registry = ModelRegistry(cfg.registry)
    best = registry.best()
    candidate = model_record(report["checkpoint"], report, cfg.eval_spec())
    action, reason = decide(candidate, best, rule)
    decision = Decision(action=action, reason=reason, rule=rule, candidate=candidate, incumbent=best,
                        new_shards=candidate.shard_keys, run_id=run_id)
    registry.record(decision)
    return decision


def run_pipeline(cfg: PipelineConfig, log: Callable[[str], None] = print,
                 on_step: Callable[[int, dict], None] | None = None,
                 on_pretrain_step: Callable[[int, int, dict], None] | None = None) -> dict:
    """Run every step in this process; returns the evaluation report (with the registry decision). ``on_step``,
    ``on_pretrain_step``: the training's progress (:func:`~ghnerf.student.run.run_training`)."""
    from ghnerf.app.distill import DistillConfig, distill
    from ghnerf.eval.evaluate import evaluate_spec
    from ghnerf.eval.spec import EvaluateSpec
    from ghnerf.student.run import run_training
    from teachers.consistency import shard_consistency

    log(f"1/4 synthetic {cfg.layout} data -> {generate(cfg)}")
    p = cfg.distill_params()
    report = distill(p["dataset"], p["out"], DistillConfig(teacher=p["teacher"], frames_per_shard=p["frames_per_shard"]),
                     consistency_fn=shard_consistency)
    log(f"2/4 {cfg.teacher} shards -> {cfg.targets}: {report.counts()}")
    run_training(cfg.train_spec(), on_step=on_step, log=log, on_pretrain_step=on_pretrain_step)
    log(f"3/4 trained {cfg.config} for {cfg.steps} steps -> {cfg.run}")
    result = evaluate_spec(EvaluateSpec(**cfg.evaluate_params()), warn=lambda line: log(f"warning: {line}"))
    decision = promote_if_better(cfg, result)
    log(f"4/4 evaluated: {result['metrics_path']}; registry: {decision.action} ({decision.reason})")
    return {**result, "decision": decision.model_dump(mode="json")}
