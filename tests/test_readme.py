"""Every command of the README's ```bash blocks runs, in order, on a fresh machine (no cached weights), on tiny sizes.

Each command runs as its own process (``python -m flows.cli``, what the ``ghnerf`` script
runs), in a temporary folder. The README shows real sizes; :data:`TINY` is the documented substitution applied to each
command before it runs (whole option/value pairs, so a changed option in the README no
longer matches and the command runs at its full size: the test then gets slow instead of
silently testing something else). :data:`PLACEHOLDERS` fills the README's ``...`` and
``<...>``. Commands in :data:`EXCLUDED` are not run, each with its reason; any other
command that is not ``ghnerf ...`` fails the test, so a new README command is covered or
listed here on purpose.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

TINY = {  # README value -> test value (applied in this order)
    "ghnerf train ": "ghnerf train --steps 2 ",  # commands that use the default 2000 steps (a later --steps wins)
    "--size 256 256": "--size 64 64",  # render's H W
    "--subject CoreView_903": "--subject CoreView_902",  # the fourth subject is not there with --subjects 2
    "--subjects 4": "--subjects 2",
    "--frames 10": "--frames 2",
    "--size 256": "--size 64",
    "--steps 2000": "--steps 2",
    "--max-views 8": "--max-views 2",
    "--out runs/best": "--out runs/best --pretrain-2d-steps 2",  # the default's 24000 (auto), and the teacher-free's
    "--out runs/free": "--out runs/free --pretrain-2d-steps 2",
}
# (cameras stay at 8: the ZJU split needs 3 training cameras near each test camera)

PLACEHOLDERS = {  # README text -> what the test runs; values with {shard} are filled from the store
    "ghnerf train ... --resume": "ghnerf train --config ghnerf-resnet18 --data data/zju --out runs/r18 --steps 3 "
                                 "--resume",
    "<target id | shard key | shard file>": "{shard}",
}

EXCLUDED = {  # command prefix -> why it is not run here
    "make demo": "starts a Prefect server and workers (tests/flows/test_demo.py runs the demo)",
    "make test": "is the test suite itself",
    "ghnerf distill --dataset data/rp  --teacher surface-cse --out s3://": "needs an S3 bucket "
                                                                            "(tests/storage/test_s3.py uses moto)",
}


def readme_commands(text: str) -> list[str]:
    """The commands of every ```bash block, backslash continuations joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
            if line:
                commands.append(re.sub(r"\s+", " ", line))
    return commands


def tiny(command: str) -> str:
    for big, small in {**PLACEHOLDERS, **TINY}.items():
        command = command.replace(re.sub(r"\s+", " ", big), small)
    return command


def test_readme_parsing_sees_every_block():
    commands = readme_commands(README.read_text())
    assert "ghnerf data inspect data/zju --json" in commands
    assert any(c.startswith("ghnerf train --config ghnerf-resnet18+cse") and "--perceptual-weight 0" in c
               for c in commands)  # a backslash-continued command comes out whole
    assert tiny("ghnerf data synth x --subjects 4 --size 256") == "ghnerf data synth x --subjects 2 --size 64"
    assert tiny("ghnerf train --config enerf --steps 2000") == "ghnerf train --steps 2 --config enerf --steps 2"


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_CACHE"}
    env.update(TORCH_HOME=str(tmp_path / "torch-home"), HF_HOME=str(tmp_path / "hf-home"),  # no cached weights
               PYTHONPATH=os.pathsep.join([str(README.parent), env.get("PYTHONPATH", "")]))
    ran = []
    for command in readme_commands(README.read_text()):
        if any(command.startswith(re.sub(r"\s+", " ", prefix)) for prefix in EXCLUDED):
            continue
        assert command.startswith("ghnerf "), f"README command neither run nor excluded: {command}"
        small = tiny(command)
        if "{shard}" in small:
            shard = next(p for p in sorted((tmp_path / "targets").rglob("*.parquet")) if "catalog" not in p.parts)
            small = small.replace("{shard}", str(shard.relative_to(tmp_path / "targets")))
        result = subprocess.run([sys.executable, "-m", "flows.cli", *shlex.split(small)[1:]], env=env,
                                capture_output=True, text=True)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{command}\n(run as: {small})\n{output[-3000:]}"
        assert "Traceback" not in output
        ran.append(small)
    assert len(ran) >= 12, ran
    assert (tmp_path / "runs" / "r18" / "eval_test" / "metrics.json").is_file()
