"""Who may do what: roles, the scopes each grants, and the API key format. Pure: no I/O.

Every route declares the scope it needs (``api.auth.guard.require``); a key carries one role; the
role's scopes decide. Keys look like ``esk_<key id>_<secret>``: the key id (16 hex digits) is
public and names the stored record, the secret (32 random bytes, URL-safe base64) is shown once
at creation and only its SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

MENTIONS_READ = "mentions:read"
TRENDS_READ = "trends:read"
ALERTS_READ = "alerts:read"
ALERTS_WRITE = "alerts:write"
WEBHOOKS_ADMIN = "webhooks:admin"
QUERIES_READ = "queries:read"
QUERIES_ADMIN = "queries:admin"
INGEST_WRITE = "ingest:write"
FEED_READ = "feed:read"
IR_READ = "ir:read"
TRIAGE_READ = "triage:read"
TRIAGE_WRITE = "triage:write"
AUDIT_READ = "audit:read"
KEYS_ADMIN = "keys:admin"
ADMIN = "admin"  # only the admin role: for routes that have no finer scope (data erasure, retention)

SCOPES: tuple[str, ...] = (MENTIONS_READ, TRENDS_READ, ALERTS_READ, ALERTS_WRITE, WEBHOOKS_ADMIN, QUERIES_READ,
                           QUERIES_ADMIN, INGEST_WRITE, FEED_READ, IR_READ, TRIAGE_READ, TRIAGE_WRITE, AUDIT_READ,
                           KEYS_ADMIN, ADMIN)

# Least privilege per team: each role reads what its people work on and writes only its own state.
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "comms": frozenset({MENTIONS_READ, TRENDS_READ, ALERTS_READ, QUERIES_READ}),
    "crisis": frozenset({MENTIONS_READ, TRENDS_READ, ALERTS_READ, ALERTS_WRITE, WEBHOOKS_ADMIN}),
    "ir": frozenset({IR_READ, MENTIONS_READ}),
    "data": frozenset({FEED_READ, MENTIONS_READ, TRENDS_READ, QUERIES_READ, INGEST_WRITE}),
    "care": frozenset({TRIAGE_READ, TRIAGE_WRITE, MENTIONS_READ}),
    "admin": frozenset(SCOPES),
}
ROLES: tuple[str, ...] = tuple(ROLE_SCOPES)

KEY_PREFIX = "esk_"
KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_KEY = re.compile(r"^esk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})$")


def scopes_for(role: str) -> frozenset[str]:
    """The scopes ``role`` grants; none for an unknown role (a record from a newer version, say)."""
    return ROLE_SCOPES.get(role, frozenset())


def allows(role: str, scope: str) -> bool:
    return scope in scopes_for(role)


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str

    @property
    def text(self) -> str:
        """What the holder sends: ``esk_<key id>_<secret>``."""
        return f"{KEY_PREFIX}{self.key_id}_{self.secret}"


def new_key() -> NewKey:
    return NewKey(key_id=secrets.token_hex(8), secret=secrets.token_urlsafe(32))


def parse_key(text: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a well-formed key, else None."""
    match = _KEY.match(text.strip())
    return (match[1], match[2]) if match else None


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of a key's secret: what is stored.

    A plain fast hash is right here, unlike for passwords: the secret is 256 random bits, so
    there is no dictionary to try and brute force over the hash is hopeless whatever its speed;
    a slow KDF (bcrypt, argon2) would only make every request pay for nothing.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_sha256: str) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    return hmac.compare_digest(hash_secret(secret).encode("ascii"), stored_sha256.encode("ascii", "replace"))
