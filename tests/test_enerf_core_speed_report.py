"""benchmarks/enerf_core_speed_report.py: the tables read a run's JSON, --baseline-cases rows included (hand-made
results: minimums over rounds and calls, ratios to the original's minimum under the same load)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from enerf_core_speed_report import markdown_table  # noqa: E402


def _runs(*seconds):
    return [{"seconds": [s], "peak_rss_growth_mb": 1.0} for s in seconds]


def test_baseline_cases_get_a_row_each_with_the_ratio_to_the_original():
    results = {
        "loads": [0], "cases": {"ours-default": "ours, default"},
        "original_config": {"cas_config": {"render_if": [False, True]}}, "original_wait_policy": "unset",
        "baseline": {"checkout": "B", "commit": "86bee4f", "cases": {"ours-default": "ours, default"}},
        "render": {"0": {
            "ours-default/body box": _runs(2.2, 2.0, 2.6), "original/body box": _runs(2.5, 4.0),
            "baseline:ours-default/body box": _runs(3.0, 3.5),
        }},
    }
    lines = markdown_table(results).splitlines()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[2:] for line in lines[2:]}
    assert rows["ours, default"] == ["2.00", "0.80 |"]  # min 2.0 over min 2.5
    assert rows["before (--baseline at 86bee4f): ours, default"] == ["3.00", "1.20 |"]
    assert len(lines) == 2 + 3  # no full-frame rows: that frame was not run
