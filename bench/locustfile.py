"""Locust load for ``make bench-api`` (``bench/api.py`` runs it, one endpoint per run).

Ten closed-loop users (no think time: each sends its next request when the last one answered)
against one endpoint of the real API. Parameters vary per request, drawn from
``EARSHOT_BENCH_PARAMS`` (JSON written by ``bench/api.py``): brands from brands.yaml, search words
from the corpus vocabulary, ranges of 24 h / 7 d / 30 d at 1 h or 1 d buckets, ending at the
loaded data's last hour.

Every answer is recorded (completion time since the start, latency in ms, status, the
``X-Earshot-Source`` header) and written to ``EARSHOT_BENCH_OUT`` when the run ends;
``bench/api.py`` cuts the warm-up off and computes the percentiles from these samples.
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, urlencode

from locust import FastHttpUser, constant, events, task

PARAMS = json.loads(Path(os.environ["EARSHOT_BENCH_PARAMS"]).read_text())
OUT = Path(os.environ["EARSHOT_BENCH_OUT"])
ENDPOINT: str = PARAMS["endpoint"]
DATA_TO = datetime.fromisoformat(PARAMS["data_to"])  # a whole UTC hour: ranges end here
# (label, hours, interval): what a dashboard asks for most.
WINDOWS = [("24h", 24, "1h"), ("7d", 168, "1h"), ("7d", 168, "1d"), ("30d", 720, "1d")]
SAMPLES: list[tuple[float, float, int, str | None]] = []
STARTED = [time.time()]


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _window(rng: random.Random) -> dict[str, str]:
    _, hours, interval = rng.choice(WINDOWS)
    return {"from": _iso(DATA_TO - timedelta(hours=hours)), "to": _iso(DATA_TO), "interval": interval}


def search_path(rng: random.Random) -> str:
    words = PARAMS["words"]
    roll = rng.random()
    if roll < 0.6:
        q = rng.choice(words)
    elif roll < 0.85:
        q = f"{rng.choice(words)} {rng.choice(words)}"  # both words (default operator AND)
    else:
        q = f"{rng.choice(words)[:4]}*"  # prefix
    params = {"q": q}
    if rng.random() < 0.7:
        params["brand"] = rng.choice(PARAMS["brands"])
    if rng.random() < 0.2:
        params["sentiment"] = rng.choice(["negative", "neutral", "positive"])
    if rng.random() < 0.3:
        params["from"] = _iso(DATA_TO - timedelta(hours=rng.choice([24, 168])))
    return "/v1/mentions/search?" + urlencode(params)


def trend_path(rng: random.Random) -> str:
    return f"/v1/brands/{rng.choice(PARAMS['brands'])}/trend?" + urlencode(_window(rng))


def reputation_path(rng: random.Random) -> str:
    return f"/v1/brands/{rng.choice(PARAMS['brands'])}/reputation?" + urlencode(_window(rng))


def share_of_voice_path(rng: random.Random) -> str:
    group = rng.choice(PARAMS["brand_groups"])
    listed = rng.sample(group, k=rng.randint(min(2, len(group)), len(group)))
    return "/v1/competitors/share-of-voice?" + urlencode({"brands": ",".join(listed), **_window(rng)})


def emerging_topics_path(rng: random.Random) -> str:
    window, background = rng.choice([("6h", "7d"), ("24h", "7d"), ("1h", "1d")])
    return "/v1/market/emerging-topics?" + urlencode({"brand": rng.choice(PARAMS["brands"]), "window": window,
                                                     "background": background, "to": _iso(DATA_TO)})


def stories_path(rng: random.Random) -> str:
    hours = rng.choice([6, 24, 168])
    return f"/v1/brands/{rng.choice(PARAMS['brands'])}/stories?" + urlencode(
        {"from": _iso(DATA_TO - timedelta(hours=hours)), "to": _iso(DATA_TO)})


def similar_path(rng: random.Random) -> str:
    mention_id, brand = rng.choice(PARAMS["mentions"])
    params = {"brand": brand, "size": 10}
    if rng.random() < 0.5:
        params["from"] = _iso(DATA_TO - timedelta(hours=rng.choice([24, 168])))
    return f"/v1/mentions/{quote(mention_id, safe=':')}/similar?" + urlencode(params)


PATHS = {"search": search_path, "trend": trend_path, "reputation": reputation_path,
         "share_of_voice": share_of_voice_path, "emerging_topics": emerging_topics_path, "stories": stories_path,
         "similar": similar_path}


@events.test_start.add_listener
def _started(**_kwargs) -> None:
    STARTED[0] = time.time()


@events.request.add_listener
def _record(response_time, exception=None, response=None, **_kwargs) -> None:
    status = getattr(response, "status_code", 0) or 0
    if exception is not None and status == 200:
        status = -1  # answered 200 but failed otherwise (a broken body, say)
    source = response.headers.get("X-Earshot-Source") if response is not None and response.headers else None
    SAMPLES.append((time.time() - STARTED[0], float(response_time), int(status), source))


@events.quitting.add_listener
def _write(**_kwargs) -> None:
    OUT.write_text(json.dumps({"endpoint": ENDPOINT, "samples": SAMPLES}))


class ApiUser(FastHttpUser):
    wait_time = constant(0)
    network_timeout = 60.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.rng = random.Random()
        self.headers = {"Authorization": f"Bearer {os.environ['EARSHOT_BENCH_KEY']}"}

    @task
    def call(self) -> None:
        self.client.get(PATHS[ENDPOINT](self.rng), headers=self.headers, name=ENDPOINT)
