"""Running deployments from Python: short names, waiting with progress, reading results and artifacts back."""

import logging
import time
from collections.abc import Callable

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterLevel,
)
from prefect.client.schemas.sorting import LogSort
from prefect.deployments import run_deployment


def resolve_deployment(name: str, api_url: str | None = None) -> str:
    """``flow/deployment`` from either that form or the short ``flow-deployment`` (e.g. ``distill-renderpeople``).

    Raises:
        LookupError: no (or more than one) deployment matches; the message lists what exists.
    """
    with get_client(sync_client=True) as client:
        deployments = client.read_deployments()
        flows = {f.id: f.name for f in client.read_flows()}
    full = sorted(f"{flows.get(d.flow_id, '?')}/{d.name}" for d in deployments)
    if name in full:
        return name
    matches = [f for f in full if f.replace("/", "-") == name]
    if len(matches) == 1:
        return matches[0]
    raise LookupError(f"no deployment {name!r}; deployed: {', '.join(full) or 'none (run `ghnerf deploy`)'}")


def progress_of(flow_run_id) -> tuple[float | None, str]:
    """The newest progress artifact of a flow run: (percent, description)."""
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), type=ArtifactFilterType(any_=["progress"])))
    if not arts:
        return None, ""
    art = max(arts, key=lambda a: a.updated or a.created)
    return float(art.data or 0.0), art.description or ""


def run_and_wait(name: str, parameters: dict | None = None, on_poll: Callable | None = None,
                 poll_s: float = 2.0, timeout_s: float | None = None):
    """Start a run of deployment ``name`` and wait for a final state, calling ``on_poll(flow_run)`` meanwhile.

    Returns:
        the finished flow run (check ``.state``).
    Raises:
        TimeoutError: not finished within ``timeout_s``.
    """
    run = run_deployment(name, parameters=parameters or {}, timeout=0)
    start = time.monotonic()
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run.id)
            if on_poll:
                on_poll(run)
            if run.state and run.state.is_final():
                return run
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                raise TimeoutError(f"{name} run {run.id} not finished after {timeout_s:.0f} s (state {run.state_name})")
            time.sleep(poll_s)


def failure_line(flow_run) -> str:
    """One line saying why a finished flow run did not complete: the last line of its newest error log (the
    exception, e.g. ``ConfigError: ...``), else the first line of its state message."""
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id]),
                                                     level=LogFilterLevel(ge_=logging.ERROR)),
                                sort=LogSort.TIMESTAMP_DESC, limit=20)
    for log in logs:
        lines = [ln.strip() for ln in (log.message or "").splitlines() if ln.strip()]
        if lines:
            return lines[-1]
    message = [ln for ln in ((flow_run.state.message if flow_run.state else "") or "").splitlines() if ln.strip()]
    return message[0] if message else f"the run ended {flow_run.state_name}"


def artifacts_of(flow_run_id) -> list:
    """Every artifact a flow run (and its tasks) created."""
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
