"""A distill process killed with SIGKILL mid-run: the rerun writes exactly the missing shards."""

import signal
import subprocess
import sys
import time

import pytest

from storage.catalog import Catalog
from storage.root import StorageRoot
from storage.shards import read_shard
from storage.targets import TargetStore
from teachers.distill import DistillConfig, distill

FRAMES, CAMERAS = 16, 6


@pytest.mark.slow
def test_sigkill_midway_then_rerun(tmp_path):
    from ghnerf.synth.generate import SynthConfig, generate_dataset

    data, store = tmp_path / "data", tmp_path / "store"
    generate_dataset(SynthConfig(layout="zju", subjects=1, frames=FRAMES, cameras=CAMERAS, size=192, seed=4,
                                 distortion=False, zju_naming="b"), data)
    cmd = [sys.executable, "-m", "ghnerf.cli", "distill", "--dataset", str(data), "--teacher", "surface-cse",
           "--out", str(store), "--frames-per-shard", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = StorageRoot(store)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(root.list("catalog", ".parquet")) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"distill ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_before = {e.shard_key for e in Catalog(root).current()}
    assert 3 <= len(done_before) < FRAMES
    report = distill(data, store, DistillConfig(teacher="surface-cse", frames_per_shard=1))
    counts = report.counts()
    assert counts == {"skipped": len(done_before), "written": FRAMES - len(done_before)}
    assert {r.key for r in report.results if r.status == "skipped"} == done_before
    # catalog consistent: one current entry per frame, every one verifies, no duplicate rows
    current = Catalog(root).current()
    assert len(current) == FRAMES and len(Catalog(root).entries()) == FRAMES
    for e in current:
        read_shard(root, e.shard_path, e.shard_sha256)
    assert sum(e.rows for e in current) == FRAMES * CAMERAS
    assert len(TargetStore(store, "surface-cse").keys("cse")) == FRAMES * CAMERAS
