"""The documentation cannot drift from the code.

Its code blocks run through Sybil (``docs/conftest.py``, ``tests/docs_examples.py``);
these tests hold the rest: the reference pages name every setting and check
the code has, the evaluators really fail on an example the checks would
report, a page leaves nothing behind, and the README's and CONTRIBUTING's
links lead somewhere.
"""

import re
import textwrap
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib import admin

from persistence_sync import checks, conf, registry
from tests import docs_examples

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def test_the_settings_reference_describes_every_setting():
    page = (DOCS / "settings.md").read_text()
    headings = set(re.findall(r"^#+ `([A-Z_]+)`$", page, re.MULTILINE))
    rows = set(re.findall(r"^\| \[`([A-Z_]+)`\]", page, re.MULTILINE))
    assert headings == rows == set(conf.DEFAULTS)


def test_the_settings_reference_block_holds_every_default():
    page = (DOCS / "settings.md").read_text()
    block = re.search(r"```python\n(import datetime\n\nPERSISTENCE_SYNC = \{.*?)```", page, re.DOTALL)[1]
    namespace = {}
    exec(block, namespace)
    assert namespace["PERSISTENCE_SYNC"] == conf.DEFAULTS


def test_the_checks_reference_describes_every_check():
    page = (DOCS / "checks.md").read_text()
    sections = {f"persistence_sync.{code}" for code in re.findall(r"^### ([EW]\d{3})$", page, re.MULTILINE)}
    rows = set(re.findall(r"^\| \[`(persistence_sync\.[EW]\d{3})`\]", page, re.MULTILINE))
    assert sections == rows == set(checks.CHECKS)


def run_page(tmp_path, markdown):
    """Evaluate a page's examples as the suite does; return the first failure, or None."""
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent(markdown))
    document = docs_examples.sybil().parse(page)
    docs_examples.setup_page(document.namespace)
    try:
        for example in document.examples():
            example.evaluate()
    except AssertionError as failure:
        return failure
    finally:
        docs_examples.teardown_page(document.namespace)
    return None


MODEL = '''
    ```python
    from django.conf import settings
    from django.db import models

    import persistence_sync
    from persistence_sync.models import SyncableModel


    @persistence_sync.register(uri="noteChanges", owner="owner")
    class Note(SyncableModel):
        owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
        text = models.TextField(blank=True)
    {meta}
    ```
'''
INDEXES = '''
        class Meta:
            indexes = [models.Index(fields=["owner", "id"], name="note_owner_id"),
                       models.Index(fields=["owner", "last_change"], name="note_owner_stamp")]
'''


def test_a_python_example_that_check_would_warn_about_fails(tmp_path):
    failure = run_page(tmp_path, MODEL.format(meta=""))
    assert failure is not None and "persistence_sync.W004" in str(failure)
    assert run_page(tmp_path, MODEL.format(meta=INDEXES)) is None


def test_a_settings_example_with_a_misspelt_key_fails(tmp_path):
    failure = run_page(tmp_path, '''
        ```python
        PERSISTENCE_SYNC = {"MAX_ITEM": 100}
        ```
    ''')
    assert failure is not None and "persistence_sync.E010" in str(failure) and "MAX_ITEMS" in str(failure)


def test_a_page_leaves_no_model_registration_receiver_or_admin_behind(tmp_path):
    original = registry.default
    assert run_page(tmp_path, MODEL.format(meta=INDEXES) + '''
    ```python
    from django.contrib import admin
    from django.dispatch import receiver

    from persistence_sync.signals import post_push


    @receiver(post_push)
    def audit(sender, **kwargs):
        pass


    admin.site.register(Note)
    ```
    ''') is None
    assert registry.default is original
    assert apps.all_models[docs_examples.DOCS_APP_LABEL] == {}
    assert not any(model._meta.app_label == docs_examples.DOCS_APP_LABEL for model in admin.site._registry)
    from persistence_sync.signals import post_push

    assert not any(getattr(ref(), "__name__", "") == "audit" for _, ref, *_ in post_push.receivers
                   if callable(ref))


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", ["README.md", "CONTRIBUTING.md", "CHANGELOG.md"])
def test_the_relative_links_of_the_top_level_pages_lead_to_files(page):
    links = [link for link in LINK.findall((REPO / page).read_text()) if "://" not in link]
    assert links or page == "CHANGELOG.md"
    missing = [link for link in links if not (REPO / link).exists()]
    assert missing == []
