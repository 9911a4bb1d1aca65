"""todo.clientlib: the patches to persistence.sync.js and the vendor/<name> view.

The patch tests are pure text tests. The tests on the real npm file and on
serving it need the npm cache (filled on demand) and skip, saying how to
enable them, when npm is unavailable.
"""

import pytest
from todo import clientlib
from todo.clientlib import SYNC_JS_PATCHES, Patch, PatchDoesNotApply, apply_patches


def text_with_every_old_text():
    return "// head\n" + "// between\n".join(p.old_text for p in SYNC_JS_PATCHES) + "// tail\n"


def test_each_fix_applies_exactly_once():
    patched = apply_patches(text_with_every_old_text())
    for patch in SYNC_JS_PATCHES:
        assert patch.old_text not in patched or patch.old_text in patch.new_text
        if patch.new_text:
            assert patched.count(patch.new_text) == 1
    assert patched.startswith("// head\n") and patched.endswith("// tail\n")


def test_fixes_are_named_and_explained():
    names = [p.name for p in SYNC_JS_PATCHES]
    assert names == ["keep-existing-items", "drop-dead-id-loop", "quiet-new-items"]
    assert all(p.why and p.old_text for p in SYNC_JS_PATCHES)


@pytest.mark.parametrize("patch", SYNC_JS_PATCHES, ids=lambda p: p.name)
def test_text_lacking_a_fix_snippet_raises(patch):
    text = text_with_every_old_text().replace(patch.old_text, "")
    with pytest.raises(PatchDoesNotApply, match=patch.name):
        apply_patches(text)


def test_snippet_found_twice_raises():
    patch = Patch("twice", "example", "a;\n", "b;\n")
    with pytest.raises(PatchDoesNotApply, match="found it 2 times"):
        apply_patches("a;\na;\n", [patch])


@pytest.fixture
def installed():
    try:
        return clientlib.ensure_installed()
    except clientlib.ClientLibUnavailable as exc:
        pytest.skip(str(exc))


def test_real_sync_js_gets_exactly_the_patches(installed):
    original = clientlib.client_file_path("persistence.sync.js").read_text(encoding="utf-8")
    patched = clientlib.patched_sync_js()
    assert "existingItems = existingItems.concat(groupOfExistingItems);" in patched
    assert "group.length" not in patched and "idVals" not in patched
    assert 'if (persistence.debug) console.log("New items: "' in patched
    removed = sum(len(p.old_text) - len(p.new_text) for p in SYNC_JS_PATCHES)
    assert len(original) - len(patched) == removed


def test_unknown_name_is_404(rf):
    from django.http import Http404

    with pytest.raises(Http404):
        clientlib.serve_client_file(rf.get("/vendor/evil.js"), "../../etc/passwd")


def test_without_npm_the_view_answers_503_saying_how_to_enable(rf, tmp_path, monkeypatch):
    monkeypatch.setenv(clientlib.CACHE_ENV_VAR, str(tmp_path))
    monkeypatch.setattr(clientlib.shutil, "which", lambda name: None)
    response = clientlib.serve_client_file(rf.get("/vendor/persistence.js"), "persistence.js")
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/plain")
    assert b"npm is not on PATH" in response.content
    assert clientlib.CACHE_ENV_VAR.encode() in response.content


@pytest.mark.parametrize(
    "name, content_type",
    [
        ("persistence.js", "application/javascript"),
        ("persistence.sync.js", "application/javascript"),
        ("sql-wasm.wasm", "application/wasm"),
    ],
)
@pytest.mark.django_db  # closing a response sends request_finished, which checks connections
def test_serves_client_files_with_their_content_type(installed, rf, name, content_type):
    response = clientlib.serve_client_file(rf.get(f"/vendor/{name}"), name)
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] == content_type
    body = b"".join(response) if response.streaming else response.content
    response.close()
    if name == "persistence.sync.js":
        assert body.decode() == clientlib.patched_sync_js()
    elif name == "sql-wasm.wasm":
        assert body[:4] == b"\0asm"
