"""A live connector, as a real ``earshot connect`` process, resumes from its checkpoint.

A loopback server answers Reddit's documented OAuth token and listing formats (pages of 10 with
``after``); posts keep arriving between and during runs. The connector is stopped with SIGTERM
and, later, killed with SIGKILL; each restart goes on from the checkpoint. Afterwards
``mentions.raw`` holds every post (no gap), and each exactly once after the clean stops (after a
SIGKILL the last unsaved batch may be fetched again: the pipeline's ids make that harmless).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from bench.harness import REPO, free_port

pytestmark = [pytest.mark.services, pytest.mark.e2e]
PAGE = 10


class FakeReddit:
    """Posts ``t3_<n>``; ``/r/acme/new`` lists them newest first in pages of ``PAGE``."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def add(self, n: int) -> None:
        with self.lock:
            self.count += n

    def listing(self, after: str | None) -> dict:
        with self.lock:
            newest_first = list(range(self.count, 0, -1))
        if after:
            start = int(after.split("_")[1])
            newest_first = [n for n in newest_first if n < start]
        page = newest_first[:PAGE]
        children = [{"kind": "t3", "data": {
            "id": f"{n:06d}", "name": f"t3_{n:06d}", "title": f"Acme post {n}", "selftext": "the hinge cracked",
            "author": f"user{n}", "subreddit": "acme", "permalink": f"/r/acme/comments/{n:06d}/post/",
            "url": f"https://www.reddit.com/r/acme/comments/{n:06d}/post/", "created_utc": 1_790_000_000 + n,
            "score": n, "num_comments": 0, "num_crossposts": 0}} for n in page]
        more = len(newest_first) > PAGE
        return {"kind": "Listing", "data": {"after": f"t3_{page[-1]:06d}" if more else None, "before": None,
                                            "children": children}}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _json(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # the token endpoint
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._json({"access_token": "tok", "token_type": "bearer", "expires_in": 3600, "scope": "*"})

            def do_GET(self):
                url = urlparse(self.path)
                after = parse_qs(url.query).get("after", [None])[0]
                self._json(fake.listing(after))

        return Handler


def raw_ids(settings, expected: int, timeout_s: float = 60) -> list[str]:
    """Keys of the connector's records in mentions.raw once at least ``expected`` arrived."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(settings.topic_raw, bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=1000)
    ids: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ids += [m.key.decode() for m in consumer if m.key.decode().startswith("reddit:t3_")]
            if len(set(ids)) >= expected:
                time.sleep(1)
                ids += [m.key.decode() for m in consumer if m.key.decode().startswith("reddit:t3_")]
                return ids
    finally:
        consumer.close()
    raise AssertionError(f"only {len(set(ids))}/{expected} posts reached mentions.raw")


def test_connector_resumes_from_its_checkpoint_without_gap_or_duplicate(test_env, settings, tmp_path):
    fake = FakeReddit()
    fake.add(25)
    name = f"reddit-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, **test_env, "EARSHOT_REDDIT_CLIENT_ID": "id", "EARSHOT_REDDIT_CLIENT_SECRET": "secret",
           "EARSHOT_CHECKPOINT_DIR": str(tmp_path / "checkpoints")}
    command = [sys.executable, "-m", "cli.main", "connect", "reddit", "--subreddit", "acme", "--interval", "0.5",
               "--backfill-pages", "10", "--name", name, "--api-url", fake.url, "--auth-url", f"{fake.url}/api/v1/access_token"]

    def start():
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "log", "ab"))

    try:
        first = start()
        assert len(set(raw_ids(settings, 25))) == 25
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0, (tmp_path / "log").read_text()[-3000:]
        checkpoint = json.loads((tmp_path / "checkpoints" / f"{name}.json").read_text())
        assert "t3_000025" in json.dumps(checkpoint)

        fake.add(17)  # while it is down: must be caught up on restart, across pages
        second = start()
        assert len(set(raw_ids(settings, 42))) == 42
        fake.add(8)  # while it runs
        assert len(set(raw_ids(settings, 50))) == 50
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
        ids = raw_ids(settings, 50)
        assert Counter(ids) == Counter({f"reddit:t3_{n:06d}": 1 for n in range(1, 51)})  # none lost, none twice

        fake.add(12)
        third = start()
        raw_ids(settings, 55)
        third.kill()  # SIGKILL: no clean shutdown
        third.wait(30)
        fake.add(3)
        fourth = start()
        ids = raw_ids(settings, 65)
        fourth.send_signal(signal.SIGTERM)
        assert fourth.wait(30) == 0
        assert set(ids) == {f"reddit:t3_{n:06d}" for n in range(1, 66)}  # no gap after a hard kill either
        assert len(ids) - len(set(ids)) <= 12  # at most the one batch whose checkpoint was not saved
    finally:
        fake.server.shutdown()
