"""ghnerf.app.retrain on a real catalog and real (tiny) training: first model, skip, keep, promote."""

import json

from ghnerf.app.model_registry import ModelRegistry, PromotionRule
from ghnerf.app.retrain import RetrainSpec, pending_shards, retrain
from ghnerf.student.run import run_training
from ghnerf.student.train import load_checkpoint
from ghnerf.app.distill import DistillConfig, distill


class ScriptedEvaluation:
    """Stands in for evaluate_run: returns the next metric set and records what it was asked to evaluate."""

    def __init__(self, *metric_sets):
        self.queue, self.calls = list(metric_sets), []

    def __call__(self, run, data, split, max_views, out, checkpoint):
        self.calls.append({"run": str(run), "checkpoint": str(checkpoint), "split": split, "max_views": max_views})
        return {"metrics": self.queue.pop(0), "metrics_path": str(out / "metrics.json")}


def test_retrain_first_model_then_skip_keep_promote(student_root, tmp_path):
    store = tmp_path / "targets"
    distill(student_root, store, DistillConfig(teacher="gt-joints", frames_per_shard=1, max_frames=1))
    spec = RetrainSpec(registry=str(tmp_path / "reg"), data=str(student_root), targets=str(store),
                       teacher="gt-joints", config="enerf-heatmap", steps=1, eval_max_views=2,
                       rule=PromotionRule(primary="pck", guards={"psnr": 0.5}))
    reg = ModelRegistry(spec.registry)
    first_keys = pending_shards(spec, None)
    assert len(first_keys) == 2  # one frame of each of the two subjects

    # 1. no model yet: train from scratch and promote (all metrics present)
    ev = ScriptedEvaluation({"pck": 0.30, "psnr": 20.0})
    d1 = retrain(spec, train_fn=run_training, evaluate_fn=ev)
    assert d1.action == "promote" and d1.incumbent is None
    best = reg.best()
    assert best.checkpoint == d1.candidate.checkpoint and sorted(best.shard_keys) == sorted(first_keys)
    assert load_checkpoint(best.checkpoint)["meta"]["init_from"] is None

    # 2. nothing new: skip, without training or evaluating
    ev2 = ScriptedEvaluation()
    d2 = retrain(spec, train_fn=run_training, evaluate_fn=ev2)
    assert d2.action == "skip" and ev2.calls == [] and reg.best().checkpoint == best.checkpoint

    # 3. new frames distilled -> fine-tune from the best; a worse candidate is kept out
    distill(student_root, store, DistillConfig(teacher="gt-joints", frames_per_shard=1))
    new_keys = pending_shards(spec, best)
    assert len(new_keys) == 2 and not set(new_keys) & set(first_keys)
    ev3 = ScriptedEvaluation({"pck": 0.25, "psnr": 21.0})
    d3 = retrain(spec, train_fn=run_training, evaluate_fn=ev3)
    assert d3.action == "keep" and "does not improve" in d3.reason
    assert sorted(d3.new_shards) == sorted(new_keys)
    assert reg.best().checkpoint == best.checkpoint
    cand = load_checkpoint(d3.candidate.checkpoint)
    assert cand["meta"]["init_from"] == best.checkpoint  # fine-tuned from the promoted model
    assert len(cand["meta"]["shards"]) == 4  # trained on the old and the new shards
    assert ev3.calls[0]["checkpoint"] == d3.candidate.checkpoint and ev3.calls[0]["max_views"] == 2

    # 4. missing metric is never promoted, even with a better primary metric
    d4 = retrain(spec, train_fn=run_training, evaluate_fn=ScriptedEvaluation({"pck": 0.9, "psnr": None}))
    assert d4.action == "keep" and "psnr" in d4.reason and reg.best().checkpoint == best.checkpoint

    # 5. a better candidate is promoted; the registry keeps every decision with both metric sets
    d5 = retrain(spec, train_fn=run_training, evaluate_fn=ScriptedEvaluation({"pck": 0.45, "psnr": 19.8}))
    assert d5.action == "promote" and reg.best().checkpoint == d5.candidate.checkpoint
    assert [d.action for d in reg.decisions()] == ["promote", "skip", "keep", "keep", "promote"]
    last = json.loads(sorted((tmp_path / "reg" / "decisions").glob("*-promote.json"))[-1].read_text())
    assert last["incumbent"]["metrics"] == {"pck": 0.30, "psnr": 20.0}
    assert last["candidate"]["metrics"] == {"pck": 0.45, "psnr": 19.8}
