"""A distill process killed with SIGKILL mid-run (held after 3 shards): the rerun writes exactly the missing ones."""

import os
import signal
import subprocess
import sys
import time

import pytest

from storage.catalog import Catalog
from storage.root import StorageRoot
from storage.shards import read_shard
from storage.targets import TargetStore
from ghnerf.app.distill import DistillConfig, distill, plan_shards

FRAMES, CAMERAS = 16, 6


@pytest.mark.slow
def test_sigkill_midway_then_rerun(tmp_path):
    from ghnerf.synth.generate import SynthConfig, generate_dataset

    data, store = tmp_path / "data", tmp_path / "store"
    generate_dataset(SynthConfig(layout="zju", subjects=1, frames=FRAMES, cameras=CAMERAS, size=192, seed=4,
                                 distortion=False, zju_naming="b"), data)
    cfg = DistillConfig(teacher="surface-cse", frames_per_shard=1)
    cmd = [sys.executable, "-m", "ghnerf.app.cli", "distill", "--dataset", str(data), "--teacher", "surface-cse",
           "--out", str(store), "--frames-per-shard", "1"]
    hold = tmp_path / "held"  # distill writes exactly 3 shards, then waits on this file (ghnerf/base/hold.py)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "GHNERF_HOLD": f"shard:3:{hold}"})
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not hold.exists():
            time.sleep(0.05)
        assert proc.poll() is None and hold.exists(), f"distill never reached the hold: {proc.stderr.read()[-2000:]}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    root = StorageRoot(store)
    assert proc.returncode == -signal.SIGKILL
    plans = plan_shards(data, cfg, cfg.build())
    done_before = {e.shard_key for e in Catalog(root).current()}
    assert done_before == {p.key for p in plans[:3]}  # the first three shards, and nothing of the fourth
    assert len([f for f in (store / "shards").rglob("*") if f.is_file()]) == 3  # no file of the fourth
    report = distill(data, store, cfg)
    assert report.counts() == {"skipped": 3, "written": FRAMES - 3}
    assert {r.key for r in report.results if r.status == "skipped"} == done_before
    # catalog consistent: one current entry per frame, every one verifies, no duplicate rows
    current = Catalog(root).current()
    assert len(current) == FRAMES and len(Catalog(root).entries()) == FRAMES
    for e in current:
        read_shard(root, e.shard_path, e.shard_sha256)
    assert sum(e.rows for e in current) == FRAMES * CAMERAS
    assert len(TargetStore(store, "surface-cse").keys("cse")) == FRAMES * CAMERAS
