"""`ghnerf doctor`: server/pool/worker parsing against a fake Prefect 3.8.8 API, warnings with fixes, failures
that block the main job, exit codes."""

import json
import shutil
import threading
from collections import namedtuple
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from flows.stack import free_port
from ghnerf.app import doctor
from ghnerf.app.cli import app

NOW = datetime.now(timezone.utc)
# Shapes as Prefect 3.8.8 returns them (captured from `prefect server start`; base_job_template trimmed).
SETTINGS = {"home": "/srv/prefect-home", "server": {"database": {
    "connection_url": "**********", "driver": None, "host": None, "port": None, "user": None, "name": None,
    "password": None, "echo": False, "migrate_on_start": True, "timeout": 10.0}}}


def _pool(name: str, status: str = "READY", limit: int | None = None, paused: bool = False) -> dict:
    return {"id": f"id-{name}", "created": "2026-11-24T17:19:38.650342Z", "updated": "2026-11-24T17:20:03.780000Z",
            "name": name, "description": None, "type": "process", "base_job_template": {}, "is_paused": paused,
            "concurrency_limit": limit, "status": status, "default_queue_id": f"q-{name}",
            "storage_configuration": {"bundle_upload_step": None, "bundle_execution_step": None,
                                      "default_result_storage_block_id": None}, "active_slots": None}


def _worker(name: str, status: str = "ONLINE", age_s: float = 5.0) -> dict:
    beat = (NOW - timedelta(seconds=age_s)).isoformat().replace("+00:00", "Z")
    return {"id": f"w-{name}", "created": beat, "updated": beat, "name": name, "work_pool_id": "id-cpu",
            "last_heartbeat_time": beat, "heartbeat_interval_seconds": 30, "status": status}


def _routes(**override) -> dict:
    routes = {("GET", "/api/health"): (200, True), ("GET", "/api/ready"): (200, {"message": "OK"}),
              ("GET", "/api/admin/version"): (200, "3.8.8"), ("GET", "/api/admin/settings"): (200, SETTINGS),
              ("POST", "/api/work_pools/filter"): (200, [_pool("cpu"), _pool("gpu", "NOT_READY", 1)]),
              ("POST", "/api/work_pools/cpu/workers/filter"): (200, [_worker("worker-a"),
                                                                     _worker("old", "OFFLINE", 900)]),
              ("POST", "/api/work_pools/gpu/workers/filter"): (200, [])}
    routes.update({(m, p): v for (m, p), v in override.get("routes", {}).items()})
    return routes


Fake = namedtuple("Fake", "api routes headers")


@pytest.fixture
def fake_prefect():
    """A Prefect-shaped REST API on 127.0.0.1 answering canned JSON; ``routes`` can be edited per test."""
    routes, headers = _routes(), []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            if method == "POST":
                self.rfile.read(int(self.headers.get("content-length", 0)))
            headers.append((self.path, self.headers.get("Authorization")))
            status, body = routes.get((method, self.path), (404, {"detail": "Not Found"}))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 -- http.server's naming
            self._answer("GET")

        def do_POST(self):  # noqa: N802
            self._answer("POST")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Fake(f"http://127.0.0.1:{server.server_address[1]}/api", routes, headers)
    server.shutdown()
    server.server_close()


def _by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_server_database_pools_and_workers_are_parsed(fake_prefect, monkeypatch):
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "admin:pass")
    monkeypatch.delenv("PREFECT_API_KEY", raising=False)
    monkeypatch.delenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", raising=False)
    checks = _by_name(doctor.check_prefect(fake_prefect.api + "/"))
    assert checks["Prefect server"].status == "ok" and "server 3.8.8" in checks["Prefect server"].detail
    db = checks["Prefect database"]
    assert db.status == "ok" and "SQLite at /srv/prefect-home/prefect.db" in db.detail
    cpu, gpu = checks["work pool cpu"], checks["work pool gpu"]
    assert cpu.status == "ok" and cpu.fix is None
    assert "type process, status READY, concurrency limit none, 1 online worker(s): worker-a (heartbeat" in cpu.detail
    assert "offline: old" in cpu.detail
    assert gpu.status == "warn" and "concurrency limit 1, 0 online worker(s)" in gpu.detail
    assert gpu.fix == f"PREFECT_API_URL={fake_prefect.api} prefect worker start --pool gpu"
    assert not doctor.main_job_blocked(list(checks.values()))
    sent = dict(fake_prefect.headers)
    assert sent["/api/work_pools/filter"] == "Basic YWRtaW46cGFzcw=="  # base64("admin:pass"), as Prefect sends


def test_missing_paused_and_unlimited_pools_name_the_command(fake_prefect):
    fake_prefect.routes[("POST", "/api/work_pools/filter")] = (200, [_pool("cpu", "PAUSED", paused=True)])
    checks = _by_name(doctor.check_prefect(fake_prefect.api))
    assert checks["work pool cpu"].status == "warn" and checks["work pool cpu"].fix.endswith(
        "prefect work-pool resume cpu")
    gpu = checks["work pool gpu"]
    assert gpu.status == "warn" and gpu.detail.startswith("missing")
    assert "prefect work-pool create gpu --type process && prefect work-pool set-concurrency-limit gpu 1" in gpu.fix
    fake_prefect.routes[("POST", "/api/work_pools/filter")] = (200, [_pool("gpu", limit=None)])
    gpu = _by_name(doctor.check_prefect(fake_prefect.api))["work pool gpu"]
    assert gpu.status == "warn" and gpu.fix.endswith("prefect work-pool set-concurrency-limit gpu 1")


def test_unreachable_database_and_unlistable_pools_block_the_main_job(fake_prefect):
    fake_prefect.routes[("GET", "/api/ready")] = (503, {"message": "Database is not available"})
    fake_prefect.routes[("POST", "/api/work_pools/filter")] = (422, {"detail": "unprocessable"})
    checks = _by_name(doctor.check_prefect(fake_prefect.api))
    db, pools = checks["Prefect database"], checks["work pools"]
    assert db.status == "fail" and db.blocks_main_job and "503" in db.detail and "Database is not available" in db.detail
    assert pools.status == "fail" and pools.blocks_main_job and "fastapi<0.151" in pools.fix
    assert doctor.main_job_blocked(list(checks.values()))


def test_database_backend_never_shows_a_password(monkeypatch):
    pg = {"server": {"database": {"connection_url": "**********", "driver": "postgresql+asyncpg",
                                  "host": "dbhost", "port": 5433, "user": "prefect", "name": "orch",
                                  "password": "**********"}}}
    assert doctor.database_backend(pg) == "postgresql (postgresql+asyncpg, dbhost:5433/orch, user prefect)"
    plain = {"server": {"database": {"connection_url": "postgresql+asyncpg://prefect:s3cret@db:5432/prefect"}}}
    assert doctor.database_backend(plain) == "postgresql (postgresql+asyncpg://prefect:***@db:5432/prefect)"
    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", "postgresql+asyncpg://u:pw@h/p")
    line = doctor.database_backend(SETTINGS)
    assert "this shell sets it to postgresql+asyncpg://u:***@h/p" in line and "pw" not in line
    assert doctor.hide_password("sqlite+aiosqlite:////tmp/prefect.db") == "sqlite+aiosqlite:////tmp/prefect.db"


def test_fastapi_pin():
    assert doctor.check_fastapi("0.150.0").status == "ok"
    bad = doctor.check_fastapi("0.151.2")
    assert bad.status == "fail" and bad.blocks_main_job and bad.fix == "pip install 'fastapi<0.151'"


@pytest.mark.parametrize("free_gb, status", [(1.5, "fail"), (5.0, "warn"), (50.0, "ok")])
def test_free_disk_thresholds(tmp_path, monkeypatch, free_gb, status):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda p: usage._replace(free=int(free_gb * 1e9)))
    check = doctor.check_free_disk(tmp_path / "not" / "yet")
    assert check.status == status and check.blocks_main_job == (status == "fail")
    assert check.detail == f"{free_gb:.1f} GB free at {tmp_path}"
    assert (check.fix is None) == (status == "ok")


def test_object_store_root_is_probed_without_a_disk_check():
    checks = doctor.check_storage("memory://doctor-probe")
    assert [(c.name, c.status) for c in checks] == [("storage root", "ok")]


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
    assert "make demo starts one" in server["fix"] and "work pool cpu" not in checks
    ck = tmp_path / "torch" / "hub" / "checkpoints"
    vgg = checks["weights VGG16 (LPIPS)"]
    assert vgg["status"] == "warn" and vgg["detail"] == f"missing {ck / 'vgg16-397923af.pth'}"
    assert f"copy it to {ck}/" in vgg["fix"]
    assert checks["weights resnet18 (ImageNet)"]["detail"] == f"missing {ck / 'resnet18-f37072fd.pth'}"
    assert checks["teacher mediapipe"]["status"] == "ok"
    assert checks["storage root"]["status"] == "ok" and not list((tmp_path / "store").iterdir())  # probe removed
    assert checks["package fastapi"]["status"] == "ok"


def test_found_weights_are_reported_ok(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    ck = tmp_path / "torch" / "hub" / "checkpoints"
    ck.mkdir(parents=True)
    (ck / "vgg16-397923af.pth").write_bytes(b"x")
    vgg = _by_name(doctor.check_weights())["weights VGG16 (LPIPS)"]
    assert vgg.status == "ok" and vgg.detail == str(ck / "vgg16-397923af.pth")


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


def test_cpu_training_precision_and_keypoint_cache_are_reported(tmp_path, monkeypatch):
    from ghnerf.base.keypoint_cache import KeypointCache
    from ghnerf.student import precision

    monkeypatch.setenv("GHNERF_CACHE_DIR", str(tmp_path))
    KeypointCache("t", 25).put(b"k", [[1.0, 2.0, 0.5]] * 25)
    monkeypatch.setattr(precision, "cpu_has_native_bfloat16", lambda: True)
    checks = {c.name: c for c in doctor.check_cpu_training()}
    assert checks["CPU training precision"].detail.startswith("bfloat16: auto: this CPU computes bfloat16 natively")
    assert checks["keypoint cache"].detail.startswith(f"{tmp_path}: 1 file(s), ")
    monkeypatch.setattr(precision, "cpu_has_native_bfloat16", lambda: False)
    monkeypatch.setenv("GHNERF_CACHE_DIR", "none")
    checks = {c.name: c for c in doctor.check_cpu_training()}
    assert checks["CPU training precision"].detail.startswith("float32: auto: this CPU has no native bfloat16")
    assert checks["keypoint cache"].detail == "memory only (GHNERF_CACHE_DIR=none)"
    assert all(c.status == "ok" for c in checks.values())
