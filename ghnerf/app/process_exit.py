"""Leave a finished command without C++ library teardown.

pyarrow's native thread pools are destroyed during the C++ static destructors that run at
``exit()``; when one of their workers is still joinable then, libstdc++ aborts the finished
process with ``terminate called without an active exception`` (exit code -6/134, about 1 run in
100 under load: apache/arrow#34314, geoparquet/geoparquet-io#1028). A command that completed
its work must not report a crash, so the console script ends through :func:`exit_after_python_teardown`:
everything Python would do at exit (wait for non-daemon threads, atexit handlers, flush the
streams) runs, then the process ends with ``os._exit``, which skips the C++ destructors.
"""

import atexit
import os
import sys
import threading
from typing import Callable, NoReturn


def exit_code(exc: SystemExit) -> int:
    """The process exit code Python gives a ``SystemExit`` (None -> 0, an int as is, anything else printed -> 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def exit_after_python_teardown(code: int) -> NoReturn:
    """Join non-daemon threads, run atexit handlers, flush stdout/stderr, then ``os._exit(code)``."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing more can be written anyway
            pass
    os._exit(code)


def run_command(command: Callable[[], object]) -> NoReturn:
    """Run a console-script command (it may raise SystemExit) and leave with its exit code.

    Any other exception propagates (a traceback and the normal exit), so bugs stay visible.
    """
    try:
        command()
        code = 0
    except SystemExit as exc:
        code = exit_code(exc)
    exit_after_python_teardown(code)
