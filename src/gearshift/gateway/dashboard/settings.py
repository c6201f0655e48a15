"""The `[dashboard]` config section. The page is on by default and sits behind the `admin` key scope."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DashboardSettings(BaseModel):
    """`window` is the default look-back ("24h", "90m", "7d"); `max_rows` bounds the decisions read per view."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    window: str = Field(default="24h", pattern=r"^\d+(\.\d+)?[smhd]$")
    buckets: int = Field(default=24, ge=2, le=500)
    max_rows: int = Field(default=50_000, gt=0)
    triage_items: int = Field(default=20, ge=0)
