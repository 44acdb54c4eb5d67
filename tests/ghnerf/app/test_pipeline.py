"""`ghnerf pipeline`: the whole chain in one process, no Prefect server."""

import json

from typer.testing import CliRunner

from ghnerf.app.cli import app
from ghnerf.app.model_registry import ModelRegistry


def test_pipeline_without_server_runs_every_step_and_promotes(tmp_path):
    out = tmp_path / "p"
    result = CliRunner().invoke(app, ["pipeline", "--out", str(out), "--teacher", "gt-joints", "--steps", "2",
                                      "--subjects", "2", "--frames", "1", "--size", "64"])
    assert result.exit_code == 0, result.output
    for step in ("1/4", "2/4", "3/4", "4/4"):
        assert step in result.output
    from ghnerf.app.pipeline import PipelineConfig

    report = json.loads((out / "runs" / PipelineConfig().config / "eval_test" / "metrics.json").read_text())
    from ghnerf.student.data import ExampleSet

    test_views = len(ExampleSet(out / "data" / "renderpeople", "test", heatmaps="none"))
    assert report["views"] == min(test_views, 6) > 0 and 0 <= report["metrics"]["pck"] <= 1
    assert {s["teacher"] for s in report["shards"]} == {"gt-joints"}
    best = ModelRegistry(out / "models").best()
    assert best is not None and best.metrics["pck"] == report["metrics"]["pck"]
    assert [d.action for d in ModelRegistry(out / "models").decisions()] == ["promote"]


def test_pipeline_rejects_bad_settings(tmp_path):
    result = CliRunner().invoke(app, ["pipeline", "--out", str(tmp_path), "--subjects", "1"])
    assert result.exit_code != 0 and "subjects" in result.output
