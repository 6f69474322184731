"""Real loopback servers for tests: the API under uvicorn, and a webhook receiver."""

from __future__ import annotations

import queue
import threading
import time
from contextlib import contextmanager
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


class Receiver:
    """A loopback webhook receiver answering scripted statuses (the last one repeats); each
    request is kept in ``requests`` and, with its arrival time, put on ``arrived``."""

    def __init__(self, *answers: int | tuple[int, dict[str, str]]):
        self.answers = list(answers)
        self.requests: list[tuple[Message, bytes]] = []  # (headers, body) as received
        self.arrived: queue.Queue = queue.Queue()  # (time.monotonic(), headers, body)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.headers, body))
                receiver.arrived.put((time.monotonic(), self.headers, body))
                answer = receiver.answers[min(len(receiver.requests), len(receiver.answers)) - 1]
                status, headers = answer if isinstance(answer, tuple) else (answer, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
