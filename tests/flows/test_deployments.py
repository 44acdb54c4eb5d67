"""prefect.yaml deployed to a real server with process workers: names, pools, schedule, runs, retrain decision."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storage.catalog import Catalog
from storage.root import StorageRoot

pytestmark = pytest.mark.slow
EXPECTED = {"distill/renderpeople": "cpu", "distill/zju": "cpu", "train/default": "gpu",
            "evaluate/default": "gpu", "render/orbit": "gpu", "retrain/nightly": "gpu"}


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def test_prefect_yaml_defines_every_deployment_pool_and_the_nightly_schedule(prefect_stack):
    from flows.stack import gpu_count

    with _client() as client:
        flows = {f.id: f.name for f in client.read_flows()}
        deployments = {f"{flows[d.flow_id]}/{d.name}": d for d in client.read_deployments()}
        pools = {p.name: p for p in client.read_work_pools()}
    assert set(EXPECTED) <= set(deployments)
    for name, pool in EXPECTED.items():
        d = deployments[name]
        assert d.work_pool_name == pool, name
        # each parameter is documented: in the description's words, or each in the run form (the spec's field
        # descriptions, written by flows.params.parameters_of)
        described = all(p.get("description") for p in d.parameter_openapi_schema["properties"].values())
        assert "Parameters" in d.description or described, f"{name}: parameters are documented"
        assert d.pull_steps[0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(
            Path(__file__).resolve().parents[2])
    nightly = deployments["retrain/nightly"]
    assert [s.schedule.cron for s in nightly.schedules] == ["0 2 * * *"] and nightly.schedules[0].active
    assert all(not deployments[n].schedules for n in EXPECTED if n != "retrain/nightly")
    assert pools["cpu"].type == pools["gpu"].type == "process"
    assert pools["gpu"].concurrency_limit == max(gpu_count(), 1)
    assert pools["cpu"].concurrency_limit is None


def test_distill_deployment_by_prefect_cli_and_by_short_name(prefect_stack, rp_root, tmp_path):
    from flows.cli import app

    store = tmp_path / "targets"
    env = {**os.environ, "PREFECT_API_URL": prefect_stack}
    prefect = str(Path(sys.executable).with_name("prefect"))
    res = subprocess.run([prefect, "deployment", "run", "distill/renderpeople", "--param", f"dataset={rp_root}",
                          "--param", f"out={store}", "--param", "teacher=gt-joints", "--watch"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    entries = Catalog(StorageRoot(store)).current()
    assert len(entries) == 2 and {e.teacher for e in entries} == {"gt-joints"}
    (run_id,) = {e.flow_run_id for e in entries}
    with _client() as client:
        run = client.read_flow_run(run_id)
        assert run.state.is_completed()
        dep = client.read_deployment(run.deployment_id)
    assert dep.name == "renderpeople"
    # the short form: same deployment, nothing left to compute
    result = CliRunner().invoke(app, ["run", "distill-renderpeople", "--param", f"dataset={rp_root}", "--param",
                                      f"out={store}", "--param", "teacher=gt-joints", "--api-url", prefect_stack])
    assert result.exit_code == 0, result.output
    assert "distill/renderpeople: Completed" in result.output
    assert len(Catalog(StorageRoot(store)).entries()) == 2  # rerun skipped every shard: no new catalog rows
    bad = CliRunner().invoke(app, ["run", "distill-nowhere", "--api-url", prefect_stack])
    assert bad.exit_code == 1 and "distill/renderpeople" in bad.output  # lists what exists


def test_nightly_retrain_deployment_records_its_decision(prefect_stack, student_root, tmp_path):
    from flows.runs import artifacts_of, run_and_wait
    from ghnerf.app.distill import DistillConfig, distill
    from ghnerf.app.model_registry import ModelRegistry
    from ghnerf.app.retrain import RetrainSpec, retrain

    store, reg_dir = tmp_path / "targets", tmp_path / "registry"
    distill(student_root, store, DistillConfig(teacher="gt-joints", frames_per_shard=1, max_frames=1))
    first = retrain(RetrainSpec(registry=str(reg_dir), data=str(student_root), targets=str(store),
                                teacher="gt-joints", config="enerf-heatmap", steps=2, eval_max_views=2))
    assert first.action == "promote"
    best = ModelRegistry(reg_dir).best()
    distill(student_root, store, DistillConfig(teacher="gt-joints", frames_per_shard=1))  # new frames arrive

    params = {"registry": str(reg_dir), "data": str(student_root), "targets": str(store), "teacher": "gt-joints",
              "steps": 2, "eval_max_views": 2, "min_improvement": 10.0}  # an impossible gain: must keep
    run = run_and_wait("retrain/nightly", params, timeout_s=600)
    assert run.state.is_completed(), run.state.message
    decisions = ModelRegistry(reg_dir).decisions()
    assert [d.action for d in decisions] == ["promote", "keep"]
    keep = decisions[-1]
    assert keep.run_id == str(run.id) and len(keep.new_shards) == 2
    assert keep.incumbent.checkpoint == best.checkpoint and keep.candidate.checkpoint != best.checkpoint
    assert ModelRegistry(reg_dir).best().checkpoint == best.checkpoint  # not promoted
    # the recorded metrics are the evaluations' own: each metrics.json, whose per-view counts give the PCK
    for rec, run_dir in ((keep.candidate, Path(keep.candidate.checkpoint).parents[1]), (keep.incumbent, None)):
        report = json.loads(Path(rec.metrics_path).read_text())
        assert rec.metrics == report["metrics"] and report["checkpoint_sha256"] == rec.checkpoint_sha256
        pv = report["per_view"]
        assert rec.metrics["pck"] == sum(r["pck_correct"] for r in pv) / sum(r["pck_evaluated"] for r in pv)
        assert run_dir is None or Path(rec.metrics_path) == run_dir / "eval_test" / "metrics.json"
    # the recorded decision is the rule, written out by hand, on those metrics: keep unless pck gains more than 10
    c, i = keep.candidate.metrics, keep.incumbent.metrics
    assert keep.rule.primary == "pck" and keep.rule.min_improvement == 10.0 and not c["pck"] - i["pck"] > 10.0
    assert keep.reason == f"pck {c['pck']:.4f} does not improve on {i['pck']:.4f} by more than 10.0"
    keys = {a.key for a in artifacts_of(run.id)}
    assert {"retrain-decision", "evaluation-enerf-heatmap"} <= keys


def test_doctor_sees_the_server_its_database_pools_and_workers(prefect_stack, tmp_path):
    from ghnerf.app.cli import app

    result = CliRunner().invoke(app, ["doctor", "--json", "--api-url", prefect_stack, "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["Prefect server"]["status"] == "ok" and "3.8.8" in checks["Prefect server"]["detail"]
    assert checks["Prefect database"]["status"] == "ok"
    for pool in ("cpu", "gpu"):
        assert checks[f"work pool {pool}"]["status"] == "ok", checks[f"work pool {pool}"]
        assert "type process" in checks[f"work pool {pool}"]["detail"]
        assert "online worker" in checks[f"work pool {pool}"]["detail"]
    assert "concurrency limit 1" in checks["work pool gpu"]["detail"]
