"""The model registry: which checkpoint is the current best, and every promote/keep decision with its evidence.

Layout under the registry folder::

    best.json                         the promoted checkpoint, its metrics and the evaluation they came from
    decisions/<UTC time>-<action>.json every decision: both metric sets, the rule, the reason

Both are written atomically, so a crash in the middle of a retrain leaves the old
best in force. The rule (:class:`PromotionRule`) promotes a candidate only when
every metric it compares is present and finite and the primary metric improves
while the guard metrics do not drop by more than their tolerance: a candidate
with missing or worse metrics is never promoted.
"""

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ghnerf.base.errors import ConfigError, DataReadError
from ghnerf.base.fileio import file_sha256, write_json


class EvalSpec(BaseModel):
    """What the metrics were measured on: two metric sets are comparable only under the same spec."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    split: str = "test"
    max_views: int | None = None


class ModelRecord(BaseModel):
    """One evaluated checkpoint."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str
    checkpoint_sha256: str
    config: str
    metrics: dict
    metrics_path: str | None = None
    eval_spec: EvalSpec
    shard_keys: list[str] = Field(default_factory=list, description="shards its targets came from")
    created_at: datetime = Field(description="when the checkpoint was written (UTC)")


class PromotionRule(BaseModel):
    """Promote when ``primary`` improves by more than ``min_improvement`` and no guard drops beyond its tolerance.

    Metric directions: higher is better unless listed in ``lower_is_better``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    primary: str = "pck"
    min_improvement: float = 0.0
    guards: dict[str, float] = Field(default_factory=lambda: {"psnr": 0.5},
                                     description="metric -> largest allowed drop")
    lower_is_better: tuple[str, ...] = ("heatmap_mse", "mpjpe_volumetric_m", "mpjpe_triangulated_m", "cse_mse",
                                        "lpips")

    def gain(self, metric: str, candidate: float, incumbent: float) -> float:
        """How much better ``candidate`` is than ``incumbent`` on ``metric`` (negative: worse)."""
        return (incumbent - candidate) if metric in self.lower_is_better else (candidate - incumbent)


class Decision(BaseModel):
    """A promote / keep decision with both metric sets."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["promote", "keep", "skip"]
    reason: str
    rule: PromotionRule
    candidate: ModelRecord | None = None
    incumbent: ModelRecord | None = None
    new_shards: list[str] = Field(default_factory=list)
    decided_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    run_id: str | None = Field(None, description="orchestrator run that made the decision (Prefect flow run id)")


def _finite(metrics: dict, key: str) -> float | None:
    value = metrics.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def decide(candidate: ModelRecord, incumbent: ModelRecord | None, rule: PromotionRule) -> tuple[str, str]:
    """Apply ``rule``: ("promote" | "keep", reason).

    A candidate missing any compared metric (absent, None or non-finite) is kept out;
    with no incumbent, a candidate with all metrics present is promoted.
    """
    keys = [rule.primary, *rule.guards]
    missing = [k for k in keys if _finite(candidate.metrics, k) is None]
    if missing:
        return "keep", f"candidate metrics missing or not finite: {', '.join(missing)}"
    if incumbent is None:
        return "promote", "no model promoted yet; candidate has every compared metric"
    if incumbent.eval_spec != candidate.eval_spec:
        return "keep", (f"metrics measured on different evaluations ({incumbent.eval_spec} vs {candidate.eval_spec});"
                        " re-evaluate the incumbent first")
    inc_missing = [k for k in keys if _finite(incumbent.metrics, k) is None]
    if inc_missing:
        return "promote", f"incumbent lacks {', '.join(inc_missing)}; candidate has every compared metric"
    gain = rule.gain(rule.primary, candidate.metrics[rule.primary], incumbent.metrics[rule.primary])
    if gain <= rule.min_improvement:
        return "keep", (f"{rule.primary} {candidate.metrics[rule.primary]:.4f} does not improve on "
                        f"{incumbent.metrics[rule.primary]:.4f} by more than {rule.min_improvement}")
    for key, tolerance in rule.guards.items():
        g = rule.gain(key, candidate.metrics[key], incumbent.metrics[key])
        if g < -tolerance:
            return "keep", (f"{rule.primary} improves by {gain:.4f} but {key} drops from "
                            f"{incumbent.metrics[key]:.4f} to {candidate.metrics[key]:.4f} (tolerance {tolerance})")
    return "promote", (f"{rule.primary} {incumbent.metrics[rule.primary]:.4f} -> {candidate.metrics[rule.primary]:.4f}"
                       + "".join(f"; {k} {incumbent.metrics[k]:.4f} -> {candidate.metrics[k]:.4f}"
                                 for k in rule.guards))


class ModelRegistry:
    """The registry folder (local path)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def best_path(self) -> Path:
        return self.root / "best.json"

    def best(self) -> ModelRecord | None:
        """The promoted model, or None; its checkpoint file must still match the recorded digest.

        Raises:
            DataReadError: best.json is unreadable, or its checkpoint is missing or changed.
        """
        if not self.best_path.is_file():
            return None
        try:
            record = ModelRecord.model_validate_json(self.best_path.read_text())
        except ValueError as exc:
            raise DataReadError(self.best_path, f"not a valid model record ({exc}); restore it from "
                                f"{self.root / 'decisions'} or delete it to start afresh") from exc
        ck = Path(record.checkpoint)
        if not ck.is_file():
            raise DataReadError(self.best_path, f"names {ck}, which is missing; restore the file or delete "
                                f"{self.best_path} to start afresh")
        if file_sha256(ck) != record.checkpoint_sha256:
            raise DataReadError(ck, f"changed since it was promoted (sha256 differs from {self.best_path}); "
                                "restore it or promote a new model")
        return record

    def record(self, decision: Decision) -> Path:
        """Write ``decision`` under decisions/ and, for "promote", make its candidate the best (atomically)."""
        if decision.action == "promote":
            if decision.candidate is None:
                raise ConfigError("a promote decision needs a candidate")
            write_json(self.best_path, json.loads(decision.candidate.model_dump_json()))
        stamp = decision.decided_at.strftime("%Y%m%dT%H%M%S%fZ")
        path = self.root / "decisions" / f"{stamp}-{decision.action}.json"
        write_json(path, json.loads(decision.model_dump_json()))
        return path

    def decisions(self) -> list[Decision]:
        """Every recorded decision, oldest first (not the dot-file temporaries a writer killed mid-write leaves)."""
        folder = self.root / "decisions"
        if not folder.is_dir():
            return []
        return [Decision.model_validate_json(p.read_text()) for p in sorted(folder.glob("[!.]*.json"))]


def model_record(checkpoint: str | Path, report: dict, eval_spec: EvalSpec) -> ModelRecord:
    """A :class:`ModelRecord` from a checkpoint and the ``evaluate_run`` report measured on it."""
    from ghnerf.student.train import load_checkpoint

    ck = load_checkpoint(checkpoint)
    path = Path(checkpoint).resolve()
    return ModelRecord(checkpoint=str(path), checkpoint_sha256=file_sha256(path), config=ck["student_config"].name,
                       metrics=report["metrics"], metrics_path=report.get("metrics_path"), eval_spec=eval_spec,
                       shard_keys=[s["shard_key"] for s in ck["meta"]["shards"]],
                       created_at=datetime.fromtimestamp(path.stat().st_mtime, timezone.utc))
