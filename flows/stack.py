"""The local Prefect stack: server, work pools, deployments and workers, started and stopped by us.

``make demo`` and the tests use it; users with their own server only need
:func:`ensure_pools` and :func:`deploy_all` (``ghnerf deploy``). Every process we
start is recorded in a state file (``<out>/stack.json``) with its command line,
so :func:`stop_stack` (``make demo-stop``) stops exactly those processes and
nothing else, even from another shell.
"""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from ghnerf.app.doctor import DEFAULT_API  # noqa: F401 -- one source of the default address

PROJECT_DIR = Path(__file__).resolve().parent.parent
POOLS = {"cpu": "teachers (process workers)", "gpu": "training and evaluation (one run per GPU)"}


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_bin() -> str:
    return str(Path(sys.executable).with_name("prefect"))


def server_ok(api_url: str, timeout: float = 2.0) -> bool:
    """True when a Prefect server answers ``GET /health`` at ``api_url``."""
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def ui_url(api_url: str) -> str:
    return api_url.rstrip("/").removesuffix("/api")


@dataclass
class StartedProcess:
    """A process we started: its pid (= process group), what it is, and its command line (to re-identify it)."""

    pid: int
    role: str
    cmdline: list[str]
    log: str


@dataclass
class StackState:
    api_url: str
    processes: list[StartedProcess] = field(default_factory=list)

    def save(self, path: Path) -> None:
        from ghnerf.base.fileio import write_json

        write_json(path, {"api_url": self.api_url, "processes": [asdict(p) for p in self.processes]})

    @classmethod
    def load(cls, path: Path) -> "StackState":
        raw = json.loads(Path(path).read_text())
        return cls(raw["api_url"], [StartedProcess(**p) for p in raw["processes"]])


def _env(api_url: str, home: Path | None = None) -> dict:
    env = {**os.environ, "PREFECT_API_URL": api_url, "GHNERF_HOME": str(PROJECT_DIR), "HF_HUB_OFFLINE": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONUNBUFFERED": "1",
           "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S)}
    if home is not None:
        env["PREFECT_HOME"] = str(home)
    return env


def _spawn(cmd: list[str], role: str, log: Path, env: dict) -> StartedProcess:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_DIR,
                                start_new_session=True)
    return StartedProcess(proc.pid, role, cmd, str(log))


def start_server(api_url: str, home: Path, log: Path, timeout: float = 180.0,
                 database_url: str | None = None) -> StartedProcess:
    """Start ``prefect server start`` on the loopback address of ``api_url`` and wait for it.

    The database is SQLite in ``home`` unless ``database_url`` (e.g.
    ``postgresql+asyncpg://user:pw@host:5432/prefect``) is given.

    Raises:
        RuntimeError: it did not answer within ``timeout`` seconds (the log file is named).
    """
    url = httpx.URL(api_url)
    if url.host not in ("127.0.0.1", "localhost"):
        raise RuntimeError(f"will only start a server on 127.0.0.1, not {url.host}; start yours and set "
                           "PREFECT_API_URL")
    env = _env(api_url, home)
    env["PREFECT_SERVER_API_HOST"] = "127.0.0.1"
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    cmd = [prefect_bin(), "server", "start", "--host", "127.0.0.1", "--port", str(url.port or 4200)]
    proc = _spawn(cmd, "server", log, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server_ok(api_url):
            return proc
        if not _alive(proc.pid):
            raise RuntimeError(f"the Prefect server exited at start; see {log}")
        time.sleep(1.0)
    stop_process(proc)
    raise RuntimeError(f"the Prefect server did not answer {api_url}/health within {timeout:.0f} s; see {log}")


@contextmanager
def api_settings(api_url: str):
    """Inside, every Prefect client of this process and every child it starts talks to ``api_url`` (never a
    temporary server); on exit PREFECT_API_URL is back to what it was."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    old = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api_url  # for child processes
    try:
        with temporary_settings({PREFECT_API_URL: api_url}):
            yield
    finally:
        if old is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = old


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def ensure_pools(api_url: str) -> dict[str, int]:
    """Create (or update) the ``cpu`` and ``gpu`` process pools; gpu's concurrency limit = GPUs (at least 1).

    Returns:
        pool name -> concurrency limit (0: unlimited).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    limits = {"cpu": None, "gpu": max(gpu_count(), 1)}
    with api_settings(api_url), get_client(sync_client=True) as client:
        for name, limit in limits.items():
            try:
                client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template,
                                                       concurrency_limit=limit, description=POOLS[name]))
            except ObjectAlreadyExists:
                client.update_work_pool(name, WorkPoolUpdate(concurrency_limit=limit, description=POOLS[name]))
    ensure_crash_detection(api_url)
    return {k: v or 0 for k, v in limits.items()}


HEARTBEAT_S = 30  # flow-run heartbeat period on our workers (Prefect's minimum)
CRASH_AFTER_S = 90  # no heartbeat and no final state for this long: the run is marked Crashed
CRASH_AUTOMATION = "ghnerf-crash-silent-flow-runs"


def ensure_crash_detection(api_url: str, within_s: int = CRASH_AFTER_S) -> None:
    """Create (or replace) the automation that marks flow runs Crashed when their heartbeats stop.

    A killed worker takes its flow-run process with it, so nothing reports the end of the
    run; Prefect's documented remedy is a proactive trigger on ``prefect.flow-run.heartbeat``
    events (sent every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds, set by :func:`start_worker`
    and the pools' job variables) with a change-state action.
    """
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    with api_settings(api_url):
        try:
            Automation.read(name=CRASH_AUTOMATION).delete()
        except ValueError:
            pass
        Automation(
            name=CRASH_AUTOMATION,
            description=f"flow runs without a heartbeat for {within_s} s are marked Crashed (killed worker or node)",
            trigger=EventTrigger(
                after={"prefect.flow-run.heartbeat"},
                expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                        "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
                match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
                for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
                within=timedelta(seconds=within_s)),
            actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                        message=f"no heartbeat for {within_s} s: the worker running it died")],
        ).create()


def deploy_all(api_url: str, log: Path) -> None:
    """``prefect deploy --all`` from prefect.yaml, with GHNERF_HOME = this checkout.

    Raises:
        RuntimeError: the deploy failed (its output is in ``log``).
    """
    env = _env(api_url)
    log.parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run([prefect_bin(), "--no-prompt", "deploy", "--all"], cwd=PROJECT_DIR, env=env,
                         capture_output=True, text=True, timeout=600)
    log.write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        raise RuntimeError(f"prefect deploy --all failed (exit {res.returncode}); see {log}:\n"
                           + (res.stdout + res.stderr)[-2000:])


def start_worker(api_url: str, pool: str, log: Path) -> StartedProcess:
    """A process worker polling ``pool`` (flow runs execute in GHNERF_HOME with this Python)."""
    cmd = [prefect_bin(), "worker", "start", "--pool", pool, "--type", "process", "--name", f"{pool}-{os.getpid()}"]
    return _spawn(cmd, f"worker-{pool}", log, _env(api_url))


def wait_for_workers(api_url: str, pools: list[str], timeout: float = 120.0) -> None:
    """Block until every pool has an online worker."""
    deadline = time.monotonic() + timeout
    pending = list(pools)
    while pending and time.monotonic() < deadline:
        for pool in list(pending):
            try:
                r = httpx.post(f"{api_url.rstrip('/')}/work_pools/{pool}/workers/filter", json={}, timeout=5)
                if r.status_code == 200 and any(w.get("status") == "ONLINE" for w in r.json()):
                    pending.remove(pool)
            except httpx.HTTPError:
                pass
        if pending:
            time.sleep(1.0)
    if pending:
        raise RuntimeError(f"no worker came online for pool(s) {pending} within {timeout:.0f} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _same_process(p: StartedProcess) -> bool:
    """The pid still runs the command we started (pids are reused)."""
    try:
        cmdline = Path(f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _alive(p.pid)
    return any(p.cmdline[-1].encode() in part for part in cmdline) or any(
        Path(p.cmdline[0]).name.encode() in part for part in cmdline)


def stop_process(p: StartedProcess, grace: float = 20.0) -> bool:
    """SIGTERM the process group, SIGKILL after ``grace`` seconds; False if it was already gone."""
    if not _alive(p.pid) or not _same_process(p):
        return False
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(p.pid):
        try:
            os.waitpid(p.pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    if _alive(p.pid):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return True


def stop_stack(state_file: Path, log=print) -> int:
    """Stop the processes recorded in ``state_file`` (workers first), then delete it; returns how many were stopped."""
    if not state_file.is_file():
        log(f"nothing to stop: {state_file} does not exist")
        return 0
    state = StackState.load(state_file)
    stopped = 0
    for p in sorted(state.processes, key=lambda p: p.role == "server"):
        if stop_process(p):
            stopped += 1
            log(f"stopped {p.role} (pid {p.pid})")
        else:
            log(f"{p.role} (pid {p.pid}) was not running")
    state_file.unlink()
    return stopped
