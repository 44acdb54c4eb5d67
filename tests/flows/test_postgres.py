"""Prefect on PostgreSQL: a throwaway Debian PostgreSQL on loopback, a Prefect server on it, the distill deployment.

PostgreSQL comes from Debian's packages (``make sysdeps`` installs it when absent);
the cluster lives in a temporary folder owned by the ``postgres`` user and listens
on 127.0.0.1 only.
"""

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from flows.stack import free_port

pytestmark = pytest.mark.slow


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres_url():
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server not installed: run `make sysdeps` (apt-get install postgresql)")
    data = Path(tempfile.mkdtemp(prefix="ghnerf-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres",
                                 "-E", "UTF8"]), check=True, capture_output=True, timeout=120)
    server = subprocess.Popen(_as_postgres([str(bin_dir / "postgres"), "-D", str(data / "db"), "-h", "127.0.0.1",
                                            "-p", str(port), "-k", str(data)]),
                              stdout=open(data / "postgres.log", "wb"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        for _ in range(60):
            if subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"PostgreSQL did not start; see {data / 'postgres.log'}")
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "prefect"],
                       check=True, capture_output=True, timeout=60)
        yield {"url": f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect", "port": port, "bin": bin_dir}
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def _psql(pg: dict, sql: str) -> str:
    psql = pg["bin"] / "psql"
    res = subprocess.run([str(psql if psql.exists() else "psql"), "-h", "127.0.0.1", "-p", str(pg["port"]), "-U",
                          "postgres", "-d", "prefect", "-tAc", sql], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_distill_deployment_on_a_postgres_backed_server(postgres_url, rp_root, tmp_path):
    from flows.runs import run_and_wait
    from flows.stack import (
        api_settings,
        deploy_all,
        ensure_pools,
        start_server,
        start_worker,
        stop_process,
        wait_for_workers,
    )
    from storage.catalog import Catalog
    from storage.root import StorageRoot

    api = f"http://127.0.0.1:{free_port()}/api"
    server = start_server(api, tmp_path / "home", tmp_path / "server.log", database_url=postgres_url["url"])
    worker = None
    try:
        with api_settings(api):
            ensure_pools(api)
            deploy_all(api, tmp_path / "deploy.log")
            worker = start_worker(api, "cpu", tmp_path / "worker.log")
            wait_for_workers(api, ["cpu"])
            store = tmp_path / "targets"
            run = run_and_wait("distill/renderpeople", {"dataset": str(rp_root), "out": str(store),
                                                        "teacher": "gt-joints"}, timeout_s=300)
            assert run.state.is_completed(), run.state.message
        # the run, its tasks and its artifacts are rows in PostgreSQL
        assert _psql(postgres_url, f"select state_type from flow_run where id = '{run.id}'") == "COMPLETED"
        assert int(_psql(postgres_url, f"select count(*) from task_run where flow_run_id = '{run.id}'")) >= 3
        assert int(_psql(postgres_url, f"select count(*) from artifact where flow_run_id = '{run.id}'")) >= 1
        assert {e.flow_run_id for e in Catalog(StorageRoot(store)).current()} == {str(run.id)}
    finally:
        if worker:
            stop_process(worker)
        stop_process(server)
