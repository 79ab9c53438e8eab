"""The D1 error body convention: ``{"errorCode": ..., "error": ...}`` (errors.md §2)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class D1ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    errorCode: str | None = None
    error: str | None = None
