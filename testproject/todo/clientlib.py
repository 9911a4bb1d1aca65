"""The real persistence.js client, fetched from npm at run time (demo and test support).

The example site's to-do page and the browser tests run the unmodified
JavaScript client that this project's server has to satisfy: persistence.js
0.3.0 from npm, its SQL stores, and its sync plug-in. Modern Chromium has no
Web SQL any more, so the page also needs sql.js (SQLite compiled to
WebAssembly), on top of which ``todo/static/todo/websql.js`` provides
``window.openDatabase``.

None of these files is vendored into the repository. The first call that needs
one runs::

    npm install --prefix <cache> --no-save --ignore-scripts --no-audit --no-fund \
        persistencejs@0.3.0 sql.js@<SQLJS_VERSION>

into a cache outside the repository, ``~/.cache/django-persistence-sync/npm``
unless the environment variable ``PERSISTENCE_SYNC_NPM_CACHE`` names another
directory. Later calls find the pinned versions there and do not touch the
network. Without npm (and without a filled cache) everything here raises
``ClientLibUnavailable`` whose message says how to enable it.

The shipped ``lib/persistence.sync.js`` has two upstream bugs that make every
sync fail and logs to the console on every sync; ``SYNC_JS_PATCHES`` lists
the two minimal fixes and the one line made quiet (unless
``persistence.debug``) that we apply when serving it, and nothing else of the
client is changed.

Usage::

    from todo import clientlib

    clientlib.client_file_path("persistence.js")   # Path in the npm cache
    clientlib.patched_sync_js()                     # text of the fixed plug-in

    # example site urls.py
    path("vendor/<str:name>", clientlib.serve_client_file)
"""

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import NamedTuple

from django.http import FileResponse, Http404, HttpResponse
from django.views.decorators.http import require_safe

PERSISTENCEJS_VERSION = "0.3.0"
SQLJS_VERSION = "1.13.0"
NPM_PACKAGES = {"persistencejs": PERSISTENCEJS_VERSION, "sql.js": SQLJS_VERSION}

CACHE_ENV_VAR = "PERSISTENCE_SYNC_NPM_CACHE"
DEFAULT_CACHE_DIR = "~/.cache/django-persistence-sync/npm"
NPM_INSTALL_TIMEOUT = 300  # seconds; a cold install downloads about 2 MB

JAVASCRIPT = "application/javascript"
WASM = "application/wasm"

# Served name -> (npm package, path inside the package, content type).
CLIENT_FILES = {
    "persistence.js": ("persistencejs", "lib/persistence.js", JAVASCRIPT),
    "persistence.store.sql.js": ("persistencejs", "lib/persistence.store.sql.js", JAVASCRIPT),
    "persistence.store.websql.js": ("persistencejs", "lib/persistence.store.websql.js", JAVASCRIPT),
    "persistence.sync.js": ("persistencejs", "lib/persistence.sync.js", JAVASCRIPT),
    "sql-wasm.js": ("sql.js", "dist/sql-wasm.js", JAVASCRIPT),
    "sql-wasm.wasm": ("sql.js", "dist/sql-wasm.wasm", WASM),
}
PATCHED_FILE = "persistence.sync.js"

HOW_TO_ENABLE = (
    "The persistence.js client is installed from npm at run time. Put npm on PATH "
    "(Debian: apt-get install npm) with access to the npm registry, or fill the cache "
    f"yourself: npm install --prefix <dir> --no-save persistencejs@{PERSISTENCEJS_VERSION} "
    f"sql.js@{SQLJS_VERSION}, then set {CACHE_ENV_VAR}=<dir>."
)


class ClientLibUnavailable(RuntimeError):
    """The npm packages are not in the cache and cannot be installed."""


class PatchDoesNotApply(RuntimeError):
    """persistence.sync.js does not contain a patch's old text exactly once."""


class Patch(NamedTuple):
    name: str
    why: str
    old_text: str
    new_text: str


# The only changes made to the client. Each old_text must occur exactly once.
SYNC_JS_PATCHES = (
    Patch(
        name="keep-existing-items",
        why=(
            "cacheAndFindUpdates collects the local copies of pulled objects with "
            "existingItems.concat(...) and discards the result, so it never sees an "
            "object it already has: remote updates are re-added as new objects (a "
            "primary key clash) and conflicts are never detected."
        ),
        old_text="          existingItems.concat(groupOfExistingItems);\n",
        new_text="          existingItems = existingItems.concat(groupOfExistingItems);\n",
    ),
    Patch(
        name="drop-dead-id-loop",
        why=(
            "The block under '/* ensure IDs var chars */' reads a variable 'group' that "
            "does not exist in that scope, a ReferenceError on every sync; its result "
            "idVals is never used, so the block is removed."
        ),
        old_text=(
            "          /* ensure IDs var chars */\n"
            "          var idVals = new Array();\n"
            "          for(var id=0;id<group.length;id++){\n"
            "            idVals.push( persistence.typeMapper.entityIdToDbId(group[id]));\n"
            "          }\n"
            "\n"
        ),
        new_text="",
    ),
    Patch(
        name="quiet-new-items",
        why=(
            "cacheAndFindUpdates logs the local changes it found with console.log on every "
            "sync, whatever persistence.debug says; it now logs only when debugging, like "
            "the SQL stores."
        ),
        old_text='                  console.log("New items: ", newItems);\n',
        new_text='                  if (persistence.debug) console.log("New items: ", newItems);\n',
    ),
)


def apply_patches(text, patches=SYNC_JS_PATCHES):
    """Return ``text`` with every patch applied; raise if an old text is not found once."""
    for patch in patches:
        count = text.count(patch.old_text)
        if count != 1:
            raise PatchDoesNotApply(
                f"Patch {patch.name!r} expects its old text exactly once in "
                f"{PATCHED_FILE} (persistencejs {PERSISTENCEJS_VERSION}) but found it "
                f"{count} times; the npm package is not the version these fixes were "
                f"written for."
            )
        text = text.replace(patch.old_text, patch.new_text)
    return text


def cache_dir():
    """The npm prefix holding ``node_modules`` (outside the repository)."""
    return Path(os.environ.get(CACHE_ENV_VAR) or DEFAULT_CACHE_DIR).expanduser()


def _installed_version(package):
    manifest = cache_dir() / "node_modules" / package / "package.json"
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None


def is_installed():
    """True when the cache holds exactly the pinned versions."""
    return all(_installed_version(pkg) == ver for pkg, ver in NPM_PACKAGES.items())


_install_lock = threading.Lock()  # the dev server answers the page's requests in threads


def ensure_installed():
    """Install the pinned npm packages into the cache unless they are there already."""
    with _install_lock:
        if is_installed():
            return cache_dir()
        npm = shutil.which("npm")
        if npm is None:
            raise ClientLibUnavailable(f"npm is not on PATH. {HOW_TO_ENABLE}")
        prefix = cache_dir()
        prefix.mkdir(parents=True, exist_ok=True)
        # All packages in one command: with --no-save npm prunes what a
        # command does not name, so installing them separately would undo
        # the previous install.
        command = [
            npm, "install", "--prefix", str(prefix),
            "--no-save", "--ignore-scripts", "--no-audit", "--no-fund",
            *(f"{pkg}@{ver}" for pkg, ver in NPM_PACKAGES.items()),
        ]  # fmt: skip
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=NPM_INSTALL_TIMEOUT
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClientLibUnavailable(
                f"{' '.join(command)} failed: {exc}. {HOW_TO_ENABLE}"
            ) from exc
        if result.returncode != 0 or not is_installed():
            output = (result.stderr or result.stdout).strip()[-2000:]
            raise ClientLibUnavailable(
                f"{' '.join(command)} exited with {result.returncode}:\n{output}\n{HOW_TO_ENABLE}"
            )
        return prefix


def client_file_path(name):
    """Path of a served client file in the npm cache, installing it if needed.

    Note that ``persistence.sync.js`` at this path is the unpatched original;
    serve ``patched_sync_js()`` instead.
    """
    try:
        package, relative_path, _ = CLIENT_FILES[name]
    except KeyError:
        raise KeyError(
            f"{name!r} is not a client file; choose one of {sorted(CLIENT_FILES)}"
        ) from None
    return ensure_installed() / "node_modules" / package / relative_path


def client_file_paths():
    """Every served name mapped to its path in the npm cache."""
    return {name: client_file_path(name) for name in CLIENT_FILES}


def patched_sync_js():
    """Text of ``persistence.sync.js`` with ``SYNC_JS_PATCHES`` applied."""
    original = client_file_path(PATCHED_FILE).read_text(encoding="utf-8")
    return apply_patches(original)


@require_safe
def serve_client_file(request, name):
    """Serve one client file from the npm cache (GET/HEAD ``vendor/<name>``)."""
    if name not in CLIENT_FILES:
        raise Http404(f"No client file named {name!r}.")
    content_type = CLIENT_FILES[name][2]
    try:
        if name == PATCHED_FILE:
            return HttpResponse(patched_sync_js(), content_type=f"{content_type}; charset=utf-8")
        return FileResponse(client_file_path(name).open("rb"), content_type=content_type)
    except ClientLibUnavailable as exc:
        return HttpResponse(
            f"The persistence.js client is not available: {exc}\n",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
