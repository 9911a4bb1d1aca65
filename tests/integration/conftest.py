"""Fixtures of the integration tests."""

import pytest

from tests.integration import browser


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium under Playwright, one per module; skips when unavailable."""
    executable = browser.require_browser()
    browser.require_client_files()
    with pytest.MonkeyPatch.context() as patch:
        # Playwright's sync API keeps an asyncio loop running in this thread,
        # which makes Django refuse ORM calls; they are plain synchronous
        # calls here, as Django's docs allow for this case.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with browser.launch_chromium(executable) as chromium:
            yield chromium
