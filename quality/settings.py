"""Quality settings from the environment (prefix ``GOVSHARE_QUALITY_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class QualitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOVSHARE_QUALITY_", extra="ignore")

    # Every active resource with data is re-validated this often; 0 disables the schedule.
    schedule_minutes: int = Field(default=24 * 60, ge=0)
    # Runs the demo's build does in parallel (the ``govshare worker`` processes run one run
    # each at a time: docs/deployment.md).
    workers: int = Field(default=2, ge=1, le=16)
    # DuckDB threads per run (0: DuckDB's default, one per core).
    duckdb_threads: int = Field(default=0, ge=0)
    # Masked example rows kept per failing expectation.
    examples: int = Field(default=3, ge=0, le=20)


@lru_cache
def get_quality_settings() -> QualitySettings:
    return QualitySettings()
