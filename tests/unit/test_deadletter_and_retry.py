import base64
import random
from datetime import datetime, timezone

import pytest

import json

from pipeline.worker.dead_letters import MAX_PAYLOAD_BYTES, MAX_RECORD_BYTES, dead_letter, encode_dead_letter
from pipeline.worker.retry import backoff_delay

NOW = datetime(2026, 11, 24, tzinfo=timezone.utc)


def test_dead_letter_keeps_utf8_payload_as_text_and_binary_as_base64():
    text = dead_letter(stage="validate", reason="r", payload=b'{"a": "\xc3\xa9"}', failed_at=NOW, offset=3)
    assert text["payload"] == '{"a": "é"}' and text["payload_encoding"] == "utf-8" and text["offset"] == 3
    binary = dead_letter(stage="validate", reason="r", payload=b"\xff\x00", failed_at=NOW)
    assert base64.b64decode(binary["payload"]) == b"\xff\x00" and binary["payload_encoding"] == "base64"


def test_dead_letter_truncates_huge_payloads_and_says_so():
    letter = dead_letter(stage="validate", reason="r", payload=b"a" * (MAX_PAYLOAD_BYTES + 10), failed_at=NOW)
    assert letter["payload_truncated"] is True and letter["payload_bytes"] == MAX_PAYLOAD_BYTES + 10
    assert len(letter["payload"]) == MAX_PAYLOAD_BYTES


def test_backoff_grows_exponentially_and_is_capped():
    rng = random.Random(1)
    ceilings = [max(backoff_delay(a, base_s=1, cap_s=8, rng=rng) for _ in range(500)) for a in (1, 2, 3, 4, 6)]
    assert ceilings[0] <= 1 and 1 < ceilings[1] <= 2 and 2 < ceilings[2] <= 4 and 4 < ceilings[3] <= 8
    assert ceilings[4] <= 8
    with pytest.raises(ValueError):
        backoff_delay(0)


def test_encoded_dead_letter_fits_a_kafka_message_even_when_escaping_inflates_it():
    # Control characters escape to six bytes each in JSON: 512 KiB of them would be ~3 MB.
    letter = dead_letter(stage="validate", reason="r", payload=b"\x01" * MAX_PAYLOAD_BYTES, failed_at=NOW)
    encoded = encode_dead_letter(letter)
    assert len(encoded) <= MAX_RECORD_BYTES
    decoded = json.loads(encoded)
    assert decoded["payload_truncated"] is True and decoded["reason"] == "r" and decoded["payload"]
    small = dead_letter(stage="validate", reason="r", payload=b"{}", failed_at=NOW)
    assert json.loads(encode_dead_letter(small)) == small


def test_retry_until_done_retries_failures_and_returns_the_result():
    import asyncio

    from pipeline.worker.retry import retry_until_done

    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return "done"

    assert asyncio.run(retry_until_done(flaky, what="flaky", cap_s=0.001)) == "done"
    assert len(calls) == 3
