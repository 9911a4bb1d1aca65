"""The README pastes: its quick start builds a working project (see readme_quickstart)."""

import os
import re
from pathlib import Path

import pytest

from tests import readme_quickstart

REPO = Path(__file__).resolve().parent.parent

on_sqlite_only = pytest.mark.skipif(
    os.environ.get("PS_DB", "sqlite").lower() != "sqlite",
    reason="the quick start's project is SQLite whatever PS_DB says; it runs in the SQLite run",
)


@on_sqlite_only
def test_the_quick_start_pasted_into_a_fresh_project_checks_migrates_and_syncs():
    # PYTHONPATH: this checkout's persistence_sync, even where another copy is installed.
    assert "synced" in readme_quickstart.main(pythonpath=REPO, serve=False)


@on_sqlite_only
@pytest.mark.live
def test_the_quick_start_serves_and_its_curl_lines_print_what_the_readme_shows():
    """The whole quick start: runserver, a token made by drf_create_token, curl's push and pull."""
    assert "synced" in readme_quickstart.main(pythonpath=REPO, serve=True)


def test_the_readme_opens_with_its_two_commands_where_ci_reads_them():
    """.ci/run runs the first fenced block's two lines, in this order."""
    first_block = re.search(r"^```[^\n]*\n(.*?)^```", (REPO / "README.md").read_text(),
                            re.MULTILINE | re.DOTALL)[1]
    assert first_block.splitlines() == ["./dev demo", "./dev test"]


def test_the_readme_says_what_the_app_is_before_any_command():
    text = (REPO / "README.md").read_text()
    assert text.index("Offline-first data sync for Django") < text.index("```")


@pytest.mark.parametrize(("shown", "printed", "same"), [
    ('{"status":"ok","now":...}', '{"status":"ok","now":1796630494801}\n', True),
    ('{"status":"ok","now":...}', '{"status":"error","error":"Authentication"}', False),
    ('{"now":...,"updates":[]}', '{"now":1,"updates":[{"id":"T1"}]}', False),
    ("Generated token ... for user ann", "Generated token 9a1f for user ann", True),
])
def test_a_shown_output_matches_only_what_it_shows(shown, printed, same):
    assert readme_quickstart.matches_shown_output(shown, printed) is same


def test_a_step_whose_output_differs_from_the_page_fails_the_replay(tmp_path):
    page = """
<!-- quickstart: run -->
```sh
echo '{"status":"error"}'
```

<!-- quickstart: output -->
```json
{"status":"ok","now":...}
```
"""
    with readme_quickstart.Replay(tmp_path, readme_quickstart.environment()) as replay:
        with pytest.raises(readme_quickstart.QuickStartError, match="but the command printed"):
            replay.replay(readme_quickstart.quickstart_steps(page))


def test_variables_and_the_directory_carry_over_from_one_step_to_the_next(tmp_path):
    page = """
<!-- quickstart: run -->
```sh
mkdir site && cd site && export TOKEN=$(echo Generated token abc123 for user ann | cut -d' ' -f3)
```

<!-- quickstart: run -->
```sh
echo "$TOKEN in $(basename $PWD)"
```

<!-- quickstart: output -->
```text
abc123 in site
```
"""
    with readme_quickstart.Replay(tmp_path, readme_quickstart.environment()) as replay:
        assert replay.replay(readme_quickstart.quickstart_steps(page)) == tmp_path / "site"
