"""``earshot run``: earshot's long-running processes under one supervisor.

Each program (the mention worker, the spike watcher, the API, a connector) runs as a child in a
process group of its own, its output appended to its log file. A child that exits while nobody
asked it to is logged with how it ended (exit code or signal) and the last lines of its log,
then restarted after an exponential backoff. A run that lasted ``stable_s`` or more counts as
healthy and resets the crash count; ``max_crashes`` crashes in a row, each sooner than that,
mean a restart will not help: the supervisor says so loudly, stops everything and exits 1.
SIGINT or SIGTERM stops every child (SIGTERM to its group, SIGKILL after ``stop_timeout_s``) and
waits until each group is gone before returning.

Why not supervisord or honcho: supervisord backs off only for processes that fail within
``startsecs`` (a worker that crashes after two minutes is restarted at once, forever) and needs
a daemon and a config file; honcho stops everything when one process exits. The policy here is
the few lines ``RestartPolicy`` holds, tested on its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("earshot.run")


@dataclass(frozen=True)
class Program:
    """One supervised command: its name, argv, log file and extra environment."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a crashed program. Seconds throughout."""

    base_s: float = 1.0  # first restart delay; doubles with each crash in a row
    cap_s: float = 30.0  # longest restart delay
    stable_s: float = 60.0  # a run this long was healthy: the crash count starts again
    max_crashes: int = 5  # crashes in a row (each before stable_s) before giving up

    def after_exit(self, crashes: int, ran_s: float) -> tuple[int, float | None]:
        """The crash count after a program that had crashed ``crashes`` times in a row exited
        again after ``ran_s`` seconds, and the delay before its restart (None: give up). Pure."""
        crashes = 1 if ran_s >= self.stable_s else crashes + 1
        if crashes > self.max_crashes:
            return crashes, None
        return crashes, min(self.cap_s, self.base_s * 2 ** (crashes - 1))


def how_it_ended(returncode: int) -> str:
    """``exit code 3`` or ``killed by SIGKILL`` (asyncio gives -N for signal N)."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def log_tail(path: Path, lines: int = 15, max_bytes: int = 64 * 1024) -> str:
    """The last ``lines`` lines of a log file (its last ``max_bytes`` at most)."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - max_bytes))
            return "\n".join(deque(fh.read().decode("utf-8", "replace").splitlines(), maxlen=lines))
    except OSError:
        return ""


class Supervisor:
    """Keeps ``programs`` running until stopped; see the module docstring."""

    def __init__(self, programs: list[Program], policy: RestartPolicy = RestartPolicy(),
                 stop_timeout_s: float = 30.0):
        self.programs = programs
        self.policy = policy
        self.stop_timeout_s = stop_timeout_s
        self.children: dict[str, asyncio.subprocess.Process] = {}
        self.starts: dict[str, int] = {p.name: 0 for p in programs}
        self.gave_up: str | None = None
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> int:
        """Run until ``stop()``, SIGINT/SIGTERM or a program given up on; 0, or 1 if given up."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        keepers = [asyncio.create_task(self._keep(p), name=p.name) for p in self.programs]
        try:
            await self._stopping.wait()
        finally:
            await self._stop_all()
            for task in keepers:
                task.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return 1 if self.gave_up else 0

    async def _spawn(self, program: Program) -> asyncio.subprocess.Process:
        program.log_path.parent.mkdir(parents=True, exist_ok=True)
        with program.log_path.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *program.argv, stdout=out, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
                env={**os.environ, **program.env}, start_new_session=True)  # its own group: stopped whole
        self.starts[program.name] += 1
        log.info("%s started (pid %d, log %s)", program.name, proc.pid, program.log_path)
        return proc

    async def _keep(self, program: Program) -> None:
        crashes = 0
        while not self._stopping.is_set():
            proc = await self._spawn(program)
            self.children[program.name] = proc
            started = time.monotonic()
            returncode = await proc.wait()
            if self._stopping.is_set():
                return
            ran_s = time.monotonic() - started
            log.error("%s (pid %d) died after %.1f s: %s; last lines of %s:\n%s", program.name, proc.pid, ran_s,
                      how_it_ended(returncode), program.log_path, log_tail(program.log_path))
            crashes, delay = self.policy.after_exit(crashes, ran_s)
            if delay is None:
                log.critical("%s crashed %d times in a row, each within %.0f s of its start: giving up and "
                             "stopping everything; see %s", program.name, crashes, self.policy.stable_s,
                             program.log_path)
                self.gave_up = program.name
                self.stop()
                return
            log.warning("restarting %s in %.1f s (crash %d in a row, gives up after %d)", program.name, delay,
                        crashes, self.policy.max_crashes)
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
                return
            except asyncio.TimeoutError:
                pass

    async def _stop_all(self) -> None:
        """SIGTERM every child's group, SIGKILL what is left after ``stop_timeout_s``, and wait
        until every group is gone (a child's own children included)."""
        running = {name: p for name, p in self.children.items() if p.returncode is None}
        for name, proc in running.items():
            log.info("stopping %s (pid %d)", name, proc.pid)
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for name, proc in running.items():
            try:
                await asyncio.wait_for(proc.wait(), max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                log.warning("%s did not stop within %.0f s: SIGKILL", name, self.stop_timeout_s)
                _signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        for proc in self.children.values():  # whatever a child left behind in its group
            await _wait_group_gone(proc.pid, self.stop_timeout_s)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


async def _wait_group_gone(pgid: int, timeout_s: float) -> None:
    """Wait until no process of group ``pgid`` exists; SIGKILL the group if it outlives ``timeout_s``."""
    deadline, killed = time.monotonic() + timeout_s, False
    while True:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        if time.monotonic() > deadline:
            if killed:
                log.error("process group %d is still there after SIGKILL; leaving it", pgid)
                return
            _signal_group(pgid, signal.SIGKILL)
            deadline, killed = time.monotonic() + timeout_s, True
        await asyncio.sleep(0.1)
