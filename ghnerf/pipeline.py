"""The whole chain without a server: synthetic data -> teacher shards -> student -> evaluation -> registry.

:class:`PipelineConfig` is the one source of defaults for the main job: ``ghnerf
pipeline`` runs it in-process (for scripts and CI), and ``make demo`` runs the same
steps through the Prefect deployments (``flows/demo.py``), with the same
parameters (:meth:`PipelineConfig.distill_params` and friends).
"""

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ghnerf.app.model_registry import EvalSpec, ModelRegistry, PromotionRule, decide, model_record
from ghnerf.student.run import TrainSpec


class PipelineConfig(BaseModel):
    """The main job's settings (small enough for a 2-core CPU machine)."""

    model_config = ConfigDict(extra="forbid")

    out: str = Field("demo_out", description="everything goes under this folder")
    layout: str = Field("renderpeople", description="synthetic layout: renderpeople | zju")
    subjects: int = Field(3, ge=2, description="synthetic subjects (the last ones form the test split)")
    frames: int = Field(4, ge=1)
    cameras: int = Field(8, ge=8, description="cameras (the split needs 3 training views near each test view)")
    size: int = Field(128, ge=64)
    teacher: str = Field("mediapipe", description="pose teacher distilled into the student")
    config: str = Field("ghnerf-resnet18", description="student config")
    steps: int = Field(200, ge=1, description="training steps")
    image_scale: float = Field(1.0, gt=0, le=1)
    pretrained: str = Field("none", description="encoder weights (ImageNet weights are not cached offline)")
    eval_max_views: int = Field(6, ge=1)
    device: str = "auto"

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

    def synth_config(self):
        from ghnerf.synth.generate import SynthConfig

        return SynthConfig(layout=self.layout, subjects=self.subjects, frames=self.frames, cameras=self.cameras,
                           size=self.size)

    def distill_params(self) -> dict:
        """Parameters of the ``distill`` flow / deployment."""
        return {"dataset": self.dataset, "teacher": self.teacher, "out": self.targets, "frames_per_shard": self.frames}

    def train_spec(self) -> TrainSpec:
        return TrainSpec(config=self.config, data=self.dataset, out=self.run, targets=self.targets,
                         teacher=self.teacher, steps=self.steps, pretrained=self.pretrained,
                         image_scale=self.image_scale, perceptual_weight=0.0, device=self.device,
                         checkpoint_every=max(self.steps // 2, 1))

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
                 on_step: Callable[[int, dict], None] | None = None) -> dict:
    """Run every step in this process; returns the evaluation report (with the registry decision)."""
    from ghnerf.eval.evaluate import evaluate_run
    from ghnerf.student.run import run_training
    from teachers.consistency import shard_consistency
    from ghnerf.app.distill import DistillConfig, distill

    log(f"1/4 synthetic {cfg.layout} data -> {generate(cfg)}")
    p = cfg.distill_params()
    report = distill(p["dataset"], p["out"], DistillConfig(teacher=p["teacher"], frames_per_shard=p["frames_per_shard"]),
                     consistency_fn=shard_consistency)
    log(f"2/4 {cfg.teacher} shards -> {cfg.targets}: {report.counts()}")
    run_training(cfg.train_spec(), on_step=on_step, log=log)
    log(f"3/4 trained {cfg.config} for {cfg.steps} steps -> {cfg.run}")
    result = evaluate_run(cfg.run, cfg.dataset, "test", cfg.eval_max_views)
    decision = promote_if_better(cfg, result)
    log(f"4/4 evaluated: {result['metrics_path']}; registry: {decision.action} ({decision.reason})")
    return {**result, "decision": decision.model_dump(mode="json")}
