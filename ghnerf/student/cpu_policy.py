"""How a process runs the student on CPU: OpenMP's wait policy and torch's thread count, chosen here and recorded.

torch's CPU kernels run on OpenMP (libgomp). By default an idle OpenMP thread spins before it sleeps; the
evaluation path runs thousands of short parallel regions, so on a machine shared with other CPU-bound
processes (a Prefect server, workers, training) the spinning takes cores from them and a descheduled thread
stalls its team at every barrier: over a full 512² frame with about 8 runnable processes on 2 cores the
evaluation path took 2.1-2.4x the original ENeRF's time, 0.43x with ``OMP_WAIT_POLICY=PASSIVE`` (issue 22).
libgomp reads the policy once, when it is loaded (``import torch``), so :func:`prepare_process` sets it in
the environment before that (the ``ghnerf`` command does it first thing; child processes inherit it), and
:func:`apply_inference_policy` sets the thread count and returns what is in effect, for the run's records.
"""

import json
import os
import sys
from dataclasses import asdict, dataclass

WAIT_POLICY_VAR = "OMP_WAIT_POLICY"
WAIT_POLICY = "PASSIVE"  # idle threads sleep at once instead of spinning
THREADS_VAR = "OMP_NUM_THREADS"
_RECORD_VAR = "GHNERF_CPU_POLICY"  # who set the wait policy, for the records of this process and its children


@dataclass(frozen=True)
class CpuPolicy:
    """The CPU settings a process renders with.

    Attributes:
        threads: torch's intra-op threads.
        wait_policy: ``OMP_WAIT_POLICY`` as OpenMP read it ("unset": libgomp's default, spin then sleep).
        wait_policy_source: "ghnerf" (set by :func:`prepare_process` before OpenMP was loaded), "environment"
            (the user's own value, kept), "unset", or "not in effect" (set by :func:`prepare_process` after
            OpenMP was loaded: it applies to child processes only).
    """

    threads: int
    wait_policy: str
    wait_policy_source: str

    def record(self) -> dict:
        return asdict(self)


def openmp_loaded() -> bool:
    """Whether this process has loaded an OpenMP runtime (from then on its wait policy is fixed)."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
        return any(name in maps for name in ("libgomp", "libiomp", "libomp"))
    except OSError:  # not Linux: torch's import is what loads it
        return "torch" in sys.modules


def prepare_process(environ: dict | None = None, loaded: bool | None = None) -> str:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` for this process and its children unless the environment has a value
    (the user's choice is kept). Call it before ``import torch``. Returns the source :class:`CpuPolicy`
    records for this process ("ghnerf", "environment" or "not in effect").

    Args:
        environ: the environment to change (default ``os.environ``).
        loaded: whether OpenMP is already loaded (default: :func:`openmp_loaded`).
    """
    env = os.environ if environ is None else environ
    if WAIT_POLICY_VAR not in env:
        late = openmp_loaded() if loaded is None else loaded
        env[WAIT_POLICY_VAR] = WAIT_POLICY
        # children read it at their start, so it is in effect for them even when this process was too late
        env[_RECORD_VAR] = json.dumps({"set_by": "ghnerf", "too_late_in_pid": os.getpid() if late else None})
    return _source(env)


def _source(env) -> str:
    if WAIT_POLICY_VAR not in env:
        return "unset"
    try:
        record = json.loads(env.get(_RECORD_VAR, "{}"))
    except ValueError:
        record = {}
    if record.get("set_by") != "ghnerf":
        return "environment"
    return "not in effect" if record.get("too_late_in_pid") == os.getpid() else "ghnerf"


def inference_threads(environ: dict | None = None) -> int:
    """Threads for CPU inference: ``OMP_NUM_THREADS`` when set, else every CPU this process may run on."""
    env = os.environ if environ is None else environ
    if env.get(THREADS_VAR, "").strip().isdigit() and int(env[THREADS_VAR]) > 0:
        return int(env[THREADS_VAR])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def current_policy(threads: int, environ: dict | None = None) -> CpuPolicy:
    """The wait policy in effect in this process (as :func:`prepare_process` left it) with ``threads``."""
    env = os.environ if environ is None else environ
    return CpuPolicy(threads, env.get(WAIT_POLICY_VAR, "unset"), _source(env))


def apply_inference_policy(device) -> CpuPolicy | None:
    """On CPU: torch's thread count set to :func:`inference_threads`; returns the policy in effect (None on
    other devices, where nothing is changed)."""
    import torch

    if torch.device(device).type != "cpu":
        return None
    threads = inference_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return current_policy(torch.get_num_threads())
