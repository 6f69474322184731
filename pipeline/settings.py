"""One settings class for every earshot process (connectors, worker, API, benchmarks).

Every field is read from an ``EARSHOT_<FIELD>`` environment variable (or a ``.env`` file in
the working directory), so the same names work for ``make run``, the tests and a cluster.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.secret_files import SecretFilesSource

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Configuration shared by all earshot processes."""

    model_config = SettingsConfigDict(env_prefix="EARSHOT_", env_file=".env", extra="ignore")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        # Secrets may also come from owner-only files: EARSHOT_<FIELD>_FILE or EARSHOT_SECRETS_DIR.
        return init_settings, env_settings, dotenv_settings, SecretFilesSource(settings_cls)

    home: Path = Field(REPO_ROOT / ".earshot", description="State folder: services, data, logs.")

    # Kafka
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="host:port[,host:port...]")
    topic_prefix: str = Field("", description="Prepended to every topic name (test isolation).")
    topic_partitions: int = Field(4, ge=1, description="Partitions for topics earshot creates.")
    topic_replication: int = Field(
        1, ge=1, description="Replicas of topics earshot and Faust create (3 on a cluster; 1 for one local broker)."
    )
    app_id: str = Field("earshot", description="Faust app id = Kafka consumer group prefix.")
    max_message_bytes: int = Field(1_000_000, description="Largest record a connector sends (Kafka's default limit).")
    kafka_session_timeout_s: float = Field(
        30.0, ge=6, description="A worker silent this long (s) is dropped and its partitions reassigned."
    )

    # Elasticsearch
    es_url: str = Field("http://127.0.0.1:9200", description="A node URL, or several separated by commas (a cluster).")
    es_username: str | None = None
    es_password: str | None = None
    es_ca_certs: Path | None = None
    index_prefix: str = Field("earshot", description="Prefix of index, alias and template names.")
    index_shards: int = Field(1, ge=1)
    index_replicas: int = Field(0, ge=0, description="Replicas of every shard earshot creates (1 on a cluster; 0 for one node).")
    index_refresh_interval: str = Field("1s", description="ES refresh interval: search visibility.")

    # Worker
    worker_web_port: int = Field(6066, description="Faust web port (one per worker on a host).")
    spikes_web_port: int = Field(6067, description="Faust web port of the spike watcher (one per host).")
    stall_s: float = Field(60.0, gt=0, description="Seconds a partition may go unread while its lag grows "
                           "before it is reported stalled (log warning, earshot_partition_stalled).")
    enrich_batch_size: int = Field(64, ge=1, description="Mentions per model forward pass.")
    enrich_batch_window_s: float = Field(0.2, gt=0, description="Max wait to fill a batch, s.")
    index_batch_size: int = Field(500, ge=1, description="Documents per ES bulk request.")
    index_batch_window_s: float = Field(0.5, gt=0, description="Max wait to fill a bulk, s.")
    index_retry_max_s: float = Field(30.0, gt=0, description="Cap of the bulk retry backoff, s.")
    max_future_skew_s: float = Field(300.0, description="Reject created_at later than now + this.")
    max_text_bytes: int = Field(64 * 1024, description="Reject texts longer than this (UTF-8).")

    # Enrichment resources
    brands_file: Path = Field(REPO_ROOT / "pipeline" / "brands.yaml")
    routing_file: Path = Field(REPO_ROOT / "pipeline" / "routing.yaml", description="Purpose -> team rules.")
    model_variant: str = Field(
        "minilm-l6", description="Shipped model variant (models/weights/<name>: minilm-l6) or a bundle folder."
    )
    model_backend: Literal["onnx", "torch"] = Field(
        "onnx", description="onnx: ONNX Runtime int8 (default, faster); torch: eager PyTorch fp32."
    )
    model_threads: int = Field(0, ge=0, description="Inference threads per worker; 0 = all cores.")
    model_cache_size: int = Field(50_000, ge=0, description="Texts whose model reading is kept for near-duplicates.")
    model_languages: list[str] = Field(["en"], description="Languages the models read; others get no guess.")

    # Spike detection and alerting
    detector_warmup_h: float = Field(
        72.0, ge=1, description="Hours of a brand's history before its spikes raise alerts (baselines need days)."
    )
    detector_lateness_s: float = Field(
        60.0, ge=0, description="A bucket is closed once event time has passed its end by this much, s."
    )
    alert_min_severity: Literal["low", "medium", "high", "critical"] = Field(
        "low", description="Alerts below this severity are kept in the index but not pushed."
    )
    alert_brand_min_severity: dict[str, int | Literal["low", "medium", "high", "critical"]] = Field(
        {}, description='Per brand: paging threshold, a 1..10 score or a band name, JSON, e.g. {"apple": 6}; '
                        "incidents below it go to the webhooks' digest instead of paging (default 1: page all).")
    alert_quiet_s: float = Field(
        1800.0, ge=0, description="No re-page of the same brand within this many seconds (event time) of its last "
                                  "page, unless the severity band rose.")
    alert_digest_s: float = Field(
        3600.0, gt=0, description="Seconds between two digests to a webhook of the incidents that opened below its "
                                  "paging threshold.")
    webhook_max_attempts: int = Field(6, ge=1, description="Tries per webhook delivery before its dead letter.")
    webhook_backoff_s: float = Field(0.5, gt=0, description="First retry delay, s; doubles per try, with jitter.")
    webhook_timeout_s: float = Field(5.0, gt=0, description="Per-request timeout of a webhook delivery, s.")

    # Connectors (credentials: environment or .env only; SecretStr keeps them out of reprs and logs)
    checkpoint_dir: Path | None = Field(None, description="Connector checkpoints; default <home>/checkpoints.")
    connector_poll_s: float = Field(60.0, gt=0, description="Seconds between polls of a polling connector.")
    connector_backoff_base_s: float = Field(1.0, gt=0, description="First retry delay after an error, s.")
    connector_backoff_cap_s: float = Field(300.0, gt=0, description="Longest retry delay after errors, s.")
    reddit_client_id: str | None = None
    reddit_client_secret: SecretStr | None = None
    reddit_user_agent: str = Field("earshot/0.1 (social listening)", description="Reddit asks for a descriptive one.")
    mastodon_access_token: SecretStr | None = Field(None, description="Only needed for instances that require it.")
    bluesky_identifier: str | None = Field(None, description="Handle for searchPosts (app password auth).")
    bluesky_app_password: SecretStr | None = None
    x_bearer_token: SecretStr | None = Field(None, description="X API v2 app-only bearer token.")
    ingest_secret: SecretStr | None = Field(
        None, description="HMAC key of POST /v1/ingest (X-Earshot-Signature); unset = not checked (local use only)."
    )
    ingest_max_items: int = Field(1000, ge=1, description="Most mentions in one POST /v1/ingest.")
    ingest_max_bytes: int = Field(5_000_000, ge=1, description="Largest POST /v1/ingest body, bytes.")

    # Noise control
    near_dup_window_h: float = Field(48.0, gt=0, description="A copy links to a first post at most this old, h.")
    near_dup_max_posts: int = Field(200_000, ge=1000, description="First posts a worker remembers for linking copies.")
    spam_threshold: float = Field(0.7, ge=0, le=1, description="Trends leave out mentions with spam.score >= this.")

    # Retention (pipeline/store/retention.py): whole monthly indices are dropped, the minimal ES has no ILM
    retention_days: int | None = Field(
        None, ge=1, description="Drop mention (and dated audit) indices older than this many days; unset = keep forever."
    )

    # Listening queries
    queries_refresh_s: float = Field(5.0, gt=0, description="How often workers look for changed queries, s.")

    # Hourly rollup (pipeline/store/rollup.py): per-brand counts that trends and share of voice read
    rollup_interval_s: float = Field(10.0, gt=0, description="How often a worker rolls up the hours it indexed, s.")
    rollup_startup_h: float = Field(
        3.0, ge=0, description="Hours (up to now) a worker rolls up again at start, for a crash between index and rollup."
    )

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_max_page_size: int = 100
    # Access control (api/auth/guard.py): API keys in <prefix>-keys; secrets also from files (pipeline/secret_files.py)
    bootstrap_admin_key: SecretStr | None = Field(
        None, description="An admin API key taken from the environment or a secret file (first key, break-glass)."
    )
    api_key_cache_s: float = Field(10.0, ge=0, description="Key records are re-read after this; revocation delay, s.")
    api_rate_per_minute: int = Field(600, ge=1, description="Requests per minute per key (keys may set their own).")
    api_cors_origins: list[str] = Field(
        [], description='Origins allowed by CORS, JSON list, e.g. ["https://dash.example.com"]; empty = none.'
    )
    api_max_body_bytes: int = Field(1_000_000, ge=1, description="Largest request body but POST /v1/ingest's, bytes.")
    audit_queue_size: int = Field(10_000, ge=1, description="Audit entries waiting for ES; more are dropped (counted).")
    audit_batch_size: int = Field(500, ge=1, description="Audit entries per bulk request.")
    audit_flush_s: float = Field(1.0, gt=0, description="Longest wait before queued audit entries are written, s.")

    # Triage (api/routes/triage.py) and the data feed (api/routes/feed.py)
    triage_sla_s: float = Field(3600.0, gt=0, description="A routed mention should be answered or resolved "
                                "within this, s (the SLA of GET /v1/triage/{team}/kpis).")
    triage_sla_by_team: dict[str, float] = Field({}, description='Per-team SLA, s, JSON, e.g. {"sales": 14400}.')
    feed_page_size: int = Field(1000, ge=1, le=10_000, description="Mentions per ES page of GET /v1/feed: "
                                "bounds the memory of one stream.")

    # Observability (pipeline/logs.py, pipeline/metrics.py)
    log_format: Literal["json", "text"] = Field(
        "json", description="json: one JSON object per line (for log shippers); text: one line for people."
    )
    web_host: str = Field(
        "127.0.0.1", description="Interface of the worker's and spike watcher's web servers (/metrics); 0.0.0.0 in "
        "a container, for Prometheus to reach them."
    )

    @property
    def checkpoints(self) -> Path:
        return self.checkpoint_dir or self.home / "checkpoints"

    # Topic and index names are derived here, once.
    @property
    def topic_raw(self) -> str:
        return f"{self.topic_prefix}mentions.raw"

    @property
    def topic_enriched(self) -> str:
        return f"{self.topic_prefix}mentions.enriched"

    @property
    def topic_dlq(self) -> str:
        return f"{self.topic_prefix}mentions.dlq"

    @property
    def topic_by_brand(self) -> str:
        """Repartition topic: one record per (enriched mention, matched brand), keyed by brand."""
        return f"{self.topic_prefix}mentions.by-brand"

    @property
    def topic_alerts(self) -> str:
        return f"{self.topic_prefix}alerts"

    @property
    def topic_webhooks_dlq(self) -> str:
        return f"{self.topic_prefix}alerts.webhooks.dlq"

    @property
    def alerts_index(self) -> str:
        return f"{self.index_prefix}-alerts"

    @property
    def queries_index(self) -> str:
        """Listening queries (``/v1/queries``), read by every worker."""
        return f"{self.index_prefix}-queries"

    @property
    def webhooks_index(self) -> str:
        return f"{self.index_prefix}-webhooks"

    @property
    def keys_index(self) -> str:
        """API key records (hashed secrets), ``earshot keys``."""
        return f"{self.index_prefix}-keys"

    @property
    def audit_index(self) -> str:
        """The audit log family: monthly ``<prefix>-audit-YYYY.MM`` indices (dropped by retention)."""
        return f"{self.index_prefix}-audit"

    @property
    def triage_index(self) -> str:
        """Triage state, one document per mention id (``pipeline/store/triage_state.py``)."""
        return f"{self.index_prefix}-triage"

    @property
    def mentions_alias(self) -> str:
        """Read alias over all time-partitioned mention indices."""
        return f"{self.index_prefix}-mentions"

    @property
    def mentions_index_pattern(self) -> str:
        return f"{self.index_prefix}-mentions-*"

    @property
    def mentions_template(self) -> str:
        return f"{self.index_prefix}-mentions-template"

    @property
    def rollup_index(self) -> str:
        """Hourly per-brand counts (``pipeline/store/rollup.py``), one document per (brand, hour)."""
        return f"{self.index_prefix}-rollup-hourly"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
