"""Shared fixtures: real local services, isolated names per test session, a real worker.

Tests marked ``services`` or ``e2e`` get the local Kafka and Elasticsearch, started by
``deploy/local/services.sh up`` if they are not running (and stopped again at the end if
this session started them). Every session uses its own topic prefix, index prefix and Faust
app id, so tests never read or clobber the data of ``make run``.
"""

from __future__ import annotations

import os
import subprocess
import uuid
import warnings

import pytest

from bench.harness import SERVICES, Worker, drop_namespace, services_running, services_up

RUN_ID = uuid.uuid4().hex[:8]


def pytest_addoption(parser):
    parser.addoption("--contention", action="store_true", default=bool(os.environ.get("EARSHOT_TEST_CONTENTION")),
                     help="keep every core busy with a CPU burner for the whole session (EARSHOT_TEST_CONTENTION=1): "
                          "start-up and shutdown races show on a busy machine, not an idle one")


def _burn() -> None:  # pragma: no cover - runs in the burner processes
    while True:
        pass


@pytest.fixture(scope="session", autouse=True)
def contention(request):
    """With ``--contention``: one busy-looping process per core (normal priority, like a user's
    other work) from the first test to the last."""
    if not request.config.getoption("contention"):
        yield 0
        return
    import multiprocessing

    burners = [multiprocessing.get_context("spawn").Process(target=_burn, daemon=True) for _ in range(os.cpu_count() or 2)]
    for burner in burners:
        burner.start()
    yield len(burners)
    for burner in burners:
        burner.terminate()
    for burner in burners:
        burner.join(10)


@pytest.fixture(scope="session")
def services():
    """Kafka on 127.0.0.1:9092 and Elasticsearch on 127.0.0.1:9200, up and healthy."""
    started_here = not services_running()
    if started_here:
        result = services_up()
        if result.returncode != 0:
            pytest.fail(f"local services did not come up:\n{result.stdout}\n{result.stderr}", pytrace=False)
    yield
    if started_here and not os.environ.get("EARSHOT_KEEP_SERVICES"):
        subprocess.run(["bash", str(SERVICES), "down"], capture_output=True)


def isolated_env(name: str) -> dict[str, str]:
    """EARSHOT_* variables for a namespace of this test session (cleaned up with it)."""
    return {
        "EARSHOT_TOPIC_PREFIX": f"test-{RUN_ID}{name}.",
        "EARSHOT_INDEX_PREFIX": f"test-{RUN_ID}{name}",
        "EARSHOT_APP_ID": f"earshot-test-{RUN_ID}{name}",
        "EARSHOT_INDEX_REFRESH_INTERVAL": "1s",
        "EARSHOT_KAFKA_SESSION_TIMEOUT_S": "10",  # a killed worker's partitions move on quickly
    }


@pytest.fixture(scope="session")
def test_env(services) -> dict[str, str]:
    """EARSHOT_* variables that isolate this test session's topics, indices and consumer groups."""
    env = isolated_env("")
    yield env
    # Leave nothing behind in the developer's services: this session's indices, template, topics.
    # A failed clean-up is reported, not turned into a test error.
    try:
        drop_namespace(f"test-{RUN_ID}", (f"test-{RUN_ID}", f"earshot-test-{RUN_ID}"))
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"test clean-up incomplete: {exc!r}", stacklevel=1)


@pytest.fixture(scope="session")
def settings(test_env):
    from pipeline.settings import Settings

    saved = {k: os.environ.get(k) for k in test_env}
    os.environ.update(test_env)
    try:
        yield Settings()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def worker(test_env, tmp_path_factory):
    w = Worker(test_env, tmp_path_factory.mktemp("worker") / "worker.log")
    w.start()
    yield w
    w.stop()


def create_api_key(settings, role: str, name: str | None = None, rate_per_minute: int | None = None) -> str:
    """A new API key (its text) stored in the keys index of ``settings``."""
    import asyncio
    from datetime import datetime, timezone

    from api.auth.keys import create_key
    from pipeline.store.mention_sink import make_es_client

    async def create() -> str:
        es = make_es_client(settings)
        try:
            _, key = await create_key(es, settings, role, name or f"test-{role}", datetime.now(timezone.utc),
                                      rate_per_minute=rate_per_minute)
            return key.text
        finally:
            await es.close()

    return asyncio.run(create())


@pytest.fixture(scope="session")
def api_keys(settings) -> dict[str, str]:
    """One API key per role (``api.auth.scopes.ROLES``) in this session's keys index: role -> key."""
    from api.auth.scopes import ROLES

    return {role: create_api_key(settings, role) for role in ROLES}


@pytest.fixture(scope="session")
def admin_headers(api_keys) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_keys['admin']}"}
