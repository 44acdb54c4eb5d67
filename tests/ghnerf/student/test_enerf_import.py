"""``ghnerf import-enerf``: an original ENeRF checkpoint becomes a run of ours that computes what the original does."""

import json
import os

import numpy as np
import torch
from typer.testing import CliRunner

from flows.cli import app
from ghnerf.base.fileio import file_sha256
from ghnerf.student.train import load_checkpoint
from tests.ghnerf.student.test_enerf_golden import GOLDEN, _batch
from ghnerf.student.model import GHNeRF

runner = CliRunner()


def _write_original_checkpoint(path):
    """A checkpoint laid out as the original's save_model writes it, with the golden weights (original names)."""
    with np.load(GOLDEN, allow_pickle=False) as d:
        net = {k[4:]: torch.from_numpy(d[k].astype(np.float32) if d[k].dtype == np.float16 else d[k])
               for k in d.files if k.startswith("net/")}
        golden = {k: d[k] for k in d.files}
    optim = {"state": {}, "param_groups": [{"lr": 5e-4, "params": list(range(3))}]}
    torch.save({"net": net, "optim": optim, "scheduler": {"last_epoch": 7}, "recorder": {"step": 7000},
                "epoch": 7}, path)
    return golden


def test_imported_run_renders_the_originals_outputs(tmp_path):
    ckpt = tmp_path / "latest.pth"
    golden = _write_original_checkpoint(ckpt)
    result = runner.invoke(app, ["import-enerf", str(ckpt), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    ck = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    cfg = ck["student_config"]
    assert cfg.name == "enerf" and cfg.levels[-1].samples_per_ray == 2 and cfg.depth_rendering == "softmax"
    source = ck["meta"]["imported_from"]
    assert source["sha256"] == file_sha256(ckpt) and source["epoch"] == 7 and source["file"].endswith("latest.pth")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["imported_from"] == source
    model = GHNeRF(cfg).eval()
    model.load_state_dict(ck["model"])
    with torch.no_grad():
        fine = model(_batch(golden, 2))[-1]
    h, w = fine.render_size
    np.testing.assert_allclose(fine.rgb.view(h, w, 3).numpy(), golden["case2/out/rgb_level1"], atol=1e-4, rtol=0)
    lineage = runner.invoke(app, ["lineage", str(tmp_path / "run" / "checkpoints" / "latest.pt"), "--json"])
    assert lineage.exit_code == 0, lineage.output
    assert json.loads(lineage.stdout.strip().splitlines()[-1])["imported_from"]["sha256"] == source["sha256"]


def test_import_under_a_ghnerf_preset_keeps_the_backbone_and_initialises_the_heads(tmp_path):
    ckpt = tmp_path / "latest.pth"
    _write_original_checkpoint(ckpt)
    result = runner.invoke(app, ["import-enerf", str(ckpt), "--out", str(tmp_path / "run"), "--config",
                                 "enerf-heatmap", "--ghnerf-settings"])
    assert result.exit_code == 0, result.output
    ck = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert ck["student_config"].levels[-1].samples_per_ray == 4  # GHNeRF's settings
    original = torch.load(ckpt, weights_only=True)["net"]
    torch.testing.assert_close(ck["model"]["fields.1.blend.0.weight"], original["nerf_1.color.0.weight"])
    torch.testing.assert_close(ck["model"]["cost_regs.0.conv2.0.0.weight"], original["cost_reg_0.conv1.conv.weight"])
    assert "heatmap_head.net.0.weight" in ck["model"]


def test_files_that_are_not_enerf_checkpoints_get_one_line(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    hostile = tmp_path / "hostile.pth"
    torch.save({"net": Payload()}, hostile)
    foreign = tmp_path / "foreign.pth"
    torch.save({"net": {"backbone.layer1.weight": torch.zeros(3)}}, foreign)
    for path, fragment in [(hostile, "weights_only"), (foreign, "not a parameter of ENeRF"),
                           (tmp_path / "missing.pth", "no such file")]:
        result = runner.invoke(app, ["import-enerf", str(path), "--out", str(tmp_path / "run")])
        assert result.exit_code == 2, result.output
        assert fragment in result.output and "Traceback" not in result.output
        assert str(path) in result.output
    assert not marker.exists()
    assert not (tmp_path / "run").exists()
