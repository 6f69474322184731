"""Webhook delivery: the registered hooks (from Elasticsearch) and signed POSTs with retries.

A delivery is retried on network errors, 429 (after the ``Retry-After`` it asks for, up to
``RETRY_CAP_S``) and 5xx, with exponential backoff and full jitter; any other status is final.
A hook still failing after ``settings.webhook_max_attempts`` becomes a dead letter. Delivery is
at-least-once: receivers de-duplicate on ``X-Earshot-Delivery`` (``<alert id>:<version>``).

Hook URLs and secrets are never logged (a Slack webhook URL is itself a credential): log lines
name the hook by id.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx
from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, AsyncElasticsearch

from pipeline.worker.dead_letters import dead_letter
from pipeline.metrics import WEBHOOK_FAILURES
from pipeline.settings import Settings
from pipeline.alerts.webhooks import (SIGNATURE_HEADER, DigestBook, Webhook, backoff_delays, digest_payload, payload,
                                     retry_after_s, route, sign)

log = logging.getLogger(__name__)
RETRY_CAP_S = 60.0  # longest wait between two attempts, s (also caps a server's Retry-After)
MAX_HOOKS = 1000  # registrations read per reload; an admin-managed list, far below this
USER_AGENT = "earshot-webhooks/0.1"


class WebhookRegistry:
    """The registered hooks, re-read from Elasticsearch at most every ``ttl_s`` seconds, so a new
    registration (or a deletion) applies within that time without a restart."""

    def __init__(self, es: AsyncElasticsearch, settings: Settings, ttl_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.es = es
        self.settings = settings
        self.ttl_s = ttl_s
        self.clock = clock
        self._hooks: list[Webhook] | None = None
        self._loaded_at = 0.0

    async def hooks(self) -> list[Webhook]:
        """The current hooks. If a reload fails, the last ones loaded (and a warning); if none
        were ever loaded, the error."""
        now = self.clock()
        if self._hooks is not None and now - self._loaded_at < self.ttl_s:
            return self._hooks
        try:
            response = await self.es.search(index=self.settings.webhooks_index, size=MAX_HOOKS,
                                            sort=[{"created_at": "asc"}], ignore_unavailable=True,
                                            allow_no_indices=True)
        except (ESConnectionError, ConnectionTimeout, ApiError) as exc:
            if self._hooks is None:
                raise
            log.warning("reloading webhooks failed (%s); keeping the %d loaded before", exc, len(self._hooks))
            self._loaded_at = now  # try again after another ttl, not on every alert
            return self._hooks
        self._hooks = [Webhook(**hit["_source"]) for hit in response["hits"]["hits"]]
        self._loaded_at = now
        return self._hooks


@dataclass(frozen=True)
class _Attempt:
    delivered: bool
    retryable: bool
    why: str = ""
    retry_after_s: float | None = None


async def deliver(
    alert_doc: dict[str, Any],
    hooks: list[Webhook],
    client: httpx.AsyncClient,
    settings: Settings,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    rng: random.Random | None = None,
    digests: DigestBook | None = None,
) -> list[dict[str, Any]]:
    """POST ``alert_doc`` to every hook it pages (``webhooks.route``), concurrently, each with
    its retries; hooks it does not page but lists in their digest are noted in ``digests``.

    Nothing below ``settings.alert_min_severity`` goes anywhere. Returns one dead letter (stage
    ``webhook``, payload ``{"webhook_id", "url", "alert"}``) per hook that still failed after
    ``settings.webhook_max_attempts`` attempts or got a final status; [] when all succeeded.
    """
    floor = settings.alert_min_severity
    paged = [hook for hook in hooks
             if (digests.note(hook, alert_doc, floor) if digests is not None else route(hook, alert_doc, floor)) == "page"]
    outcomes = await asyncio.gather(*(
        _deliver_to(hook, payload(alert_doc, hook.format), f"{alert_doc['id']}:{alert_doc['version']}",
                    {"webhook_id": hook.id, "url": hook.url, "alert": alert_doc}, client, settings, sleep, rng)
        for hook in paged))
    return [letter for letter in outcomes if letter is not None]


async def deliver_digests(
    due: dict[str, list[dict[str, Any]]],
    hooks: list[Webhook],
    start: datetime,
    end: datetime,
    client: httpx.AsyncClient,
    settings: Settings,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> list[dict[str, Any]]:
    """POST each hook its digest (``DigestBook.take()``) of the period ``start``..``end``, signed
    and retried like an alert (``X-Earshot-Delivery: digest:<hook id>:<end, unix s>``); dead
    letters (payload ``{"webhook_id", "url", "digest"}``) for those that failed."""
    by_id = {hook.id: hook for hook in hooks}
    outcomes = await asyncio.gather(*(
        _deliver_to(by_id[hook_id], digest_payload(entries, start, end, by_id[hook_id].format),
                    f"digest:{hook_id}:{int(end.timestamp())}",
                    {"webhook_id": hook_id, "url": by_id[hook_id].url, "digest": entries}, client, settings, sleep, rng)
        for hook_id, entries in due.items() if hook_id in by_id))  # a hook deleted meanwhile: dropped
    return [letter for letter in outcomes if letter is not None]


async def _deliver_to(hook: Webhook, body: bytes, delivery: str, letter: dict[str, Any], client: httpx.AsyncClient,
                      settings: Settings, sleep: Callable[[float], Awaitable[Any]],
                      rng: random.Random | None) -> dict[str, Any] | None:
    """Deliver ``body`` to one hook: None when delivered, else its dead letter (``letter`` as payload)."""
    delays = backoff_delays(settings.webhook_max_attempts, settings.webhook_backoff_s, RETRY_CAP_S, rng)
    attempt = 0
    while True:
        attempt += 1
        outcome = await _post(client, hook, body, delivery, settings.webhook_timeout_s)
        if outcome.delivered:
            if attempt > 1:
                log.info("webhook %s: delivery %s succeeded on attempt %d", hook.id, delivery, attempt)
            return None
        final = not outcome.retryable or attempt == settings.webhook_max_attempts
        WEBHOOK_FAILURES.labels("true" if final else "false").inc()
        log.warning("webhook %s: delivery %s attempt %d/%d failed: %s%s", hook.id, delivery, attempt,
                    settings.webhook_max_attempts, outcome.why, " (giving up)" if final else "")
        if final:
            reason = f"webhook {hook.id}: {attempt} attempt(s) failed; last: {outcome.why}"
            return dead_letter(stage="webhook", reason=reason, failed_at=datetime.now(timezone.utc), payload=letter)
        await sleep(delays[attempt - 1] if outcome.retry_after_s is None else min(outcome.retry_after_s, RETRY_CAP_S))


async def _post(client: httpx.AsyncClient, hook: Webhook, body: bytes, delivery: str, timeout_s: float) -> _Attempt:
    """One signed POST (signed at send time, so retries stay within the receiver's tolerance)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(hook.secret, int(time.time()), body),
        "X-Earshot-Webhook-Id": hook.id,
        "X-Earshot-Delivery": delivery,
    }
    try:
        response = await client.post(hook.url, content=body, headers=headers, timeout=timeout_s)
    except httpx.TransportError as exc:  # refused, reset, timed out, TLS: the receiver may come back
        return _Attempt(False, True, f"{type(exc).__name__}: {exc}"[:300])
    if response.is_success:
        return _Attempt(True, False)
    why = f"HTTP {response.status_code}"
    if response.status_code == 429 or response.status_code >= 500:
        wait = retry_after_s(response.headers.get("Retry-After"), datetime.now(timezone.utc))
        return _Attempt(False, True, why, wait)
    return _Attempt(False, False, why)  # another 4xx (or a redirect): trying again will not help
