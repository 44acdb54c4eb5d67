"""A test hook that parks a process at a named point, so that a test can SIGKILL it there without racing.

Unset (always, outside tests) :func:`hold_point` only reads one environment variable and returns.
``GHNERF_HOLD=<point>:<n>:<file>`` lets the first ``n`` passes through ``point`` go on; every later pass
creates ``file`` (empty) and waits until the file is deleted. Points: ``shard`` (before a distill shard is
computed: exactly ``n`` shards get written) and ``checkpoint`` (after a training checkpoint is written).
"""

import os
import threading
import time
from pathlib import Path

_passes: dict[str, int] = {}
_lock = threading.Lock()


def hold_point(point: str) -> None:
    """Pass ``point``, or wait there as ``GHNERF_HOLD`` asks (see the module docstring)."""
    spec = os.environ.get("GHNERF_HOLD")
    if not spec:
        return
    name, n, file = spec.split(":", 2)
    if name != point:
        return
    with _lock:
        _passes[point] = _passes.get(point, 0) + 1
        if _passes[point] <= int(n):
            return
        Path(file).touch()
    while Path(file).exists():
        time.sleep(0.05)
