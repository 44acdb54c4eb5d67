"""Retraining: fine-tune the promoted model on shards newer than it, evaluate, promote only if better.

One plain function, :func:`retrain`, composes the steps; the training and
evaluation steps are parameters so the Prefect ``retrain`` flow passes its tasks
(each step visible in the UI) and ``ghnerf retrain`` passes the plain functions.
Every outcome -- promote, keep or skip -- is written to the registry with both
metric sets (:mod:`ghnerf.app.model_registry`).
"""

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ghnerf.app.model_registry import (
    Decision,
    EvalSpec,
    ModelRecord,
    ModelRegistry,
    PromotionRule,
    decide,
    model_record,
)
from ghnerf.base.spec_fields import OutputFolder, field_from
from ghnerf.student.train_spec import QUICK_CONFIG, TrainSpec


class RetrainSpec(BaseModel):
    """What to retrain and how to judge it: the options of ``ghnerf retrain`` and the ``retrain`` flow's parameters."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    registry: OutputFolder = Field(..., description="model registry folder (best.json, decisions/, runs/)")
    data: str = Field(..., description="dataset folder; its test split is the fixed evaluation split")
    targets: str | None = Field(None, description="storage root of the teacher's shards")
    teacher: str | None = Field(None, description="pose teacher whose new shards trigger retraining")
    config: str = field_from(TrainSpec, "config", default=QUICK_CONFIG,
                             description="student config when no model is promoted yet (default: the main job's, "
                                         "the best recipe without 2D pretraining)")
    steps: int = field_from(TrainSpec, "steps", default=500, description="fine-tuning steps")
    image_scale: float = field_from(TrainSpec, "image_scale")
    pretrained: str = field_from(TrainSpec, "pretrained", description="encoder weights for a first model (auto: the "
                                 "local ones when present, else a random init, said and recorded | imagenet | none "
                                 "| PATH)")
    perceptual_weight: float = Field(0.0, ge=0, description="LPIPS-VGG weight of the fine-tuning")
    eval_split: Literal["test", "train"] = Field("test", description="the fixed evaluation split")
    eval_max_views: int | None = Field(8, ge=1, description="views of the fixed evaluation split")
    primary_metric: str = field_from(PromotionRule, "primary")
    min_improvement: float = field_from(PromotionRule, "min_improvement")
    device: str = field_from(TrainSpec, "device")

    @property
    def rule(self) -> PromotionRule:
        """The promotion rule: ``primary_metric`` must improve by more than ``min_improvement``; guards as default."""
        return PromotionRule(primary=self.primary_metric, min_improvement=self.min_improvement)

    def eval_spec(self) -> EvalSpec:
        return EvalSpec(dataset=str(Path(self.data).resolve()), split=self.eval_split, max_views=self.eval_max_views)


def pending_shards(spec: RetrainSpec, best: ModelRecord | None) -> list[str]:
    """Keys of the teacher's current shards that the promoted model was not trained on and that are newer than it."""
    if not (spec.targets and spec.teacher):
        return []
    from storage.catalog import Catalog
    from storage.root import StorageRoot

    entries = Catalog(StorageRoot(spec.targets)).current(teacher=spec.teacher)
    if best is None:
        return sorted(e.shard_key for e in entries)
    used = set(best.shard_keys)
    return sorted(e.shard_key for e in entries if e.shard_key not in used and e.created_at > best.created_at)


def new_run_folder(parent: Path) -> Path:
    """A fresh ``<UTC time>`` folder under ``parent`` (never an existing one: a promoted checkpoint may live there)."""
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        run = parent / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        try:
            run.mkdir()
            return run
        except FileExistsError:
            continue


def retrain(spec: RetrainSpec, train_fn: Callable | None = None, evaluate_fn: Callable | None = None,
            run_id: str | None = None, log: Callable[[str], None] = print) -> Decision:
    """Check for new shards; if any (or no model yet), train, evaluate, and promote only if better.

    Args:
        spec: the retrain settings.
        train_fn: ``(TrainSpec) -> Any`` (default :func:`ghnerf.student.run.run_training`).
        evaluate_fn: ``(run, data, split, max_views, out, checkpoint) -> report`` (default
            :func:`ghnerf.eval.evaluate.evaluate_run`).
        run_id: recorded with the decision (the Prefect flow run id).
        log: progress lines.
    Returns:
        the recorded decision ("skip" when nothing is new, else "promote" or "keep").
    """
    from ghnerf.eval.evaluate import evaluate_run
    from ghnerf.student.run import run_training

    train_fn = train_fn or run_training
    evaluate_fn = evaluate_fn or evaluate_run
    registry = ModelRegistry(spec.registry)
    best = registry.best()
    new = pending_shards(spec, best)
    if best is not None and not new:
        decision = Decision(action="skip", reason=f"no {spec.teacher or 'teacher'} shards newer than "
                                                  f"{best.checkpoint} ({best.created_at:%Y-%m-%d %H:%M} UTC)",
                            rule=spec.rule, incumbent=best, run_id=run_id)
        log(decision.reason)
        registry.record(decision)
        return decision
    run = new_run_folder(Path(spec.registry) / "runs")
    log(f"{len(new)} new shard(s); training {'from ' + best.checkpoint if best else 'a first model'} into {run}")
    train_fn(TrainSpec(config=spec.config, data=spec.data, out=str(run), targets=spec.targets if spec.teacher else None,
                       teacher=spec.teacher, steps=spec.steps, init_from=best.checkpoint if best else None,
                       pretrained=spec.pretrained, image_scale=spec.image_scale,
                       perceptual_weight=spec.perceptual_weight, device=spec.device,
                       checkpoint_every=spec.steps))
    eval_spec = spec.eval_spec()
    checkpoint = run / "checkpoints" / "latest.pt"
    report = evaluate_fn(run, spec.data, spec.eval_split, spec.eval_max_views, run / f"eval_{spec.eval_split}",
                         checkpoint)
    candidate = model_record(checkpoint, report, eval_spec)
    incumbent = best
    if best is not None and best.eval_spec != eval_spec:  # measure the incumbent on the same fixed split
        folder = Path(spec.registry) / "evals" / best.checkpoint_sha256[:16]
        inc_report = evaluate_fn(Path(best.checkpoint).parent.parent, spec.data, spec.eval_split,
                                 spec.eval_max_views, folder, best.checkpoint)
        incumbent = model_record(best.checkpoint, inc_report, eval_spec)
    action, reason = decide(candidate, incumbent, spec.rule)
    decision = Decision(action=action, reason=reason, rule=spec.rule, candidate=candidate, incumbent=incumbent,
                        new_shards=new, run_id=run_id)
    path = registry.record(decision)
    log(f"{action}: {reason} (recorded in {path})")
    return decision
