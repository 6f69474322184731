"""Real loopback servers for tests: the API under uvicorn, and a webhook receiver."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import uvicorn

from bench.harness import free_port


@contextmanager
def serve(app):
    """The app under a real uvicorn server on a free loopback port, in a thread."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(15)
