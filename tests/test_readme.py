"""The README pastes: its quick start builds a working project (see readme_quickstart)."""

import os
from pathlib import Path

import pytest

from tests import readme_quickstart

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    os.environ.get("PS_DB", "sqlite").lower() != "sqlite",
    reason="the quick start's project is SQLite whatever PS_DB says; it runs in the SQLite run",
)
def test_the_quick_start_pasted_into_a_fresh_project_checks_migrates_and_syncs():
    # PYTHONPATH: this checkout's persistence_sync, even where another copy is installed.
    assert "synced" in readme_quickstart.main(pythonpath=REPO)

