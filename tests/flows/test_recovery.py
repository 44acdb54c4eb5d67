"""Failures with real processes: a worker SIGKILLed mid-distill, a training process SIGKILLed, two runs at once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage.catalog import Catalog
from storage.root import StorageRoot
from storage.shards import read_shard
from storage.targets import TargetStore

pytestmark = pytest.mark.slow
FRAMES, CAMERAS = 12, 6


@pytest.fixture(scope="module")
def slow_dataset(tmp_path_factory) -> Path:
    """One subject, 12 frames: surface-cse at 192 px takes about a second per shard of one frame."""
    from ghnerf.synth.generate import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("recovery") / "data"
    generate_dataset(SynthConfig(layout="zju", subjects=1, frames=FRAMES, cameras=CAMERAS, size=192, seed=4,
                                 distortion=False, zju_naming="b"), root)
    return root


def _wait_for(predicate, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _consistent(store: Path, expected_shards: int) -> None:
    """One current entry per shard, every shard verifies, no duplicate target rows."""
    root = StorageRoot(store)
    current = Catalog(root).current()
    assert len(current) == expected_shards
    for e in current:
        read_shard(root, e.shard_path, e.shard_sha256)
    assert sum(e.rows for e in current) == expected_shards * CAMERAS
    assert len(TargetStore(store, "surface-cse").keys("cse")) == expected_shards * CAMERAS


def test_killed_worker_run_is_marked_crashed_and_the_rerun_completes_only_missing_shards(
        prefect_stack, slow_dataset, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from flows.runs import run_and_wait
    from flows.stack import ensure_crash_detection, start_worker, stop_process, wait_for_workers

    ensure_crash_detection(prefect_stack, within_s=60)
    # a dedicated pool, so that only the worker we kill can pick the run up
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="kill-test", type="process",
                                               base_job_template=ProcessWorker.get_default_base_job_template()),
                                overwrite=True)
        dep = client.read_deployment_by_name("distill/zju")
    env = {**os.environ, "PREFECT_API_URL": prefect_stack}
    prefect = str(Path(sys.executable).with_name("prefect"))
    subprocess.run([prefect, "--no-prompt", "deploy", "flows/distill.py:distill_flow", "-n", "kill-test", "-p",
                    "kill-test"], cwd=Path(__file__).resolve().parents[2], env={**env, "GHNERF_HOME": str(
                        Path(__file__).resolve().parents[2])}, check=True, capture_output=True, timeout=300)
    # the flow-run process (it inherits the worker's environment) computes exactly two shards, then every thread
    # that would start another waits on this file (ghnerf/base/hold.py)
    hold = tmp_path / "held"
    monkeypatch.setenv("GHNERF_HOLD", f"shard:2:{hold}")
    worker = start_worker(prefect_stack, "kill-test", tmp_path / "worker.log")
    store = tmp_path / "targets"
    params = {"dataset": str(slow_dataset), "teacher": "surface-cse", "out": str(store), "frames_per_shard": 1}
    try:
        wait_for_workers(prefect_stack, ["kill-test"])
        run = run_deployment("distill/kill-test", parameters=params, timeout=0)
        root = StorageRoot(store)
        _wait_for(lambda: hold.exists() and len(root.list("catalog", ".parquet")) == 2, 300,
                  "two shards and the hold", 0.05)
        # the whole machine dies: SIGKILL the worker and every process it started (the flow-run process runs in
        # its own session), so that nothing can report the end of the run
        import psutil

        tree = psutil.Process(worker.pid)
        victims = [tree, *tree.children(recursive=True)]
        assert len(victims) >= 2, "the flow-run process should be running"
        for p in victims:
            p.kill()
        psutil.wait_procs(victims, timeout=30)
    finally:
        stop_process(worker)
    done_before = {e.shard_key for e in Catalog(StorageRoot(store)).current()}
    assert len(done_before) == 2

    def crashed():
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run.id).state
        return state if state.type.value == "CRASHED" else None

    state = _wait_for(crashed, 180, "the killed run to be marked Crashed", 2.0)
    assert "heartbeat" in state.message
    # the rerun (on the regular pool) computes only what is missing
    rerun = run_and_wait("distill/zju", params, timeout_s=300)
    assert rerun.state.is_completed(), rerun.state.message
    assert dep.work_pool_name == "cpu"
    entries = Catalog(StorageRoot(store)).current()
    assert {e.shard_key for e in entries if e.flow_run_id == str(run.id)} == done_before
    assert len([e for e in entries if e.flow_run_id == str(rerun.id)]) == FRAMES - len(done_before)
    _consistent(store, FRAMES)


def test_two_distill_runs_at_once_do_not_corrupt_shards_or_catalog(slow_dataset, tmp_path):
    store = tmp_path / "targets"
    cmd = [sys.executable, "-m", "ghnerf.app.cli", "distill", "--dataset", str(slow_dataset), "--teacher",
           "surface-cse", "--out", str(store), "--frames-per-shard", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-2000:]
    _consistent(store, FRAMES)
    assert not [p for p in (store / "shards").rglob("*") if p.is_file() and ".tmp" in p.name]


def test_killed_training_resumes_from_its_last_checkpoint_and_matches_an_uninterrupted_run(student_root, tmp_path):
    import torch

    from ghnerf.student.train import load_checkpoint

    def cmd(out, *extra):
        return [sys.executable, "-m", "ghnerf.app.cli", "train", "--config", "enerf-heatmap", "--data", str(student_root),
                "--out", str(out), "--steps", "8", "--checkpoint-every", "2", "--perceptual-weight", "0",
                "--pretrained", "none", *extra]

    killed, hold = tmp_path / "killed", tmp_path / "held"
    # the run passes its step-2 checkpoint and waits on ``hold`` just after writing the step-4 one (ghnerf/base/hold.py)
    proc = subprocess.Popen(cmd(killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "GHNERF_HOLD": f"checkpoint:1:{hold}"})
    try:
        _wait_for(lambda: hold.exists() or proc.poll() is not None, 300, "the hold after the step-4 checkpoint", 0.05)
        assert proc.poll() is None, f"training ended before the hold: {proc.stderr.read().decode()[-2000:]}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    last = load_checkpoint(killed / "checkpoints" / "latest.pt")["step"]
    assert last == 4 and not (killed / "checkpoints" / "step_0000006.pt").exists()
    res = subprocess.run(cmd(killed, "--resume"), capture_output=True, text=True, timeout=600,
                         env={**os.environ, "COLUMNS": "1000"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"resumed from {killed / 'checkpoints' / 'latest.pt'} at step {last}" in res.stderr.replace("\n", " ")
    whole = tmp_path / "whole"
    subprocess.run(cmd(whole), check=True, capture_output=True, timeout=600)
    a = load_checkpoint(killed / "checkpoints" / "latest.pt")
    b = load_checkpoint(whole / "checkpoints" / "latest.pt")
    assert a["step"] == b["step"] == 8
    for k in b["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6, msg=k)
