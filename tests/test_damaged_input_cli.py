"""Damaged checkpoints, hostile checkpoints, out-of-range options and wrong output paths (docs/damaged-input.md, "Checkpoints, options and output paths").

Each case: exit code 2 (or 0 where the documented repair applies), one ``error:`` line that names the
file or option, no traceback, and nothing created or changed outside the run's own output.
"""

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import typer.main
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def snapshot(root: Path) -> dict:
    """Every file and folder under ``root`` with its size and modification time."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(root))] = (p.is_dir(), st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return out


def run_cli(args: list[str]):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error: ")]


def assert_refused(result, *names: str, lines: int = 1) -> None:
    """Exit 2, exactly ``lines`` error lines, every name in them, no traceback."""
    assert result.exit_code == 2, result.output
    errors = error_lines(result)
    assert len(errors) == lines, result.output
    for name in names:
        assert name in "\n".join(errors), (name, result.output)
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory, request) -> tuple[Path, Path]:
    """(dataset, run) of a 2-step enerf-heatmap run with checkpoints at steps 1 and 2."""
    data = request.getfixturevalue("student_root")
    run = tmp_path_factory.mktemp("trained") / "run"
    result = runner.invoke(app, ["train", "--config", "enerf-heatmap", "--data", str(data), "--out", str(run),
                                 "--steps", "2", "--checkpoint-every", "1", "--perceptual-weight", "0"])
    assert result.exit_code == 0, result.output
    return data, run


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained[1], run)
    return run


def _damage(path: Path, how: str) -> None:
    """``truncated`` to a third, ``empty`` (0 bytes) or ``missing``."""
    data = path.read_bytes()
    if how == "missing":
        path.unlink()
    else:
        path.write_bytes(b"" if how == "empty" else data[: len(data) // 3])


@pytest.mark.parametrize("how", ["truncated", "empty", "missing"])
def test_damaged_latest_named_by_evaluate_and_lineage(trained, run_copy, tmp_path, how):
    latest = run_copy / "checkpoints" / "latest.pt"
    _damage(latest, how)
    before = snapshot(tmp_path)
    for args in (["lineage", latest], ["evaluate", run_copy, "--data", trained[0], "--max-views", "1"]):
        result = run_cli(args)
        assert_refused(result, str(latest), str(run_copy / "checkpoints" / "step_0000002.pt"))
        assert "Aborted" not in result.output
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("how", ["truncated", "empty", "missing"])
def test_resume_falls_back_to_newest_intact_step(trained, run_copy, tmp_path, how):
    from ghnerf.student.checkpoints import load_checkpoint

    ckdir = run_copy / "checkpoints"
    _damage(ckdir / "latest.pt", how)
    _damage(ckdir / "step_0000002.pt", "truncated")  # the newest step file is damaged too: step 1 is the one
    outside = snapshot(trained[0])
    result = run_cli(["train", "--config", "enerf-heatmap", "--data", trained[0], "--out", run_copy, "--steps", "3",
                      "--checkpoint-every", "1", "--perceptual-weight", "0", "--resume"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # the console may wrap the line
    assert f"--resume: {ckdir / 'latest.pt'}" in said and f"resuming from {ckdir / 'step_0000001.pt'}" in said
    assert load_checkpoint(ckdir / "latest.pt")["step"] == 3
    assert sorted(p.name for p in ckdir.glob("step_*.pt")) == ["step_0000001.pt", "step_0000002.pt",
                                                               "step_0000003.pt"]
    assert snapshot(trained[0]) == outside


def test_resume_with_every_checkpoint_damaged_is_refused(trained, run_copy, tmp_path):
    ckdir = run_copy / "checkpoints"
    for p in ckdir.glob("*.pt"):
        _damage(p, "truncated")
    before = snapshot(tmp_path)
    result = run_cli(["train", "--config", "enerf-heatmap", "--data", trained[0], "--out", run_copy, "--steps", "3",
                      "--perceptual-weight", "0", "--resume"])
    assert_refused(result, str(ckdir / "latest.pt"), "no intact step_*.pt")
    assert snapshot(tmp_path) == before


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_checkpoint_is_not_loaded(trained, tmp_path):
    marker = tmp_path / "payload-ran"
    hostile = tmp_path / "evil.pt"
    hostile.write_bytes(pickle.dumps({"model": _Payload(marker)}, protocol=2))
    before = snapshot(tmp_path)
    for args in (["lineage", hostile], ["evaluate", tmp_path, "--data", trained[0], "--checkpoint", hostile],
                 ["train", "--config", "enerf-heatmap", "--data", trained[0], "--out", tmp_path / "run",
                  "--init-from", hostile]):
        result = run_cli(args)
        assert_refused(result, str(hostile), "not a checkpoint this project wrote", "not loaded",
                       f"refused: {os.system.__module__}.system")
    assert not marker.exists()
    assert snapshot(tmp_path) == before


def _numeric_options(types: tuple[str, ...] = ("int", "float")):
    """(command path, option) for every option of these types (default int / float) of every command."""
    stack = [((), typer.main.get_command(app))]
    while stack:
        path, cmd = stack.pop()
        for name, sub in getattr(cmd, "commands", {}).items():
            stack.append(((*path, name), sub))
        for p in cmd.params:
            ann = str(p.type_descriptor.annotation)
            if p.opts[0].startswith("--") and any(t in ann for t in types):
                yield path, p.opts[0]


def _base_args(path: tuple, tmp: Path, data: Path) -> list:
    return {("data", "synth"): [tmp / "out"],
            ("distill",): ["--dataset", data, "--teacher", "gt-joints", "--out", tmp / "out"],
            ("train",): ["--config", "enerf", "--data", data, "--out", tmp / "out"],
            ("evaluate",): [tmp / "out", "--data", data],
            ("retrain",): ["--registry", tmp / "out", "--data", data],
            ("pipeline",): ["--out", tmp / "out"],
            ("demo",): ["--out", tmp / "out", "--api-url", "http://127.0.0.1:9/api"],
            ("store", "gc"): [tmp / "out"],
            ("render",): [tmp / "run", "--data", data, "--subject", "CoreView_901", "--out", tmp / "out"],
            ("export",): [tmp / "run", "--data", data, "--subject", "CoreView_901", "--format", "openpose",
                          "--out", tmp / "out"]}[path]


NUMERIC = sorted(_numeric_options())


def test_numeric_options_are_all_found():
    """The systematic test below covers every command with numbers (a new command gets a row in _base_args)."""
    assert {p for p, _ in NUMERIC} == {("data", "synth"), ("distill",), ("train",), ("evaluate",), ("retrain",),
                                       ("pipeline",), ("demo",), ("store", "gc"), ("render",), ("export",)}
    assert (("train",), "--steps") in NUMERIC and (("distill",), "--stride") in NUMERIC


@pytest.mark.parametrize("path,option", NUMERIC, ids=[f"{' '.join(p)} {o}" for p, o in NUMERIC])
def test_every_numeric_option_out_of_range_is_one_line(path, option, tmp_path, zju_plain_root):
    before = snapshot(zju_plain_root)
    value = ["-1", "64"] if (path, option) == (("render",), "--size") else ["-1"]  # render --size takes H W
    result = run_cli([*path, *_base_args(path, tmp_path, zju_plain_root), option, *value])
    assert_refused(result, option, "-1")
    assert not (tmp_path / "out").exists()
    assert snapshot(zju_plain_root) == before


@pytest.mark.parametrize("args,bad", [
    (["train", "--config", "enerf", "--steps", "0", "--patch", "-2", "--image-scale", "3"],
     ["--steps", "--patch", "--image-scale"]),
    (["train", "--config", "enerf", "--perceptual-weight", "-1"], ["--perceptual-weight"]),
    (["train", "--config", "enerf", "--perceptual-weight", "lots"], ["--perceptual-weight"]),
    (["distill", "--teacher", "gt-joints", "--stride", "0", "--sigma", "0"], ["--stride", "--sigma"]),
    (["evaluate", "RUN", "--max-views", "0", "--source-views", "1"], ["--max-views", "--source-views"]),
])
def test_several_bad_options_one_line_each(args, bad, tmp_path, zju_plain_root):
    fill = {"train": ["--data", zju_plain_root, "--out", tmp_path / "out"],
            "distill": ["--dataset", zju_plain_root, "--out", tmp_path / "out"],
            "evaluate": ["--data", zju_plain_root]}[args[0]]
    result = run_cli([*[tmp_path / "out" if a == "RUN" else a for a in args], *fill])
    assert_refused(result, *bad, lines=len(bad))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [
    ["data", "synth", "FILE", "--size", "64"],
    ["train", "--config", "enerf", "--data", "DATA", "--out", "FILE", "--steps", "1"],
    ["distill", "--dataset", "DATA", "--teacher", "gt-joints", "--out", "FILE"],
    ["pipeline", "--out", "FILE"],
    ["retrain", "--registry", "FILE", "--data", "DATA"],
    ["demo", "--out", "FILE", "--api-url", "http://127.0.0.1:9/api"],
])
def test_out_pointing_at_a_file(args, tmp_path, zju_plain_root):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    before = snapshot(tmp_path)
    result = run_cli([{"FILE": existing, "DATA": zju_plain_root}.get(a, a) for a in args])
    assert_refused(result, str(existing), "is a file, not a folder")
    assert existing.read_text() == "keep me" and snapshot(tmp_path) == before


@pytest.mark.parametrize("preview", ["FOLDER", "preview.txt"])
def test_preview_checked_before_any_shard_is_written(preview, tmp_path, zju_plain_root):
    folder = tmp_path / "pictures"
    folder.mkdir()
    target = folder if preview == "FOLDER" else tmp_path / preview
    before = snapshot(tmp_path)
    result = run_cli(["distill", "--dataset", zju_plain_root, "--teacher", "gt-joints", "--out", tmp_path / "store",
                      "--preview", target])
    assert_refused(result, str(target), "--preview")
    assert not (tmp_path / "store").exists() and snapshot(tmp_path) == before


# -- issue 25: a run folder holds one run -------------------------------------------------------------------------


def _train_args(data: Path, out: Path, *extra) -> list:
    return ["train", "--config", "enerf-heatmap", "--data", data, "--out", out, "--steps", "1",
            "--perceptual-weight", "0", *extra]


def test_train_into_a_non_empty_run_folder_needs_resume_or_overwrite(trained, run_copy, tmp_path):
    before = snapshot(tmp_path)
    result = run_cli(_train_args(trained[0], run_copy))
    assert_refused(result, str(run_copy), "--resume", "--overwrite")
    assert snapshot(tmp_path) == before
    # --overwrite clears the old run first: none of its step files, history or images is left beside the new one
    result = run_cli(_train_args(trained[0], run_copy, "--overwrite"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (run_copy / "checkpoints").iterdir()) == ["latest.pt", "step_0000001.pt"]
    assert len(json.loads((run_copy / "history.json").read_text())) == 1
    # a folder of other files is never cleared, not even with --overwrite
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"keep me")
    before = snapshot(tmp_path)
    assert_refused(run_cli(_train_args(trained[0], other, "--overwrite")), str(other), "not a run folder")
    assert snapshot(tmp_path) == before


def test_import_enerf_into_an_existing_run_needs_overwrite(run_copy, tmp_path):
    from tests.ghnerf.student.test_enerf_import import _write_original_checkpoint

    ckpt = tmp_path / "latest.pth"
    _write_original_checkpoint(ckpt)
    before = snapshot(tmp_path)
    assert_refused(run_cli(["import-enerf", ckpt, "--out", run_copy]), str(run_copy), "--overwrite")
    assert snapshot(tmp_path) == before
    result = run_cli(["import-enerf", ckpt, "--out", run_copy, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in run_copy.rglob("*")) == ["checkpoints", "latest.pt", "run.json"]


def test_resume_never_falls_back_to_another_models_step_file(trained, run_copy):
    from ghnerf.student.train import load_checkpoint

    ckdir = run_copy / "checkpoints"
    other = torch.load(ckdir / "step_0000002.pt", weights_only=True)  # step 2 now belongs to another model
    other["student_config"] = other["student_config"].replace('"enerf-heatmap"', '"enerf-other"')
    torch.save(other, ckdir / "step_0000002.pt")
    assert load_checkpoint(ckdir / "step_0000002.pt")["student_config"].name == "enerf-other"
    _damage(ckdir / "latest.pt", "truncated")
    result = run_cli(_train_args(trained[0], run_copy, "--resume", "--steps", "3"))  # the last --steps counts
    assert result.exit_code == 0, result.output
    assert f"resuming from {ckdir / 'step_0000001.pt'}" in " ".join(result.output.split())
    assert load_checkpoint(ckdir / "latest.pt")["student_config"].name == "enerf-heatmap"


# -- issue 25: weights that do not fit the network are never loaded ----------------------------------------------


def _tamper(src: Path, dst: Path, how: str) -> str:
    """A copy of checkpoint ``src`` at ``dst`` with one model tensor made NaN, int64 or reshaped; its name."""
    ck = torch.load(src, weights_only=True)
    name = next(k for k, v in ck["model"].items() if v.is_floating_point() and v.dim() == 4)
    t = ck["model"][name]
    ck["model"][name] = {"nan": torch.full_like(t, float("nan")), "int64": t.to(torch.int64),
                         "reshaped": t.reshape(t.shape[0], -1)}[how]
    torch.save(ck, dst)
    return name


@pytest.mark.parametrize("how,says", [("nan", "holds NaN or Inf"), ("int64", "is int64, not floating point"),
                                      ("reshaped", "has shape")])
def test_checkpoint_whose_weights_do_not_fit_is_refused_where_a_model_is_loaded(trained, run_copy, tmp_path, how,
                                                                                  says):
    bad = tmp_path / "bad.pt"
    name = _tamper(run_copy / "checkpoints" / "latest.pt", bad, how)
    before = snapshot(tmp_path)
    for args in (["evaluate", run_copy, "--data", trained[0], "--max-views", "1", "--checkpoint", bad],
                 ["train", "--config", "enerf-heatmap", "--data", trained[0], "--out", tmp_path / "new",
                  "--steps", "1", "--perceptual-weight", "0", "--init-from", bad]):
        assert_refused(run_cli(args), str(bad), name, says, "not loaded")
    assert snapshot(tmp_path) == before  # no eval_test/metrics.json, no run folder


def test_pretrained_weights_of_another_architecture_are_refused(trained, tmp_path):
    import torchvision

    other = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), other)
    before = snapshot(tmp_path)
    result = run_cli(["train", "--config", "ghnerf-resnet18", "--data", trained[0], "--out", tmp_path / "run",
                      "--steps", "1", "--perceptual-weight", "0", "--pretrained", other])
    assert_refused(result, str(other), "not this network's", "not loaded")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("how,says", [("nan", "holds NaN or Inf"), ("int64", "is int64, not floating point"),
                                      ("reshaped", "has shape")])
def test_enerf_checkpoint_with_bad_weights_is_not_imported(tmp_path, how, says):
    from tests.ghnerf.student.test_enerf_import import _write_original_checkpoint

    ckpt = tmp_path / "latest.pth"
    _write_original_checkpoint(ckpt)
    ck = torch.load(ckpt, weights_only=True)
    name = next(k for k, v in ck["net"].items() if v.dim() == 4)
    t = ck["net"][name]
    ck["net"][name] = {"nan": torch.full_like(t, float("nan")), "int64": (t * 100).to(torch.int64),
                       "reshaped": t.reshape(t.shape[0], -1)}[how]
    torch.save(ck, ckpt)
    before = snapshot(tmp_path)
    assert_refused(run_cli(["import-enerf", ckpt, "--out", tmp_path / "run"]), str(ckpt), says, "not loaded")
    assert snapshot(tmp_path) == before


FLOATS = sorted(_numeric_options(("float",)))


@pytest.mark.parametrize("value", ["inf", "nan"])
@pytest.mark.parametrize("path,option", FLOATS, ids=[f"{' '.join(p)} {o}" for p, o in FLOATS])
def test_every_float_option_refuses_inf_and_nan(path, option, value, tmp_path, zju_plain_root):
    before = snapshot(zju_plain_root)
    result = run_cli([*path, *_base_args(path, tmp_path, zju_plain_root), option, value])
    assert_refused(result, option)
    assert not (tmp_path / "out").exists()
    assert snapshot(zju_plain_root) == before


def test_distill_sigma_wider_than_any_person_is_refused(tmp_path, zju_plain_root):
    result = run_cli(["distill", "--dataset", zju_plain_root, "--teacher", "gt-joints", "--out", tmp_path / "out",
                      "--sigma", "1000"])
    assert_refused(result, "--sigma", "1000")
    assert not (tmp_path / "out").exists()


# -- issue 25: a full disk is one line, and leaves no temporary file ----------------------------------------------


def _run_limited(args: list, cwd: Path, max_file_bytes: int):
    """The real console entry point in a fresh process whose files may not grow past ``max_file_bytes``
    (``ulimit -f``: a full disk as a process sees it; root cannot fake a read-only folder with chmod)."""
    import resource
    import subprocess
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "flows.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, preexec_fn=limit)


@pytest.mark.parametrize("command", ["data synth", "distill", "train", "evaluate"])
def test_full_disk_is_one_line_naming_the_file_and_leaves_no_temporary_file(trained, tmp_path, command):
    data, run = trained
    out = tmp_path / "out"
    if command == "evaluate":
        shutil.copytree(run, out)
    args = {"data synth": ["data", "synth", out, "--subjects", "1", "--frames", "1", "--cameras", "4", "--size", "64"],
            "distill": ["distill", "--dataset", data, "--teacher", "gt-joints", "--out", out],
            "train": ["train", "--config", "enerf-heatmap", "--data", data, "--out", out, "--steps", "1",
                      "--perceptual-weight", "0"],
            "evaluate": ["evaluate", out, "--data", data, "--max-views", "1"]}[command]
    before = snapshot(out) if out.exists() else {}
    outside = snapshot(data)
    result = _run_limited(args, tmp_path, 4096)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"error: {out}" in errors[0] and "file size limit" in errors[0], result.stderr
    assert not [p for p in out.rglob(".*")], "temporary files left behind"
    for name, (is_dir, size, _) in before.items():  # nothing already there was damaged
        assert (out / name).exists() and (is_dir or (out / name).stat().st_size == size), name
    assert snapshot(data) == outside


def test_image_scale_that_leaves_no_pixels_is_one_line(trained, tmp_path):
    before = snapshot(tmp_path)
    result = run_cli(_train_args(trained[0], tmp_path / "run", "--image-scale", "1e-9"))
    assert_refused(result, "--image-scale 1e-09", str(trained[0]), "at least 32")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["render", "export"])
def test_render_and_export_out_pointing_at_a_file(trained, tmp_path, command):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    before = snapshot(tmp_path)
    path = (command,)
    args = [a for a in _base_args(path, tmp_path, trained[0]) if a != tmp_path / "out"]
    args = [trained[1] if a == tmp_path / "run" else a for a in args]
    result = run_cli([command, *args, existing])  # --out is the last of the base arguments
    assert_refused(result, "--out", str(existing), "is a file, not a folder")
    assert existing.read_text() == "keep me" and snapshot(tmp_path) == before


def test_failed_deployment_run_is_explained_by_its_error_line(monkeypatch):
    """``ghnerf run`` prints this line after "Crashed -> URL" (it printed only that)."""
    from types import SimpleNamespace

    import flows.runs as runs

    logs = [SimpleNamespace(message="Encountered exception during execution:\nTraceback (most recent call last):\n"
                                    '  File "x.py", line 1\nghnerf.base.errors.DataReadError: /d/annots.npy: frame 0: ...')]

    class Client:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read_logs(self, **kwargs):
            return logs

    monkeypatch.setattr(runs, "get_client", lambda sync_client: Client())
    exited = "Flow run infrastructure exited with non-zero status code 1."
    crashed = SimpleNamespace(id="00000000-0000-0000-0000-000000000001", state_name="Crashed",
                              state=SimpleNamespace(message=exited))
    assert runs.failure_line(crashed) == "ghnerf.base.errors.DataReadError: /d/annots.npy: frame 0: ..."
    logs = []
    assert runs.failure_line(crashed) == exited
