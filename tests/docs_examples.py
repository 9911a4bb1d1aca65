"""The documentation's code blocks, run by the test suite through Sybil.

``docs/conftest.py`` hands pytest the collector made here, so that
``pytest`` (``./dev test``) collects every page of ``docs/`` next to
``tests/``. Sybil is the tool made for this: it parses Markdown (the
pages' fenced blocks, and directives in HTML comments that the site and
GitHub do not show), lets a page's blocks share one namespace in order, and
takes an evaluator per kind of block. Each kind:

``python`` blocks
    run in the page's namespace, as a module of the test app
    ``docs_examples`` (``tests/docsapp``), so that a model defined there is a
    real model of an installed app. The page gets a registry of its own and
    the settings the quick start recommends (session and token
    authentication, ``IsAuthenticated``). After each block, the app's system
    checks run, deployment checks included: a model registered there, or a
    ``PERSISTENCE_SYNC`` dict set there, that ``manage.py check`` would warn
    about fails the example.
``js`` blocks
    run under Node against a live example site (gunicorn on a scratch
    database), with the real WatermelonDB client (:func:`evaluate_js`).
``<!-- watermelon-live: next "..." -->``
    before a ``js`` block marks WatermelonDB's live-sync code: it runs with
    the page's ``synchronize()`` block before it as ``sync()``, against the
    site under uvicorn, which must reach the device by itself
    (:func:`evaluate_js_following`).
``<!-- quickstart: ... -->`` blocks (the tutorial's)
    are replayed into a new project by :class:`tests.readme_quickstart.Replay`,
    its server included, as a reader would paste them.
``<!-- skip: next "why" -->``
    before a block that is not meant to run (a fragment of ``settings.py``,
    code for a browser page) skips it, saying why. Blocks of other languages
    (shell, nginx, JSON) never run, but for a quickstart step.

Examples that start a server or Node are marked ``live`` (:func:`mark_live`).
"""

import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.checks import run_checks
from django.test.utils import override_settings
from sybil import Sybil
from sybil.evaluators.skip import Skipper
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

from persistence_sync import checks, registry, signals
from tests import readme_quickstart
from tests.integration import live

DOCS_APP = "tests.docsapp"
DOCS_APP_LABEL = "docs_examples"
# The settings the README's quick start gives a project: the docs assume them.
QUICKSTART_REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
QUICKSTART_MARKER_BEFORE = re.compile(readme_quickstart.MARKER + r"\s*$")
DOCS = Path(__file__).resolve().parent.parent / "docs"
JS_HARNESS = Path(__file__).resolve().parent / "integration" / "docs_snippet.js"
WATERMELON_LIVE_MARKER_BEFORE = re.compile(r'<!-- watermelon-live: next "[^"]*" -->\s*$')
SKIP_BEFORE = re.compile(r'<!-- skip: next "[^"]*" -->\s*$')
# The live-sync snippet reaches the device within this (the feed answers in ms).
LIVE_SYNC_WITHIN_S = 10


# --- a page's namespace ----------------------------------------------------


def setup_page(namespace):
    """A page's blocks run as one module of the docs app, with an empty registry of their own."""
    namespace["__name__"] = f"{DOCS_APP}.page"
    namespace["_docs_registry"] = registry.default
    registry.default = registry.SyncRegistry()
    registry.default.changed()
    namespace["_docs_settings"] = override_settings(REST_FRAMEWORK=QUICKSTART_REST_FRAMEWORK)
    namespace["_docs_settings"].enable()


def teardown_page(namespace):
    """Undo what the page's blocks did: their models, registrations, receivers, settings, server."""
    if "_quickstart" in namespace:
        namespace.pop("_quickstart").close()
    namespace["_docs_settings"].disable()
    registry.default = namespace["_docs_registry"]
    registry.default.changed()
    disconnect_page_receivers(namespace)
    forget_page_models()


def disconnect_page_receivers(namespace):
    """A receiver a page connects (an audit log, say) must not run in the tests after it."""
    for value in namespace.values():
        if callable(value) and getattr(value, "__module__", None) == namespace["__name__"]:
            for signal in (signals.pre_push, signals.post_push, signals.post_pull):
                signal.disconnect(value)


def forget_page_models():
    """Take the docs app's models out of Django's registries, and their accessors off other models.

    The next page may define a ``Task`` of its own; leftovers would clash.
    """
    page_models = list(apps.all_models[DOCS_APP_LABEL].values())
    for model in page_models:
        if admin.site.is_registered(model):
            admin.site.unregister(model)
        for field in model._meta.local_fields + model._meta.local_many_to_many:
            remote = getattr(field, "remote_field", None)
            target = getattr(remote, "model", None)
            if not isinstance(target, type) or target in page_models:
                continue
            accessor = remote.get_accessor_name()
            descriptor = target.__dict__.get(accessor) if accessor else None
            if descriptor is not None and getattr(descriptor, "rel", None) is remote:
                delattr(target, accessor)
    apps.all_models[DOCS_APP_LABEL].clear()
    apps.get_app_config(DOCS_APP_LABEL).models.clear()
    apps.clear_cache()


# --- python blocks ---------------------------------------------------------


class CheckedPythonBlocks(PythonCodeBlockParser):
    """``python`` blocks, but those a quickstart step writes into a project (the replay runs them)."""

    def __call__(self, document):
        for region in super().__call__(document):
            if not QUICKSTART_MARKER_BEFORE.search(document.text, 0, region.start):
                region.evaluator = checked(region.evaluator)
                yield region


def checked(evaluate):
    def evaluate_then_check(example):
        evaluate(example)
        problems = app_checks(example.namespace.get("PERSISTENCE_SYNC"))
        if problems:
            raise AssertionError("manage.py check would report:\n" + "\n".join(map(str, problems)))

    return evaluate_then_check


def app_checks(persistence_sync_setting):
    """What ``manage.py check --deploy`` reports of this app's checks, the page's setting in force."""
    settings = {} if persistence_sync_setting is None else {"PERSISTENCE_SYNC": persistence_sync_setting}
    with override_settings(**settings):
        return run_checks(tags=[checks.TAG], include_deployment_checks=True)


# --- the tutorial's quickstart steps ---------------------------------------


def quickstart_parser(document):
    """One example per marked block; the page's steps share one :class:`Replay`."""
    from sybil import Region

    for match in readme_quickstart.MARKED_BLOCK.finditer(document.text):
        [(action, path, code)] = readme_quickstart.quickstart_steps(match[0], document.path)
        yield Region(match.start(), match.end(), (action, path, code), evaluate_quickstart_step)


def evaluate_quickstart_step(example):
    namespace = example.namespace
    if "_quickstart" not in namespace:
        workdir = tempfile.mkdtemp(prefix="quickstart-")
        namespace["_quickstart"] = readme_quickstart.Replay(workdir, readme_quickstart.environment(
            pythonpath=Path(__file__).resolve().parent.parent))
    namespace["_quickstart"].apply(*example.parsed)


# --- js blocks -------------------------------------------------------------


def evaluate_js(example):
    """Run a WatermelonDB app's ``synchronize()`` snippet under Node against a live example site.

    The snippet runs as written, twice, in a device with one task of its own
    (``database``, ``token`` and the snippet's imports are what the page
    says an app has; its ``https://example.com`` is the live site). The
    device must get the site's task, and the site the device's, then a change
    made on each side in between.
    """
    from tests.integration.watermelon import modules_dir

    live.require_gunicorn()
    node_modules = modules_dir()  # skips without node and npm
    vendor = os.environ.get("PS_DB", "sqlite").lower()
    with live.scratch_database(vendor, purpose="docs_js") as env, live.gunicorn(env, workers=1) as site:
        token = demo_token(env)
        headers = {"Authorization": f"Token {token}"}
        classic_push(site.url, headers, [{"id": "FROM-SITE", "name": "made on the site"}])
        result = run_snippet(node_modules, example.parsed, site.url, token,
                             between=lambda: classic_push(site.url, headers, [
                                 {"id": "FROM-SITE", "name": "renamed on the site"}]))
        on_site = {item["id"]: item["name"] for item in classic_pull(site.url, headers)}
    device_task = result["created"]
    assert result["first"] == {"FROM-SITE": "made on the site", device_task: "made on the device"}, result
    assert result["second"] == {"FROM-SITE": "renamed on the site", device_task: "renamed on the device"}, (
        result)
    assert on_site == result["second"], (on_site, result)


class JsBlocks(CodeBlockParser):
    """``js`` blocks; one marked ``watermelon-live`` runs with the last runnable ``synchronize()`` block."""

    def __init__(self):
        super().__init__(language="js", evaluator=evaluate_js)

    def __call__(self, document):
        sync_block = None
        for region in super().__call__(document):
            if WATERMELON_LIVE_MARKER_BEFORE.search(document.text, 0, region.start):
                assert sync_block is not None, f"{document.path}: no synchronize() block before the live one"
                region.parsed = (sync_block, region.parsed)
                region.evaluator = evaluate_js_following
            elif "synchronize(" in region.parsed and not SKIP_BEFORE.search(document.text, 0, region.start):
                sync_block = region.parsed  # the last one that runs (not a skipped fragment)
            yield region


def evaluate_js_following(example):
    """Run the live-sync snippet under Node, ``sync()`` being the page's ``synchronize()`` block.

    The device starts following with a task of its own; without being asked
    again it must get the site's task and push its own (the feed's first
    answer), then each change made on the site, and never run two syncs at
    once.
    """
    from tests.integration.watermelon import modules_dir

    live.require_uvicorn()
    node_modules = modules_dir()  # skips without node and npm
    sync_block, snippet = example.parsed
    vendor = os.environ.get("PS_DB", "sqlite").lower()
    with live.scratch_database(vendor, purpose="docs_feed") as env, live.uvicorn(env) as site:
        token = demo_token(env)
        headers = {"Authorization": f"Token {token}"}
        classic_push(site.url, headers, [{"id": "FROM-SITE", "name": "made on the site"}])
        config = {"url": site.url, "token": token, "sync": sync_block, "snippet": snippet}
        log = tempfile.TemporaryFile("w+")  # WatermelonDB's console, for a failure's message
        device = subprocess.Popen(["node", str(JS_HARNESS), str(node_modules), json.dumps(config)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        reports = queue.Queue()
        threading.Thread(target=lambda: [reports.put(json.loads(line)) for line in device.stdout],
                         daemon=True).start()

        def synced_until(done):
            deadline = time.monotonic() + LIVE_SYNC_WITHIN_S
            while True:
                try:
                    report = reports.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    log.seek(0)
                    raise AssertionError(f"the device did not sync by itself within {LIVE_SYNC_WITHIN_S} s; "
                                         f"its log: {log.read()[-2000:]}") from None
                assert "error" not in report and report["overlaps"] == 0, report
                if done(report["tasks"]):
                    return report

        try:
            first = synced_until(lambda tasks: tasks.get("FROM-SITE") == "made on the site")
            device_task = first["created"]
            on_site = {item["id"]: item["name"] for item in classic_pull(site.url, headers)}
            assert on_site == {"FROM-SITE": "made on the site", device_task: "made on the device"}, on_site
            classic_push(site.url, headers, [{"id": "FROM-SITE", "name": "renamed on the site"}])
            synced_until(lambda tasks: tasks.get("FROM-SITE") == "renamed on the site")
            # A burst of pushes: all of them arrive, one sync at a time.
            burst = [f"BURST-{n}" for n in range(5)]
            for item_id in burst:
                classic_push(site.url, headers, [{"id": item_id, "name": item_id}])
            synced_until(lambda tasks: all(item_id in tasks for item_id in burst))
        finally:
            device.stdin.close()
            device.wait(timeout=30)
            log.close()


def demo_token(env):
    """A DRF token of the example site's demo user, as the site's admin makes one."""
    answer = subprocess.run([sys.executable, "manage.py", "drf_create_token", "demo"], cwd=live.SITE,
                            capture_output=True, text=True, env=live.process_env(env), check=True)
    return answer.stdout.split()[2]  # "Generated token <key> for user demo"


def classic_push(url, headers, items):
    request = urllib.request.Request(f"{url}/taskUpdates", data=json.dumps(items).encode(),
                                     headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def classic_pull(url, headers):
    request = urllib.request.Request(f"{url}/taskUpdates?since=0", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["updates"]


def run_snippet(node_modules, snippet, url, token, between):
    """Drive ``docs_snippet.js``: sync, ``between()`` on the site, sync again; its report."""
    config = {"url": url, "token": token, "snippet": snippet}
    process = subprocess.Popen(["node", str(JS_HARNESS), str(node_modules), json.dumps(config)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        first = json.loads(process.stdout.readline() or "{}")
        assert "first" in first, f"the snippet's first sync failed: {first} {process.stderr.read()}"
        between()
        process.stdin.write("go on\n")
        process.stdin.flush()
        second = json.loads(process.stdout.readline() or "{}")
        assert "second" in second, f"the snippet's second sync failed: {second} {process.stderr.read()}"
        return {**first, **second}
    finally:
        process.stdin.close()
        process.wait(timeout=30)


# --- the collector ---------------------------------------------------------


def sybil():
    collector = Sybil(
        parsers=[
            CheckedPythonBlocks(),
            JsBlocks(),
            quickstart_parser,
            SkipParser(),
        ],
        patterns=["*.md"],
        setup=setup_page,
        teardown=teardown_page,
    )
    collector.path = DOCS  # Sybil takes path= relative to this file, and keeps its ".."
    return collector


LIVE_EVALUATORS = (evaluate_js, evaluate_js_following, evaluate_quickstart_step)


def is_live(item):
    region = getattr(getattr(item, "example", None), "region", None)
    return region is not None and region.evaluator in LIVE_EVALUATORS


def is_skip_directive(item):
    region = getattr(getattr(item, "example", None), "region", None)
    return region is not None and isinstance(region.evaluator, Skipper)


def mark_live(items):
    """Mark the examples that start a server or Node ``live``, and a skip directive right before one.

    A skip left to run while the block it names is deselected would skip
    the page's next block instead.
    """
    for before, item in zip([None, *items], items):
        if is_live(item):
            item.add_marker(pytest.mark.live)
            if before is not None and before.parent is item.parent and is_skip_directive(before):
                before.add_marker(pytest.mark.live)
