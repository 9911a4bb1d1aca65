"""Helpers for tests that drive the real persistence.js client in headless Chromium.

Browser tests need three things this project does not install for you:
Debian's Chromium (never a browser downloaded by ``playwright install``),
Playwright for Python, and npm (to fetch persistence.js and sql.js into the
cache of ``todo.clientlib``). ``require_browser()`` skips the test, saying what
is missing and how to get it, when any of them is absent; the ``chromium``
fixture of ``tests/integration/conftest.py`` does that for you. Mark such
tests ``@pytest.mark.browser``.
"""

import contextlib
import os
import shutil

import pytest

# A page that loads the real client on the Web SQL polyfill, in this order;
# the files come from the example site's /vendor/ (todo.clientlib).
CLIENT_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>persistence.js test page</title>
<script src="/vendor/sql-wasm.js"></script>
<script src="/static/todo/websql.js" data-wasm-url="/vendor/sql-wasm.wasm"></script>
<script src="/vendor/persistence.js"></script>
<script src="/vendor/persistence.store.sql.js"></script>
<script src="/vendor/persistence.store.websql.js"></script>
<script src="/vendor/persistence.sync.js"></script>
</head><body></body></html>
"""

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium():
    """Path of the system Chromium, or None."""
    for candidate in CHROMIUM_CANDIDATES:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.access(path, os.X_OK):
            return path
    return None


def require_browser():
    """Return the Chromium path, or skip the calling test naming what is missing."""
    from todo import clientlib

    missing = []
    executable = find_chromium()
    if executable is None:
        missing.append("Chromium (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append(
            "Playwright for Python (pip install playwright; no 'playwright install', "
            "the system chromium is used)"
        )
    if shutil.which("npm") is None and not clientlib.is_installed():
        missing.append(
            "npm on PATH to fetch persistence.js and sql.js (apt-get install -y npm), "
            f"or a filled cache named by {clientlib.CACHE_ENV_VAR}"
        )
    if missing:
        pytest.skip("browser tests need " + "; ".join(missing))
    return executable


def require_client_files():
    """Paths of the npm client files (see ``todo.clientlib``), or skip saying why."""
    from todo import clientlib

    try:
        return clientlib.client_file_paths()
    except clientlib.ClientLibUnavailable as exc:
        pytest.skip(str(exc))


@contextlib.contextmanager
def launch_chromium(executable=None):
    """Start headless Chromium through Playwright; yields the Browser."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable or find_chromium(),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield chromium
        finally:
            chromium.close()


def log_in(context, base_url, user):
    """Give a Playwright browser context ``user``'s session on the live server at ``base_url``."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": base_url}])


# The browser tests' pages sync as the demo user over HTTP Basic: the
# example site's to-do models are per user, and Basic needs no CSRF token.
BASIC_AUTH_SCRIPT = """(() => {
  const open = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function (...args) {
    open.apply(this, args);
    this.setRequestHeader("Authorization", "Basic " + btoa("demo:demo"));
  };
})();"""


def demo_user_with_password():
    """The demo user, with the password demo (a flushed test database lost the migration's)."""
    from tests.conftest import demo_user

    user = demo_user()
    if not user.check_password("demo"):
        user.set_password("demo")
        user.save(update_fields=["password"])
    return user


class TodoPage:
    """The to-do page in one browser tab, driven through its controls."""

    def __init__(self, page):
        self.page = page
        self.errors = []
        self.console = []  # console.log/debug/info lines (a 404 favicon is an "error")
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: message.type in ("log", "debug", "info")
                and self.console.append(message.text))

    def wait_for_sync(self, number):
        """Wait until the page has finished its ``number``-th sync and is idle; return its result.

        Idle, and that sync's own result: with the change feed, the page may sync
        again right after (its own push's notice), before a test looks.
        """
        self.page.wait_for_function("n => todoApp.syncs >= n && !todoApp.syncing", arg=number)
        result = self.page.evaluate("n => todoApp.results[n]", number)
        assert result["ok"], result["error"]
        return result

    def sync(self):
        done = self.page.evaluate("() => todoApp.syncs")
        self.page.click("#sync")
        return self.wait_for_sync(done + 1)

    def add(self, name):
        self.page.fill("#new-task", name)
        self.page.press("#new-task", "Enter")
        self.page.wait_for_selector(f"#tasks li:has-text('{name}')")

    def row(self, name):
        return self.page.locator("#tasks li", has_text=name)

    def tick(self, name):
        self.row(name).locator("input[type=checkbox]").check()
        self.page.wait_for_selector(f"#tasks li.done:has-text('{name}')")

    def delete(self, name):
        self.row(name).locator("button.delete").click()
        self.row(name).wait_for(state="detached")

    def tasks(self):
        """{name: done} as the page shows them."""
        return self.page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll("#tasks li[data-id]")]
                .map((li) => [li.querySelector(".name").textContent, li.classList.contains("done")]))"""
        )

    def status(self):
        return self.page.text_content("#sync-status")
