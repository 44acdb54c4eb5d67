"""The promotion rule, the registry files, and retrain's promote / keep / skip decisions (no Prefect)."""

import json
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ghnerf.base.errors import DataReadError
from ghnerf.base.fileio import file_sha256
from ghnerf.app.model_registry import Decision, EvalSpec, ModelRecord, ModelRegistry, PromotionRule, decide

SPEC = EvalSpec(dataset="/data/x", split="test", max_views=4)


def record(tmp_path: Path, name: str, **metrics) -> ModelRecord:
    ck = tmp_path / f"{name}.pt"
    ck.write_bytes(name.encode() * 10)
    return ModelRecord(checkpoint=str(ck), checkpoint_sha256=file_sha256(ck), config="ghnerf-resnet18",
                       metrics=metrics, eval_spec=SPEC, created_at=datetime.now(timezone.utc))


@pytest.mark.parametrize("cand, inc, action, fragment", [
    ({"pck": 0.5, "psnr": 22.0}, None, "promote", "no model promoted yet"),
    ({"pck": 0.5}, None, "keep", "missing or not finite: psnr"),
    ({"pck": float("nan"), "psnr": 22.0}, {"pck": 0.1, "psnr": 22.0}, "keep", "missing or not finite: pck"),
    ({"pck": None, "psnr": 22.0}, {"pck": 0.1, "psnr": 22.0}, "keep", "pck"),
    ({"pck": 0.40, "psnr": 22.0}, {"pck": 0.40, "psnr": 21.0}, "keep", "does not improve"),
    ({"pck": 0.39, "psnr": 25.0}, {"pck": 0.40, "psnr": 21.0}, "keep", "does not improve"),
    ({"pck": 0.50, "psnr": 21.4}, {"pck": 0.40, "psnr": 22.0}, "keep", "psnr drops"),
    ({"pck": 0.50, "psnr": 21.6}, {"pck": 0.40, "psnr": 22.0}, "promote", "0.4000 -> 0.5000"),
    ({"pck": 0.50, "psnr": 22.0}, {"pck": None, "psnr": 22.0}, "promote", "incumbent lacks pck"),
])
def test_decide_follows_the_rule(tmp_path, cand, inc, action, fragment):
    got, reason = decide(record(tmp_path, "c", **cand), record(tmp_path, "i", **inc) if inc else None,
                         PromotionRule())
    assert got == action and fragment in reason


def test_lower_is_better_metrics_and_min_improvement(tmp_path):
    rule = PromotionRule(primary="mpjpe_volumetric_m", min_improvement=0.01, guards={})
    inc = record(tmp_path, "i", mpjpe_volumetric_m=0.30)
    assert decide(record(tmp_path, "a", mpjpe_volumetric_m=0.25), inc, rule)[0] == "promote"
    assert decide(record(tmp_path, "b", mpjpe_volumetric_m=0.295), inc, rule)[0] == "keep"  # gain 0.005 < 0.01
    assert decide(record(tmp_path, "c", mpjpe_volumetric_m=0.35), inc, rule)[0] == "keep"


def test_metrics_from_another_evaluation_are_not_compared(tmp_path):
    inc = record(tmp_path, "i", pck=0.1, psnr=20.0).model_copy(update={"eval_spec": EvalSpec(dataset="/other")})
    action, reason = decide(record(tmp_path, "c", pck=0.9, psnr=30.0), inc, PromotionRule())
    assert action == "keep" and "different evaluations" in reason


def test_registry_promotes_atomically_and_keeps_history(tmp_path):
    reg = ModelRegistry(tmp_path / "reg")
    assert reg.best() is None and reg.decisions() == []
    first = record(tmp_path, "first", pck=0.2, psnr=20.0)
    reg.record(Decision(action="promote", reason="r", rule=PromotionRule(), candidate=first))
    assert reg.best().checkpoint == first.checkpoint
    second = record(tmp_path, "second", pck=0.1, psnr=20.0)
    reg.record(Decision(action="keep", reason="worse", rule=PromotionRule(), candidate=second, incumbent=first))
    assert reg.best().checkpoint == first.checkpoint  # keep never touches best.json
    kinds = [d.action for d in reg.decisions()]
    assert kinds == ["promote", "keep"]
    saved = json.loads(sorted((tmp_path / "reg" / "decisions").glob("*keep.json"))[0].read_text())
    assert saved["candidate"]["metrics"]["pck"] == 0.1 and saved["incumbent"]["metrics"]["pck"] == 0.2
    assert not list((tmp_path / "reg").rglob(".*"))  # no temporary file left (atomic_path's are dot-files)


# A writer process SIGKILLed while it writes one of the registry's files: half the new bytes are in the temporary
# file, the rename never happens (os.replace is where it dies).
KILLED_WRITER = """
import os, signal, sys
from pathlib import Path

def dying_replace(src, dst, real=os.replace):
    if sys.argv[2] in (Path(dst).name, Path(dst).parent.name):
        data = Path(src).read_bytes()
        Path(src).write_bytes(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)

os.replace = dying_replace
from ghnerf.app.model_registry import Decision, ModelRecord, ModelRegistry, PromotionRule

candidate = ModelRecord.model_validate_json(sys.argv[3])
ModelRegistry(sys.argv[1]).record(Decision(action="promote", reason="r", rule=PromotionRule(), candidate=candidate))
"""


@pytest.mark.parametrize("dies_writing", ["best.json", "decisions"])
def test_a_writer_killed_mid_write_leaves_the_previous_records_intact(tmp_path, dies_writing):
    reg = ModelRegistry(tmp_path / "reg")
    first, second = record(tmp_path, "first", pck=0.2, psnr=20.0), record(tmp_path, "second", pck=0.3, psnr=20.0)
    reg.record(Decision(action="promote", reason="r", rule=PromotionRule(), candidate=first))
    before = reg.best_path.read_bytes()
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(reg.root), dies_writing,
                           second.model_dump_json()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert [p for p in reg.root.rglob(".*") if p.is_file()]  # the half-written temporary file it left
    if dies_writing == "best.json":
        assert reg.best_path.read_bytes() == before and reg.best().checkpoint == first.checkpoint
    else:  # best.json was renamed into place before the decision file was written
        assert reg.best().checkpoint == second.checkpoint
    assert [d.candidate.checkpoint for d in reg.decisions()] == [first.checkpoint]  # the half-written one is not


def test_registry_detects_changed_missing_or_corrupt_records(tmp_path):
    reg = ModelRegistry(tmp_path / "reg")
    rec = record(tmp_path, "m", pck=0.2, psnr=20.0)
    reg.record(Decision(action="promote", reason="r", rule=PromotionRule(), candidate=rec))
    Path(rec.checkpoint).write_bytes(b"tampered")
    with pytest.raises(DataReadError, match="changed since it was promoted"):
        reg.best()
    Path(rec.checkpoint).unlink()
    with pytest.raises(DataReadError, match="missing"):
        reg.best()
    reg.best_path.write_text("{not json")
    with pytest.raises(DataReadError, match="best.json: not a valid model record"):
        reg.best()


def test_retrain_run_folders_are_never_reused(tmp_path):
    from ghnerf.app.retrain import new_run_folder

    folders = {new_run_folder(tmp_path) for _ in range(50)}  # many within the same second
    assert len(folders) == 50 and all(f.is_dir() and not any(f.iterdir()) for f in folders)
