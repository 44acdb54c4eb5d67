"""One Prefect server for every flow test (started once, ~10 s), and the deployed stack with workers.

Tests never fall back to Prefect's per-process temporary server: every client in
this session talks to the server started here, on a free loopback port with its
own PREFECT_HOME (SQLite) under the session's tmp dir.
"""


import pytest

from flows.stack import free_port


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """The API URL of a running Prefect server; PREFECT_API_URL points at it for the session."""
    from flows.stack import api_settings, start_server, stop_process

    home = tmp_path_factory.mktemp("prefect")
    api = f"http://127.0.0.1:{free_port()}/api"
    server = start_server(api, home / "home", home / "server.log")
    try:
        with api_settings(api):
            yield api
    finally:
        stop_process(server)


@pytest.fixture(scope="session")
def prefect_stack(prefect_api, tmp_path_factory):
    """Pools created, prefect.yaml deployed, one process worker per pool online; yields the API URL."""
    from flows.stack import deploy_all, ensure_pools, start_worker, stop_process, wait_for_workers

    logs = tmp_path_factory.mktemp("stack-logs")
    ensure_pools(prefect_api)
    deploy_all(prefect_api, logs / "deploy.log")
    workers = [start_worker(prefect_api, pool, logs / f"worker-{pool}.log") for pool in ("cpu", "gpu")]
    try:
        wait_for_workers(prefect_api, ["cpu", "gpu"])
        yield prefect_api
    finally:
        for w in workers:
            stop_process(w)
