import argparse
from datetime import datetime, timedelta, timezone

import pytest

from cli.main import build_parser, parse_start


def test_start_accepts_iso_and_relative_times():
    assert parse_start("2026-11-24T10:00:00Z") == datetime(2026, 11, 24, 10, tzinfo=timezone.utc)
    assert parse_start("2026-11-24T10:00:00") == datetime(2026, 11, 24, 10, tzinfo=timezone.utc)
    start = parse_start("-2h")
    assert abs(start - (datetime.now(timezone.utc) - timedelta(hours=2))) < timedelta(seconds=5)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_start("yesterday")


def test_replay_options_are_validated():
    parser = build_parser()
    args = parser.parse_args(["replay", "--rate", "50", "--limit", "10"])
    assert args.rate == 50 and args.limit == 10 and args.file is None
    with pytest.raises(SystemExit):
        parser.parse_args(["replay", "--rate", "0"])
