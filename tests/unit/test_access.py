"""The pure parts of access control: roles and scopes, key format, token bucket, key cache,
secret files, audit entries."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timezone

import pytest
from elastic_transport import ConnectionError as ESConnectionError

from api.auth.scopes import (ADMIN, ALERTS_WRITE, AUDIT_READ, INGEST_WRITE, MENTIONS_READ, QUERIES_ADMIN, ROLE_SCOPES,
                        ROLES, SCOPES, WEBHOOKS_ADMIN, allows, hash_secret, new_key, parse_key, secret_matches,
                        scopes_for)
from api.audit import audit_entry, outcome
from api.auth.keys import KeyStore
from api.auth.ratelimit import RateLimiter, TokenBucket
from pipeline.secret_files import InsecureSecretFile, check_secret_file
from pipeline.settings import Settings

T0 = datetime(2026, 11, 24, tzinfo=timezone.utc)


# -- roles and scopes ----------------------------------------------------------------------------

def test_every_role_is_known_and_grants_only_known_scopes():
    assert set(ROLES) == {"comms", "crisis", "ir", "data", "care", "admin"}
    for role, scopes in ROLE_SCOPES.items():
        assert scopes <= set(SCOPES), role
        assert MENTIONS_READ in scopes, role  # every team reads mentions
    assert scopes_for("admin") == frozenset(SCOPES)


@pytest.mark.parametrize("role, scope, allowed", [
    ("comms", "trends:read", True), ("comms", ALERTS_WRITE, False), ("comms", QUERIES_ADMIN, False),
    ("crisis", ALERTS_WRITE, True), ("crisis", WEBHOOKS_ADMIN, True), ("crisis", "queries:read", False),
    ("ir", "ir:read", True), ("ir", "alerts:read", False),
    ("data", INGEST_WRITE, True), ("data", "feed:read", True), ("data", WEBHOOKS_ADMIN, False),
    ("care", "triage:write", True), ("care", "trends:read", False),
    ("admin", AUDIT_READ, True), ("admin", ADMIN, True), ("crisis", ADMIN, False),
    ("nobody", MENTIONS_READ, False),  # an unknown role (a newer record, say) grants nothing
])
def test_role_scope_table(role, scope, allowed):
    assert allows(role, scope) is allowed


def test_only_admin_reads_the_audit_log_and_administers_keys():
    assert [r for r in ROLES if allows(r, AUDIT_READ)] == ["admin"]
    assert [r for r in ROLES if allows(r, "keys:admin")] == ["admin"]


# -- key format ----------------------------------------------------------------------------------

def test_a_new_key_parses_back_and_only_its_secret_matches_the_stored_hash():
    key = new_key()
    assert key.text.startswith("esk_") and len(key.secret) >= 43  # 32 random bytes
    assert parse_key(key.text) == (key.key_id, key.secret)
    assert parse_key(f"  {key.text}\n") == (key.key_id, key.secret)
    stored = hash_secret(key.secret)
    assert len(stored) == 64 and key.secret not in stored
    assert secret_matches(key.secret, stored)
    assert not secret_matches(key.secret[:-1] + ("A" if key.secret[-1] != "A" else "B"), stored)
    assert new_key().key_id != key.key_id


@pytest.mark.parametrize("text", [
    "", "esk_", "esk_0123456789abcdef", "esk_0123456789abcdef_short", "esk_0123456789ABCDEF_" + "x" * 43,
    "esk_0123_" + "x" * 43, "sk_0123456789abcdef_" + "x" * 43, "esk_0123456789abcdef_" + "x" * 42 + "!",
    "esk_0123456789abcdef_" + "x" * 200, "Bearer esk_0123456789abcdef_" + "x" * 43,
])
def test_malformed_keys_do_not_parse(text):
    assert parse_key(text) is None


# -- rate limit ----------------------------------------------------------------------------------

def test_token_bucket_allows_a_burst_of_its_rate_then_one_per_interval():
    bucket = TokenBucket.per_minute(6, now=0.0)  # one token every 10 s, 6 at most
    assert [bucket.take(0.0) for _ in range(6)] == [0.0] * 6
    assert bucket.take(0.0) == pytest.approx(10.0)
    assert bucket.take(4.0) == pytest.approx(6.0)  # nothing taken while waiting
    assert bucket.take(10.0) == 0.0
    assert bucket.take(10.0) == pytest.approx(10.0)
    assert [bucket.take(1000.0) for _ in range(7)][-1] > 0  # idle time refills to capacity, no more


def test_rate_limiter_keeps_one_bucket_per_key_and_follows_a_changed_rate():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.wait_s("a", 2) for _ in range(3)] == [0.0, 0.0, pytest.approx(30.0)]
    assert limiter.wait_s("b", 2) == 0.0  # another key, its own bucket
    assert limiter.wait_s("a", 120) == 0.0  # the key's rate was raised: a fresh bucket
    now[0] = 30.0
    assert limiter.wait_s("a", 120) == 0.0


# -- key cache -----------------------------------------------------------------------------------

class FakeES:
    """``options(...).get(...)`` of the ES client over a dict, counting reads; ``down`` raises."""

    def __init__(self, docs):
        self.docs, self.reads, self.down = docs, 0, False

    def options(self, **_):
        return self

    async def get(self, index, id):
        self.reads += 1
        await asyncio.sleep(0.01)
        if self.down:
            raise ESConnectionError("refused")
        return {"found": True, "_source": self.docs[id]} if id in self.docs else {"found": False}


def record(key_id="0123456789abcdef", revoked=None):
    return {"key_id": key_id, "name": "n", "role": "comms", "secret_sha256": hash_secret("s" * 43),
            "created_at": T0.isoformat(), "revoked_at": revoked}


def test_key_store_reads_es_once_per_ttl_and_shares_concurrent_reads():
    now = [0.0]
    es = FakeES({"0123456789abcdef": record()})
    store = KeyStore(es, Settings(), ttl_s=10, clock=lambda: now[0])

    async def go():
        found = await asyncio.gather(*(store.find("0123456789abcdef") for _ in range(20)))
        assert es.reads == 1 and all(r.role == "comms" for r in found)
        assert await store.find("ffffffffffffffff") is None and es.reads == 2
        assert await store.find("ffffffffffffffff") is None and es.reads == 2  # absence is cached too
        es.docs["0123456789abcdef"] = record(revoked=T0.isoformat())
        now[0] = 9.9
        assert (await store.find("0123456789abcdef")).active  # still cached
        now[0] = 10.0
        assert not (await store.find("0123456789abcdef")).active  # the revocation is seen after the TTL

    asyncio.run(go())


def test_key_store_uses_a_recent_record_while_es_is_down_but_not_an_old_one():
    now = [0.0]
    es = FakeES({"0123456789abcdef": record()})
    store = KeyStore(es, Settings(), ttl_s=10, clock=lambda: now[0])

    async def go():
        await store.find("0123456789abcdef")
        es.down = True
        now[0] = 60.0
        assert (await store.find("0123456789abcdef")).role == "comms"
        now[0] = 1000.0
        with pytest.raises(ESConnectionError):
            await store.find("0123456789abcdef")

    asyncio.run(go())


# -- secret files --------------------------------------------------------------------------------

def test_secret_files_must_be_private(tmp_path):
    secret = tmp_path / "ingest_secret"
    secret.write_text("s3cret-from-a-file\n")
    for mode in (0o644, 0o640, 0o604, 0o660):
        os.chmod(secret, mode)
        with pytest.raises(InsecureSecretFile, match="chmod 600"):
            check_secret_file(secret)
    for mode in (0o600, 0o400):
        os.chmod(secret, mode)
        check_secret_file(secret)
    with pytest.raises(InsecureSecretFile, match="regular file"):
        check_secret_file(tmp_path)


def test_settings_read_secrets_from_a_private_folder_or_named_file_and_refuse_open_ones(tmp_path, monkeypatch):
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "ingest_secret").write_text("from-the-folder\n")
    os.chmod(folder / "ingest_secret", 0o600)
    (folder / "EARSHOT_BOOTSTRAP_ADMIN_KEY").write_text("admin-key-from-the-folder")
    os.chmod(folder / "EARSHOT_BOOTSTRAP_ADMIN_KEY", 0o400)
    monkeypatch.setenv("EARSHOT_SECRETS_DIR", str(folder))
    for name in ("EARSHOT_INGEST_SECRET", "EARSHOT_BOOTSTRAP_ADMIN_KEY", "EARSHOT_ES_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.ingest_secret.get_secret_value() == "from-the-folder"
    assert settings.bootstrap_admin_key.get_secret_value() == "admin-key-from-the-folder"
    assert "from-the-folder" not in repr(settings)

    named = tmp_path / "es-password"
    named.write_text("pw")
    os.chmod(named, 0o600)
    monkeypatch.setenv("EARSHOT_ES_PASSWORD_FILE", str(named))
    assert Settings().es_password == "pw"
    monkeypatch.setenv("EARSHOT_INGEST_SECRET", "from-the-environment")
    assert Settings().ingest_secret.get_secret_value() == "from-the-environment"  # the environment wins

    os.chmod(named, 0o644)
    with pytest.raises(InsecureSecretFile, match="es-password"):
        Settings()


# -- audit entries -------------------------------------------------------------------------------

def test_audit_entries_say_who_what_and_how_it_ended():
    from api.auth.guard import Principal

    who = Principal("0123456789abcdef", "dashboard", "comms", None, "key")
    entry = audit_entry(time=T0, method="POST", route="/v1/alerts/{alert_id}/ack", path="/v1/alerts/x/ack",
                        status=403, client_ip="10.0.0.1", principal=who, action={"path_params": {"alert_id": "x"}})
    assert entry["key_id"] == "0123456789abcdef" and entry["key_name"] == "dashboard" and entry["role"] == "comms"
    assert entry["outcome"] == "forbidden" and entry["route"] == "/v1/alerts/{alert_id}/ack"
    assert entry["action"] == {"path_params": {"alert_id": "x"}} and entry["time"] == T0.isoformat()
    anonymous = audit_entry(time=T0, method="GET", route="/v1/alerts", path="/v1/alerts", status=401,
                            client_ip=None, key_id="feedfeedfeedfeed")
    assert anonymous["key_id"] == "feedfeedfeedfeed" and anonymous["role"] is None and "action" not in anonymous
    assert [outcome(s) for s in (200, 201, 401, 403, 429, 404, 503)] == [
        "ok", "ok", "unauthenticated", "forbidden", "rate_limited", "error", "error"]


def test_keys_command_line():
    from cli.main import build_parser

    args = build_parser().parse_args(["keys", "create", "--role", "crisis", "--name", "war room", "--rate-per-minute", "60"])
    assert (args.action, args.role, args.name, args.rate_per_minute, args.replace) == ("create", "crisis", "war room", 60, False)
    assert build_parser().parse_args(["keys", "revoke", "0123456789abcdef"]).key_id == "0123456789abcdef"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["keys", "create", "--role", "root", "--name", "x"])
