"""The console script ends like Python would (threads joined, atexit run, output flushed), with the command's code."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import atexit, sys, threading, time
    from ghnerf.app.process_exit import run_command

    def late_writer():
        time.sleep(0.3)
        print("thread done", flush=False)

    def command():
        atexit.register(lambda: print("atexit ran"))
        threading.Thread(target=late_writer).start()
        sys.stdout.write("unflushed output")  # no newline, no flush: os._exit alone would lose it
        sys.stdout.write("\\n")
        raise SystemExit({code!r})

    run_command(command)
""")


@pytest.mark.parametrize("code, expected_rc, expected_err", [(None, 0, ""), (3, 3, ""), ("bad input", 1, "bad input")])
def test_run_command_keeps_exit_code_and_python_teardown(code, expected_rc, expected_err):
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(code=code)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == expected_rc
    assert result.stdout.splitlines() == ["unflushed output", "thread done", "atexit ran"]
    assert result.stderr.strip() == expected_err


def test_other_exceptions_keep_their_traceback():
    script = "from ghnerf.app.process_exit import run_command\ndef c(): raise KeyError('boom')\nrun_command(c)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "KeyError: 'boom'" in result.stderr
