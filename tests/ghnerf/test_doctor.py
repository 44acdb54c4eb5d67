"""`ghnerf doctor` without a server: warnings with fixes, failures that block the main job, exit codes."""

import json

from typer.testing import CliRunner

from flows.stack import free_port
from ghnerf.cli import app


def _doctor(*args, env=None):
    result = CliRunner().invoke(app, ["doctor", "--json", *args], env=env)
    return result, json.loads(result.stdout)


def test_no_server_and_missing_weights_are_warnings_with_the_exact_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    api = f"http://127.0.0.1:{free_port()}/api"
    result, report = _doctor("--api-url", api, "--store", str(tmp_path / "store"))
    assert result.exit_code == 0, result.output
    assert report["main_job_can_run"] is True
    checks = {c["name"]: c for c in report["checks"]}
    server = checks["Prefect server"]
    assert server["status"] == "warn" and api in server["detail"] and "prefect server start" in server["fix"]
    vgg = checks["weights VGG16 (LPIPS)"]
    assert vgg["status"] == "warn"
    assert vgg["detail"] == f"missing {tmp_path / 'torch' / 'hub' / 'checkpoints' / 'vgg16-397923af.pth'}"
    assert "resnet18-f37072fd.pth" in checks["weights resnet18 (ImageNet)"]["detail"]
    assert checks["teacher mediapipe"]["status"] == "ok"
    assert checks["storage root"]["status"] == "ok" and not list((tmp_path / "store").iterdir())  # probe removed
    assert checks["package fastapi"]["status"] == "ok"


def test_found_weights_are_reported_ok(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    ck = tmp_path / "torch" / "hub" / "checkpoints"
    ck.mkdir(parents=True)
    (ck / "vgg16-397923af.pth").write_bytes(b"x")
    _, report = _doctor("--api-url", f"http://127.0.0.1:{free_port()}/api", "--store", str(tmp_path / "s"))
    vgg = next(c for c in report["checks"] if c["name"] == "weights VGG16 (LPIPS)")
    assert vgg["status"] == "ok" and vgg["detail"] == str(ck / "vgg16-397923af.pth")


def test_unwritable_storage_root_blocks_the_main_job(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result, report = _doctor("--api-url", f"http://127.0.0.1:{free_port()}/api", "--store", str(blocker / "store"))
    assert result.exit_code == 1
    assert report["main_job_can_run"] is False
    storage = next(c for c in report["checks"] if c["name"] == "storage root")
    assert storage["status"] == "fail" and str(blocker / "store") in storage["detail"] and storage["fix"]
    table = CliRunner().invoke(app, ["doctor", "--api-url", f"http://127.0.0.1:{free_port()}/api", "--store",
                                     str(blocker / "store")])
    assert table.exit_code == 1 and "cannot run" in table.output
