"""Run an ``earshot worker`` as a subprocess (shared by the benchmarks and the tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVICES = REPO / "deploy" / "local" / "services.sh"


def services_running() -> bool:
    return subprocess.run(["bash", str(SERVICES), "status"], capture_output=True).returncode == 0


def services_up() -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SERVICES), "up"], capture_output=True, text=True)


def ensure_services() -> None:
    """Start the local Kafka and Elasticsearch unless they run; a benchmark stops if they cannot."""
    if not services_running():
        result = services_up()
        if result.returncode != 0:
            raise SystemExit(f"services did not start:\n{result.stderr}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Worker:
    """An ``earshot worker`` (or ``earshot spikes``) subprocess with its log in a file; ready when
    Faust says "Ready"."""

    def __init__(self, env: dict[str, str], log_path: Path, command: str = "worker"):
        """``command``: ``worker`` (the mention worker) or ``spikes`` (the spike watcher)."""
        self.env = {**os.environ, **env}
        self.log_path = Path(log_path)
        self.command = command
        self.proc: subprocess.Popen | None = None

    @property
    def _web_port_variable(self) -> str:
        return "EARSHOT_WORKER_WEB_PORT" if self.command == "worker" else "EARSHOT_SPIKES_WEB_PORT"

    @property
    def metrics_url(self) -> str:
        """The process's Prometheus endpoint on its Faust web port (set at each start)."""
        return f"http://127.0.0.1:{self.env[self._web_port_variable]}/metrics"

    def start(self, timeout_s: float = 180) -> None:
        self.env[self._web_port_variable] = str(free_port())
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", self.command, "--loglevel", "info"],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}; {self.log_path}:\n{self.tail()}")
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                if b"Ready" in fh.read():
                    return
            time.sleep(0.5)
        raise RuntimeError(f"worker not ready after {timeout_s} s; {self.log_path}:\n{self.tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def drop_namespace(index_prefix: str, topic_prefixes: tuple[str, ...],
                   es_url: str = "http://127.0.0.1:9200", bootstrap: str = "127.0.0.1:9092") -> None:
    """Delete the indices and index templates named ``<index_prefix>*`` and the topics that
    start with any of ``topic_prefixes``: what a test session or benchmark run created."""
    import httpx
    from kafka.admin import KafkaAdminClient

    with httpx.Client(base_url=es_url, timeout=60) as es:
        es.delete(f"/{index_prefix}*")
        es.delete(f"/_index_template/{index_prefix}*")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        ours = [t for t in admin.list_topics() if t.startswith(topic_prefixes)]
        if ours:
            admin.delete_topics(ours)
    finally:
        admin.close()
