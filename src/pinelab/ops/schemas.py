"""Pydantic I/O of the ops endpoints: health, readiness and the admin health detail.

Policy: these are responses only; they forbid unknown fields so the OpenAPI document states
exactly what a probe or the dashboard receives.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LiveRead(BaseModel):
    """The process answers."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"] = "ok"


class CheckRead(BaseModel):
    """How one dependency answered."""

    model_config = ConfigDict(extra="forbid")

    ok: bool
    required: bool
    latency_ms: float = Field(ge=0)
    error: str | None = Field(
        None, max_length=300, description="Error class (probe) or message (admin detail)"
    )


class HealthRead(BaseModel):
    """Readiness: each of our own dependencies' check (never a broker's) and the verdict."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "checked_at": "2026-01-02T15:30:00+00:00",
                    "checks": {
                        "database": {"ok": True, "required": True, "latency_ms": 0.8},
                        "smtp": {"ok": True, "required": False, "latency_ms": 12.5},
                    },
                }
            ]
        },
    )

    status: Literal["ok", "degraded", "unavailable"]
    checked_at: str
    checks: dict[str, CheckRead]


class QueueRead(BaseModel):
    """The job queue as the database holds it."""

    model_config = ConfigDict(extra="forbid")

    queued: int = Field(ge=0)
    running: int = Field(ge=0)
    dead: int = Field(ge=0)
    oldest_age_seconds: float = Field(ge=0, description="Oldest due job not yet taken")


class WorkerRead(BaseModel):
    """The worker of this process."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool
    running: bool


class AdminHealthRead(HealthRead):
    """Readiness, each broker kind's reachability, and what the dashboard shows of the process."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": []})

    version: str
    env: str
    database: Literal["sqlite", "postgresql"]
    uptime_seconds: float = Field(ge=0)
    worker: WorkerRead
    queue: QueueRead
