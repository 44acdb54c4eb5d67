"""The ghnerf command line: help everywhere, synth options validated, exit codes."""

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app  # the console script: library commands plus the orchestration ones

runner = CliRunner()


def _commands(typer_app, prefix=()):
    import typer.main

    group = typer.main.get_command(typer_app)
    stack = [(prefix, group)]
    while stack:
        path, cmd = stack.pop()
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            stack.append((path + (name,), sub))


def test_every_subcommand_has_help():
    paths = list(_commands(app))
    for expected in [("data", "synth"), ("data", "inspect"), ("demo",), ("demo-stop",), ("run",), ("deploy",),
                     ("pipeline",), ("retrain",), ("train",), ("evaluate",), ("lineage",), ("render",), ("export",)]:
        assert expected in paths, expected
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


@pytest.mark.parametrize("args,fragment", [
    (["--layout", "nope"], "layout"),
    (["--size", "10"], "size"),
    (["--layout", "renderpeople", "--distortion"], "no distortion"),
])
def test_synth_rejects_bad_options(tmp_path, args, fragment):
    result = runner.invoke(app, ["data", "synth", str(tmp_path / "x"), *args])
    assert result.exit_code == 2
    assert fragment in result.output
    assert not (tmp_path / "x").exists()


def test_synth_cli_then_inspect(tmp_path):
    out = tmp_path / "rp"
    result = runner.invoke(app, ["data", "synth", str(out), "--layout", "renderpeople", "--subjects", "1",
                                 "--frames", "2", "--cameras", "3", "--size", "64"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["data", "inspect", str(out), "--json"])
    assert json.loads(result.stdout) == {"layout": "renderpeople", "subjects": [
        {"name": "seq_000000-rp_synthetic_000_rigged_001", "cameras": 3, "frames": 2, "image_size": [64, 64]}],
        "skipped": [], "odd_sized_images": []}
    # refusing to overwrite keeps the existing data
    result = runner.invoke(app, ["data", "synth", str(out), "--layout", "renderpeople", "--subjects", "1",
                                 "--frames", "1", "--cameras", "3", "--size", "64"])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert json.loads(runner.invoke(app, ["data", "inspect", str(out), "--json"]).stdout)["subjects"][0]["frames"] == 2
