"""HTTP for connectors: polite to the platform, stubborn about getting the data.

``PoliteClient`` wraps an ``httpx.AsyncClient`` and
- waits as long as a ``429`` asks (``Retry-After`` in seconds or as an HTTP date, else the
  rate-limit reset header, else exponential backoff),
- stops before the quota runs out: when ``x-ratelimit-remaining`` (Reddit, Mastodon) or
  ``x-rate-limit-remaining`` (X) reaches 0 it sleeps until the matching reset header
  (seconds from now on Reddit, unix seconds on X, an ISO date on Mastodon),
- retries network errors, 408 and 5xx with exponential backoff and full jitter,
- gives up at once on other 4xx (a wrong token or URL will not fix itself: ``SourceError``),
- counts what it did (``Counters``), for logs and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import httpx

from pipeline.worker.retry import backoff_delay
from pipeline.alerts.webhooks import retry_after_s

log = logging.getLogger(__name__)

REMAINING_HEADERS = ("x-ratelimit-remaining", "x-rate-limit-remaining")
RESET_HEADERS = ("x-ratelimit-reset", "x-rate-limit-reset")


class SourceError(RuntimeError):
    """A request the platform refuses for good (bad credentials, unknown resource, bad query)."""

    def __init__(self, status: int, url: str, body: str):
        super().__init__(f"HTTP {status} from {url}: {body[:300]}")
        self.status = status


@dataclass
class Counters:
    """What one connector did since it started (monotonic counts)."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429s received
    throttled_s: float = 0.0  # seconds spent waiting for quota (429 or remaining = 0)
    errors: int = 0  # failed attempts (network, 408, 5xx)
    reconnects: int = 0  # streams re-opened
    published: int = 0
    deleted: int = 0  # deletion notices published
    dead_lettered: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reset_delay_s(value: str | None, now: float) -> float | None:
    """Seconds until a rate-limit window resets, from a reset header's value.

    Platforms disagree on the unit: seconds from now (Reddit: ``"412"``), unix seconds (X:
    ``"1700000000"``), or an ISO date (Mastodon: ``"2026-11-24T12:00:00.000Z"``).
    """
    if not value:
        return None
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, when.timestamp() - now)
    if number > 1e9:  # an absolute unix time
        return max(0.0, number - now)
    return max(0.0, number)


def _header(response: httpx.Response, names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in response.headers:
            return response.headers[name]
    return None


def quota_wait_s(response: httpx.Response, now: float) -> float | None:
    """How long to pause before the next request because the quota is spent, or None."""
    remaining = _header(response, REMAINING_HEADERS)
    try:
        spent = remaining is not None and float(remaining) <= 0
    except ValueError:
        spent = False
    if not spent:
        return None
    return reset_delay_s(_header(response, RESET_HEADERS), now)


class PoliteClient:
    """Requests with the platform's rate limits honoured and transient failures retried.

    ``max_wait_s`` caps any single wait a platform asks for (a bogus header cannot park the
    connector for a day); ``sleep`` is injectable so tests need not wait.
    """

    def __init__(self, client: httpx.AsyncClient, *, counters: Counters | None = None,
                 backoff_base_s: float = 1.0, backoff_cap_s: float = 300.0, max_wait_s: float = 900.0,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep):
        self.client = client
        self.counters = counters or Counters()
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self._ready_at = 0.0  # monotonic time before which no request is sent (quota spent)

    async def _pause(self, seconds: float, why: str) -> None:
        seconds = min(max(seconds, 0.0), self.max_wait_s)
        if seconds > 0:
            log.info("waiting %.1f s: %s", seconds, why)
            await self.sleep(seconds)

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A response with status < 400 (incl. 304), retrying until there is one.

        Raises ``SourceError`` for a 4xx other than 408/429.
        """
        attempt = 0
        while True:
            wait = self._ready_at - time.monotonic()
            if wait > 0:
                self.counters.throttled_s += wait
                await self._pause(wait, "rate-limit quota spent")
            self.counters.requests += 1
            try:
                response = await self.client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                attempt += 1
                self.counters.errors += 1
                self.counters.retries += 1
                await self._pause(self._backoff(attempt), f"{method} {url} failed: {exc!r}")
                continue
            now = time.time()
            if response.status_code == 429:
                attempt += 1
                self.counters.rate_limited += 1
                self.counters.retries += 1
                wait = retry_after_s(response.headers.get("retry-after"), datetime.now(timezone.utc))
                if wait is None:
                    wait = reset_delay_s(_header(response, RESET_HEADERS), now)
                if wait is None:
                    wait = self._backoff(attempt)
                self.counters.throttled_s += wait
                await self._pause(wait, f"429 from {url}")
                continue
            if response.status_code == 408 or response.status_code >= 500:
                attempt += 1
                self.counters.errors += 1
                self.counters.retries += 1
                await self._pause(self._backoff(attempt), f"HTTP {response.status_code} from {url}")
                continue
            if response.status_code >= 400:
                raise SourceError(response.status_code, url, response.text)
            quota = quota_wait_s(response, now)
            if quota:
                self._ready_at = time.monotonic() + min(quota, self.max_wait_s)
            return response

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, base_s=self.backoff_base_s, cap_s=self.backoff_cap_s)

    async def get_json(self, url: str, **kwargs: Any) -> Any:
        response = await self.request("GET", url, **kwargs)
        return response.json()
