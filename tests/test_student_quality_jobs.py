"""benchmarks/student_quality.py --jobs: rows trained and evaluated in child processes, then read back into one
table by the parent (tiny sizes: 2 training steps, 2 held-out views)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_rows_run_in_child_processes_and_land_in_one_table(tmp_path):
    work, out = tmp_path / "work", tmp_path / "table.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "student_quality.py"), "--subjects", "3",
                           "--frames", "1", "--size", "64", "--steps", "2", "--only", "0", "10", "--jobs", "2",
                           "--eval-source-views", "2", "--max-views", "2", "--workdir", str(work), "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for row in (0, 10):  # each row in its own process, with its own log and table
        assert f"row {row}: started" in proc.stdout and f"row {row}: done" in proc.stdout
        log = (work / "logs" / f"row{row}-seed0.log").read_text()
        assert "2 source views: PCK" in log
        child = json.loads((work / "logs" / f"row{row}-seed0.json").read_text())
        assert {r.get("row") for r in child["rows"]} - {None} == {row}
    table = json.loads(out.read_text())
    students = [r for r in table["rows"] if r.get("row") is not None]
    assert sorted(r["row"] for r in students) == [0, 10]
    for r in students:  # read back from the children's runs: the training time is the one their history recorded
        history = json.loads(next(work.glob(f"*-{r['row']}-*/history.json")).read_text())
        assert r["train_seconds"] == pytest.approx(history[-1]["step"] / history[-1]["it_s"])
        assert r["psnr"] > 5


def test_jobs_below_one_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "student_quality.py"), "--jobs", "0"],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert proc.returncode == 2 and "--jobs must be at least 1, not 0" in proc.stderr


def test_rows_that_share_a_pose_network_do_not_pretrain_it_twice():
    """--jobs: the second row of a 2D pretraining group costs its NeRF steps only and waits while the first runs,
    until a pose network lands in the cache after the first started; rows of other groups go ahead."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from student_quality import _next_row, _pretraining_group, _row_costs

    from ghnerf.student.train_config import TrainConfig

    long_2d = TrainConfig(steps=2000, pretrain_2d_steps=24000, lr=5e-4)
    tcfgs = {36: long_2d, 37: long_2d, 35: TrainConfig(steps=500, pretrain_2d_steps=24000, lr=1e-3),
             0: TrainConfig(steps=500)}
    groups = {i: _pretraining_group(t) for i, t in tcfgs.items()}
    assert groups[36] == groups[37] != groups[35] and groups[0] is None
    assert _row_costs(tcfgs, groups) == {36: 14000, 37: 2000, 35: 12500, 0: 500}
    running = {36: 100.0}
    assert _next_row([37, 35, 0], running, groups, stored=[]) == 35
    assert _next_row([37, 0], running, groups, stored=[50.0]) == 0  # an older entry is another network's
    assert _next_row([37, 0], running, groups, stored=[50.0, 150.0]) == 37
    assert _next_row([37], running, groups, stored=[]) is None
    assert _next_row([37], {}, groups, stored=[]) == 37
