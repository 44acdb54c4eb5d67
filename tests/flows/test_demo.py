"""The main job end to end through the deployments (tiny budget), and stopping only what it started."""

import json
import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_the_chain_through_deployments_and_stops_only_its_processes(prefect_api, tmp_path):
    from flows.demo import run_demo
    from flows.runs import artifacts_of
    from flows.stack import server_ok
    from ghnerf.app.pipeline import PipelineConfig

    cfg = PipelineConfig(out=str(tmp_path / "demo"), subjects=2, frames=1, cameras=8, size=64, steps=4,
                         eval_max_views=2)
    result = run_demo(cfg, prefect_api)
    assert [r["deployment"] for r in result["runs"]] == ["distill/renderpeople", "train/default",
                                                         "evaluate/default"]
    m = result["metrics"]
    assert 0 <= m["pck"] <= 1 and m["psnr"] > 0 and m["fps"] > 0
    saved = json.loads((tmp_path / "demo" / "demo_result.json").read_text())
    assert saved["metrics"] == m and saved["ui"] == prefect_api.removesuffix("/api")
    # the server was already running: the demo used it, started only workers, and stopped them
    assert server_ok(prefect_api)
    assert not (tmp_path / "demo" / "stack.json").exists()
    # what a user sees in the UI: progress of training, the evaluation report, pictures, a link to the file
    train_arts = artifacts_of(result["runs"][1]["flow_run_id"])
    progress = [a for a in train_arts if a.type == "progress"]
    assert progress and float(progress[0].data) == pytest.approx(100.0)
    assert {f"train-{cfg.config}-loss", f"train-{cfg.config}-validation"} <= {a.key for a in train_arts}
    eval_list = artifacts_of(result["runs"][2]["flow_run_id"])
    eval_arts = {a.key: a for a in eval_list if a.key}
    (eval_progress,) = [a for a in eval_list if a.type == "progress"]  # the held-out views as they were evaluated
    assert float(eval_progress.data) == pytest.approx(100.0) and "2/2" in eval_progress.description
    report = eval_arts[f"evaluation-{cfg.config}"]
    assert "| PSNR | SSIM | LPIPS | MSE | PCK@0.2 |" in report.data and "data:image/png;base64," in report.data
    assert eval_arts[f"evaluation-{cfg.config}-report"].data.startswith("[report.md](file://")
    assert eval_arts[f"evaluation-{cfg.config}-metrics"].type == "table"
    # the registry promoted the first evaluated model
    best = json.loads((tmp_path / "demo" / "models" / "best.json").read_text())
    assert best["checkpoint"].endswith(f"runs/{cfg.config}/checkpoints/latest.pt")


def test_demo_stop_stops_recorded_processes_only(tmp_path):
    from flows.stack import StackState, StartedProcess, stop_stack

    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    try:
        state = StackState("http://127.0.0.1:1/api", [
            StartedProcess(ours.pid, "worker-cpu", [sys.executable, "-c", "import time; time.sleep(300)"], "x.log"),
            StartedProcess(999_999, "server", ["prefect", "server", "start"], "y.log")])  # long gone
        state.save(tmp_path / "stack.json")
        lines = []
        assert stop_stack(tmp_path / "stack.json", log=lines.append) == 1
        assert ours.wait(timeout=30) == -signal.SIGTERM
        assert bystander.poll() is None  # untouched
        assert not (tmp_path / "stack.json").exists()
        assert any("server (pid 999999) was not running" in line for line in lines)
        assert stop_stack(tmp_path / "stack.json", log=lines.append) == 0
    finally:
        bystander.kill()
        ours.kill()
