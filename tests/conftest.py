"""Shared fixtures: the read-only Timeloop reference data beside the checkout, and the
golden files (``tests/golden``) compared with, or with ``--update-golden`` rewritten from,
what the code produces now."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "timeloop"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the golden files (tests/golden) from what the code "
                     "produces now instead of comparing with them; review the diff")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared/reference/timeloop``; tests using it skip (with the reason) if absent."""
    if not SHARED.is_dir():
        reason = f"Timeloop reference data not found at {SHARED}"
        print(reason)
        pytest.skip(reason)
    return SHARED


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[Path, str], None]:
    """``golden(path, text)``: assert ``text`` equals the golden file ``path``; with
    ``--update-golden``, write ``text`` there first."""
    update = request.config.getoption("--update-golden")

    def check(path: Path, text: str) -> None:
        if update:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
        assert text == path.read_text(), \
            f"{path.name} changed (pytest --update-golden to accept, then review the diff)"

    return check
