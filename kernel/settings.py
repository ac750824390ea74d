"""Settings from the environment (prefix ``GOVSHARE_``); see README, "Configuration"."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Mode(StrEnum):
    development = "development"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOVSHARE_", extra="ignore")

    # Production unless told otherwise: the server then refuses to start without a master
    # secret (kernel/secrets.py). `make run`, the tests and the benchmarks say development.
    mode: Mode = Mode.production
    data_dir: Path = Path("./govshare-data")
    # Empty means SQLite at ``<data_dir>/govshare.db``.
    database_url: str = ""
    # This machine's catalog search index (derived data, rebuilt from the database when
    # missing); empty means ``<data_dir>/search-index`` (docs/search.md).
    search_index_dir: Path | None = None
    # The master secret every key is derived from (kernel/secrets.py, docs/security.md):
    # from the operator's secret store (base64url, comma-separated while rotating, the first
    # active), or a file holding it; else the key file, opened with the passphrase.
    master_secret: SecretStr | None = None
    master_secret_file: Path | None = None
    # Protects the master key file (keys/master-key.json) through scrypt.
    key_passphrase: SecretStr | None = None
    max_upload_bytes: int = Field(default=5 * 1024**3, ge=1)
    token_default_days: int = Field(default=90, ge=1)
    # 6-digit administrative division code of the city (GB/T 2260); the first part of
    # every resource code.
    region_code: str = Field(default="440300", pattern=r"^\d{6}$")
    preview_rows: int = Field(default=20, ge=1, le=200)
    host: str = "127.0.0.1"
    # Failed sign-ins allowed per client IP and per token prefix within the window, per
    # worker process, before further attempts get 429 (docs/security.md).
    auth_failures_per_ip: int = Field(default=20, ge=1)
    auth_failures_per_prefix: int = Field(default=5, ge=1)
    auth_failure_window_seconds: int = Field(default=300, ge=1)
    port: int = 8000
    # --- sign-in (docs/security.md) ---
    # A browser session ends this many hours after sign-in, whatever happens in between.
    session_hours: float = Field(default=8, gt=0, le=24 * 30)
    # OpenID Connect with the city's identity platform; sign-in with it is offered when the
    # issuer is set. Users are matched by ``oidc_user_claim`` to the user name; unknown users
    # are created only with ``oidc_provision`` and when the department claim names a
    # department (roles then come from ``oidc_roles_claim``, never the admin role).
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr | None = None
    oidc_scope: str = "openid profile"
    oidc_user_claim: str = "preferred_username"
    oidc_name_claim: str = "name"
    oidc_department_claim: str = ""
    oidc_roles_claim: str = ""
    oidc_provision: bool = False
    # --- notifications (docs/web.md): mailed too when an SMTP host is set ---
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "govshare@localhost"
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password: SecretStr | None = None
    # The site's address as people reach it, for links in mails (e.g. https://share.gov.cn).
    public_url: str = ""
    # --- access pipeline (docs/access.md) ---
    # Working days a provider has to answer an application before it is overdue.
    access_reply_working_days: int = Field(default=10, ge=1, le=60)
    # The working calendar: "china" (default) takes the State Council's official holidays and
    # make-up working days (调休) from the maintained ``chinese-calendar`` package; "weekends"
    # only weekends. Either way the two lists below add to it (a listed make-up working day
    # wins over a holiday), as JSON lists of ISO dates.
    access_calendar: Literal["china", "weekends"] = "china"
    access_holidays: list[date] = Field(default_factory=list)
    access_makeup_workdays: list[date] = Field(default_factory=list)
    # Local time zone for working days, reply deadlines and delivery periods.
    access_timezone: str = "Asia/Shanghai"
    access_max_period_days: int = Field(default=366, ge=1)
    # Lifetime of a download link (signed, expiring token).
    access_link_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # Largest page an API-query delivery serves.
    access_query_max_rows: int = Field(default=1000, ge=1, le=100_000)
    # How often the periodic-delivery scheduler wakes up; 0 turns it off.
    access_scheduler_seconds: int = Field(default=60, ge=0)
    # --- background jobs (kernel/jobs.py, docs/deployment.md) ---
    # A claimed job is renewed every third of this; a dead worker's job runs again after it.
    jobs_lease_seconds: float = Field(default=30.0, gt=0)
    # First retry after this, doubling with each failed attempt (capped at an hour).
    jobs_backoff_seconds: float = Field(default=10.0, ge=0)
    # How often an idle worker looks for due jobs and schedules.
    jobs_poll_seconds: float = Field(default=1.0, gt=0)
    # --- the log's checkpoints and witnesses (docs/access-log.md) ---
    # The checkpoint origin (and log key name): names this installation's log; empty means
    # "gov.example/govshare/<region_code>". Set it to your site's URL without the scheme.
    log_origin: str = Field(default="", pattern=r"^[^\s+]*$", max_length=200)
    # Witnesses to ask for cosignatures, one per line or comma: "<vkey> <url>", where <vkey>
    # is the witness's verifier key (`govshare witness key`) and <url> its submission prefix.
    log_witnesses: str = ""
    # Cosignatures a checkpoint needs before it is published; -1: a majority of the witnesses.
    log_witness_quorum: int = Field(default=-1, ge=-1)
    # How often the cosigner looks for a newer head (it is also woken by each signed head).
    log_cosign_seconds: float = Field(default=2.0, gt=0)
    # Per-witness timeout of one add-checkpoint request.
    log_witness_timeout_seconds: float = Field(default=5.0, gt=0)
    # --- metrics (docs/metrics.md) ---
    # The dashboard's figures may be this many seconds stale; 0 refreshes the mart per request.
    metrics_refresh_seconds: int = Field(default=60, ge=0)
    # Counts of persons' records on the dashboards below this are shown as "<N" (kernel.privacy).
    metrics_min_count: int = Field(default=10, ge=1, le=1000)
    # A static bearer token for Prometheus scrapers of /metrics (else a leader's or an
    # admin's API token is required).
    metrics_token: SecretStr | None = None

    @property
    def sqlalchemy_url(self) -> str:
        if not self.database_url:
            return f"sqlite:///{(self.data_dir / 'govshare.db').resolve()}"
        url = self.database_url
        # Accept the libpq-style scheme people paste; psycopg 3 is our driver.
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @property
    def warehouse_dir(self) -> Path:
        """Where resource data versions live as immutable DuckDB files."""
        return self.data_dir / "warehouse"

    @property
    def checkpoint_origin(self) -> str:
        return self.log_origin or f"gov.example/govshare/{self.region_code}"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"


@lru_cache
def get_settings() -> Settings:
    return Settings()
