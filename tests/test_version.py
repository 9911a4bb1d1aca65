"""The package's version and CHANGELOG.md agree (PEP 440 development versions between releases)."""

import re
from pathlib import Path

from packaging.version import Version

import persistence_sync

CHANGELOG = Path(__file__).parents[1] / "CHANGELOG.md"


def sections():
    """The changelog's version headings, newest first: ``[("Unreleased (0.2.0.dev0)", ...)]``."""
    return re.findall(r"^## (.+)$", CHANGELOG.read_text(), flags=re.MULTILINE)


def test_the_version_is_the_changelogs_newest_section():
    version = Version(persistence_sync.__version__)
    newest, *older = sections()
    released = [Version(heading.split(" - ")[0]) for heading in older]
    if newest.startswith("Unreleased"):
        # A development version of the next release: above every released one,
        # and named in the heading so that a reader knows what the wheel says.
        assert version.is_devrelease, f"{version} should be a .devN while CHANGELOG.md is Unreleased"
        assert newest == f"Unreleased ({version})"
        assert all(version > previous for previous in released)
    else:
        assert not version.is_devrelease
        assert newest.split(" - ")[0] == str(version)
