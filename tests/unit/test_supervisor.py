"""``earshot run``'s supervisor: the restart policy (pure), and real child processes that crash,
hang or leave children behind."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from cli.supervisor import Program, RestartPolicy, Supervisor, how_it_ended, log_tail


def test_backoff_doubles_up_to_the_cap_and_a_stable_run_resets_it():
    policy = RestartPolicy(base_s=1, cap_s=5, stable_s=60, max_crashes=10)
    crashes, delays = 0, []
    for _ in range(5):
        crashes, delay = policy.after_exit(crashes, ran_s=2)
        delays.append(delay)
    assert delays == [1, 2, 4, 5, 5]
    assert policy.after_exit(crashes, ran_s=61) == (1, 1)  # healthy for a minute: start again


def test_it_gives_up_after_max_crashes_in_a_row():
    policy = RestartPolicy(max_crashes=3, stable_s=60)
    crashes = 0
    outcomes = []
    for _ in range(4):
        crashes, delay = policy.after_exit(crashes, ran_s=1)
        outcomes.append(delay is None)
    assert outcomes == [False, False, False, True]


def test_how_a_process_ended():
    assert how_it_ended(3) == "exit code 3"
    assert how_it_ended(-signal.SIGKILL) == "killed by SIGKILL"


def test_log_tail(tmp_path: Path):
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, lines=2) == "line 98\nline 99"
    assert log_tail(tmp_path / "missing.log") == ""


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_crashing_program_is_restarted_then_given_up_on_loudly(tmp_path: Path, caplog):
    crashing = Program("crasher", python("import sys; print('boom', flush=True); sys.exit(3)"), tmp_path / "c.log")
    steady = Program("steady", python("import time; time.sleep(60)"), tmp_path / "s.log")
    sup = Supervisor([crashing, steady], RestartPolicy(base_s=0.05, cap_s=0.1, max_crashes=3), stop_timeout_s=5)
    started = time.monotonic()
    with caplog.at_level("INFO", logger="earshot.run"):
        assert asyncio.run(sup.run()) == 1
    assert time.monotonic() - started < 20
    assert sup.gave_up == "crasher" and sup.starts == {"crasher": 4, "steady": 1}
    assert "exit code 3" in caplog.text and "boom" in caplog.text  # why it died, from its log
    assert "giving up" in caplog.text
    assert sup.children["steady"].returncode is not None  # everything else was stopped


def test_a_stop_ends_every_group_and_a_child_that_ignores_sigterm_is_killed(tmp_path: Path):
    # A child that ignores SIGTERM and leaves a grandchild of its own: both must be gone.
    code = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
            "print(p.pid, flush=True); time.sleep(120)")
    stubborn = Program("stubborn", python(code), tmp_path / "stubborn.log")

    async def scenario() -> tuple[int, int]:
        sup = Supervisor([stubborn], stop_timeout_s=1)
        task = asyncio.create_task(sup.run())
        while not (tmp_path / "stubborn.log").exists() or not (tmp_path / "stubborn.log").read_text().strip():
            await asyncio.sleep(0.05)
        grandchild = int((tmp_path / "stubborn.log").read_text().split()[0])
        sup.stop()
        return await task, grandchild

    rc, grandchild = asyncio.run(scenario())
    assert rc == 0
    time.sleep(0.2)
    assert not os.path.exists(f"/proc/{grandchild}") or "Z" in Path(f"/proc/{grandchild}/stat").read_text().split()[2]


def test_a_killed_program_comes_back(tmp_path: Path):
    sleeper = Program("sleeper", python("import time; time.sleep(120)"), tmp_path / "z.log")

    async def scenario() -> dict[str, int]:
        sup = Supervisor([sleeper], RestartPolicy(base_s=0.05), stop_timeout_s=5)
        task = asyncio.create_task(sup.run())
        while "sleeper" not in sup.children:
            await asyncio.sleep(0.02)
        first = sup.children["sleeper"]
        os.kill(first.pid, signal.SIGKILL)
        while sup.children["sleeper"] is first:
            await asyncio.sleep(0.02)
        sup.stop()
        await task
        return sup.starts

    assert asyncio.run(scenario()) == {"sleeper": 2}
