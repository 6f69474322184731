"""The demo of ``make run`` shows a crisis: ``earshot demo`` publishes a week of history and a
crisis for United, the real worker and spike watcher raise an alert, and it reaches the dashboard
in a real Chromium, with its explanation.

Everything is what ``make run`` runs (``earshot demo`` with its defaults, ``earshot worker``,
``earshot spikes``, the API), in this test's own namespace. The time from the demo's start to the
alert on the page is printed (the demo's target is 3 minutes; a target is reported, not asserted).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from bench.harness import REPO, Worker
from pipeline.settings import Settings
from tests.conftest import create_api_key, isolated_env
from tests.e2e.test_dashboard import ARTIFACTS, CHROMIUM_ARGS, chromium  # noqa: F401 - the fixture
from tests.servers import serve

pytestmark = [pytest.mark.services, pytest.mark.e2e]


def test_the_demo_crisis_reaches_the_dashboard(test_env, chromium, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from api.main import create_app

    env = isolated_env(f"demo{uuid.uuid4().hex[:4]}")
    settings = Settings(**{k.removeprefix("EARSHOT_").lower(): v for k, v in env.items()})
    worker, watcher = Worker(env, tmp_path / "worker.log"), Worker(env, tmp_path / "spikes.log", "spikes")
    worker.start()
    watcher.start()
    key = create_api_key(settings, "admin", name="demo-test")
    demo_log = tmp_path / "demo.log"
    try:
        with serve(create_app(settings)) as base, sync_playwright() as pw, demo_log.open("ab") as out:
            started = time.monotonic()
            demo = subprocess.Popen([sys.executable, "-m", "cli.main", "demo", "--no-live"], cwd=REPO,
                                    env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(f"{base}/#key={key}")
                page.wait_for_selector("body[data-ready=true]", timeout=30_000)
                selector = "#alerts-list li.alert:has-text('united')"
                deadline = time.monotonic() + 700  # a loaded machine enriches slowly
                while page.locator(selector).count() == 0:
                    assert time.monotonic() < deadline, (
                        f"no alert on the dashboard after 700 s\n{demo_log.read_text()}\n{watcher.tail()}")
                    assert worker.alive() and watcher.alive(), watcher.tail() + worker.tail()
                    if demo.poll() not in (None, 0):
                        pytest.fail(f"earshot demo failed:\n{demo_log.read_text()}")
                    time.sleep(2)
                    if page.locator("#live-status[data-state=live]").count() == 0:
                        page.reload()  # the stream reconnects and refills; a reload is the user's way too
                        page.wait_for_selector("body[data-ready=true]", timeout=30_000)
                seconds = time.monotonic() - started
                print(f"the demo's crisis alert reached the dashboard {seconds:.0f} s after the demo started")
                # Other brands' alerts from the week of history are false alarms of the detector; shown, not failed.
                others = [t for t in page.locator("#alerts-list li.alert").all_inner_texts() if "united" not in t.lower()]
                print(f"other alerts on the page: {others}")
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "dashboard-demo-crisis.png"), full_page=True)
            finally:
                browser.close()
            assert demo.wait(600) == 0, demo_log.read_text()
        text = demo_log.read_text()
        assert "6000 posts of history" in text and "240 angry posts" in text, text
    finally:
        watcher.stop()
        worker.stop()
