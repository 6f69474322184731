"""``earshot run`` on real Kafka: a worker killed with SIGKILL is logged and restarted, and a
SIGTERM to the supervisor stops the worker and the spike watcher and waits for them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.harness import REPO, free_port
from tests.conftest import isolated_env

pytestmark = [pytest.mark.services, pytest.mark.e2e]


def wait_for(predicate, timeout_s: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        assert proc.poll() is None, f"the supervisor exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen after {timeout_s} s:\n{log.read_text()[-3000:]}")


def started_pids(log: Path, name: str) -> list[int]:
    return [int(m) for m in re.findall(rf"{name} started \(pid (\d+)", log.read_text())]


def test_a_killed_worker_is_restarted_and_a_stop_stops_everything(test_env, tmp_path):
    env = {**os.environ, **isolated_env("sup"), "EARSHOT_LOG_FORMAT": "text",
           "EARSHOT_WORKER_WEB_PORT": str(free_port()), "EARSHOT_SPIKES_WEB_PORT": str(free_port())}
    logs, run_log = tmp_path / "logs", tmp_path / "run.log"
    with run_log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", "run", "--no-api", "--logs", str(logs)],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ready = lambda name: (logs / f"{name}.log").exists() and b"Ready" in (logs / f"{name}.log").read_bytes()  # noqa: E731
        wait_for(lambda: ready("worker") and ready("spikes"), 240, "worker and spikes Ready", proc, run_log)
        first = started_pids(run_log, "worker")[0]
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: len(started_pids(run_log, "worker")) == 2, 60, "a second worker start", proc, run_log)
        text = run_log.read_text()
        assert f"worker (pid {first}) died after" in text and "killed by SIGKILL" in text
        second = started_pids(run_log, "worker")[1]
        assert second != first
        wait_for(lambda: (logs / "worker.log").read_bytes().count(b"Ready") >= 2, 240, "the restarted worker Ready",
                 proc, run_log)
        spikes = started_pids(run_log, "spikes")[0]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0, run_log.read_text()[-3000:]
        for pid in (second, spikes):
            assert not os.path.exists(f"/proc/{pid}"), f"pid {pid} outlived the supervisor"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for pid in started_pids(run_log, "worker") + started_pids(run_log, "spikes"):  # after a failure
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
