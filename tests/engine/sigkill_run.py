"""Run a training command until it prints ``READY-TO-KILL`` on a line of its own, then SIGKILL it
(a crash at that exact point): the kill-and-resume tests of tests/engine share this."""

import signal
import subprocess

__all__ = ["run_until_killed"]


def run_until_killed(cmd, env) -> str:
    """Start ``cmd`` with ``env``, SIGKILL it at its ``READY-TO-KILL`` line, check that it died of
    that signal (not of an error before it), and return everything it printed."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.strip() == "READY-TO-KILL":
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "".join(lines[-50:])
    return "".join(lines)
