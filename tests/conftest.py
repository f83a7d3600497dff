"""Shared fixtures: the read-only Timeloop reference data beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "timeloop"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared/reference/timeloop``; tests using it skip (with the reason) if absent."""
    if not SHARED.is_dir():
        reason = f"Timeloop reference data not found at {SHARED}"
        print(reason)
        pytest.skip(reason)
    return SHARED
