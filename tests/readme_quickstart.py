"""The README's quick start (and the tutorial), pasted into a fresh project as a new user would.

A page marks each step with an HTML comment (invisible on GitHub, PyPI and
the documentation site) right before the code block it applies to::

    <!-- quickstart: run -->             a one-line shell command, run in the
                                          current directory; a ``cd`` and the
                                          variables it exports carry on
    <!-- quickstart: write PATH -->      the block is the whole file PATH
    <!-- quickstart: append PATH -->     the block goes at the end of PATH
    <!-- quickstart: serve -->           a ``manage.py runserver`` line, run in
                                          the background until the replay ends
    <!-- quickstart: output -->          what the last ``run`` printed; ``...``
                                          stands for any text (a token, a stamp)

:class:`Replay` replays those steps in an empty directory with the Python
running this module (so ``python`` and ``django-admin`` are that
interpreter's). The server of a ``serve`` step listens on a free port, not the
8000 the page shows (another server may hold it), and the later steps'
``127.0.0.1:8000`` point there. A replay without a server (``serve=False``,
the fast suite's) stops at the ``serve`` step.

:func:`check_and_sync` then runs ``manage.py check`` and one sync against the
new project through Django's test client: an anonymous request refused, a
device's token, and a browser's session (signed in through the admin's login
form) whose push is refused without the CSRF header and accepted with it.

``tests/test_readme.py`` runs this on the checkout under test, and
``docs/conftest.py``'s Sybil replays docs/tutorial.md with it. Run as a
script, it replays the README whole (the server and its ``curl`` steps
included) with whatever ``persistence_sync`` the interpreter has installed,
e.g. a built wheel::

    .venv-wheel/bin/python tests/readme_quickstart.py
"""

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

MARKER = r"<!-- quickstart: (?P<action>run|write|append|serve|output)(?: (?P<path>\S+))? -->"
MARKED_BLOCK = re.compile(
    MARKER + r"\s*\n(?P<indent>[ \t]*)```[a-z]*\n(?P<body>.*?)\n(?P=indent)```",
    re.DOTALL,
)
SHOWN_ADDRESS = "127.0.0.1:8000"  # where the pages say runserver listens

# The README's claims: an anonymous request is refused; a device signs in with
# a token; a browser with a session, whose pushes need the CSRF header and
# nothing else; then a push and a pull of the quick start's per-user models.
SYNC_SCRIPT = r"""
import json
from django.contrib.auth import get_user_model
from django.test import Client
from django.test.utils import setup_test_environment
from rest_framework.authtoken.models import Token

setup_test_environment()  # lets the test client's host, "testserver", in
User = get_user_model()


def push(client, uri, items, **headers):
    return client.post(uri, json.dumps(items), content_type="application/json", **headers)


anonymous = Client()
refused = push(anonymous, "/projectChanges", [{"id": "SCRIPT-P1", "name": "Home"}])
assert refused.status_code in (401, 403), (refused.status_code, refused.content)

# A browser: signed in through a login form (the admin's), then the CSRF token.
User.objects.create_superuser("ada", "ada@example.com", "a-password")
browser = Client(enforce_csrf_checks=True)
browser.get("/admin/login/")  # a page with {% csrf_token %} sets the cookie
token = browser.cookies["csrftoken"].value
signed_in = browser.post("/admin/login/", {"username": "ada", "password": "a-password",
                                           "csrfmiddlewaretoken": token, "next": "/admin/"})
assert signed_in.status_code == 302, signed_in.content
token = browser.cookies["csrftoken"].value  # rotated at sign-in
refused = push(browser, "/taskChanges", [])
assert refused.status_code == 403, (refused.status_code, refused.content)
answer = push(browser, "/projectChanges", [{"id": "SCRIPT-P1", "name": "Home"}], HTTP_X_CSRFTOKEN=token)
assert answer.status_code == 200, answer.content
task = {"id": "SCRIPT-T1", "name": "Paste the README", "done": True, "project": "SCRIPT-P1"}
answer = push(browser, "/taskChanges", [task], HTTP_X_CSRFTOKEN=token)
assert answer.status_code == 200, answer.content
pulled = browser.get("/taskChanges", {"since": 0}).json()
assert [{k: u[k] for k in task} for u in pulled["updates"]] == [task], pulled

# A device: a token of its own user, who sees only their own objects.
bob = User.objects.create_user("bob", password="b-password")
device = Client(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=bob).key)
assert device.get("/taskChanges", {"since": 0}).json()["updates"] == []
answer = push(device, "/taskChanges", [{"id": "SCRIPT-T2", "name": "From the phone"}])
assert answer.status_code == 200, answer.content
[mine] = device.get("/taskChanges", {"since": 0}).json()["updates"]
assert mine["id"] == "SCRIPT-T2" and mine["owner"] == bob.pk, mine
print("synced")
"""


class QuickStartError(AssertionError):
    pass


def quickstart_steps(text, source=README):
    """The marked blocks as (action, path, code), in page order."""
    steps = []
    for match in MARKED_BLOCK.finditer(text):
        indent = match["indent"]
        lines = match["body"].split("\n")
        code = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines)
        steps.append((match["action"], match["path"], code + "\n"))
    if not steps:
        raise QuickStartError(f"no <!-- quickstart: ... --> blocks in {source}")
    return steps


def environment(pythonpath=None):
    """This interpreter's bin directory first on PATH: its python and django-admin."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DJANGO_", "PS_DB", "PYTHONPATH", "PERSISTENCE_SYNC"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def run(command, cwd, env, args=None):
    result = subprocess.run(
        args or ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise QuickStartError(
            f"{command!r} failed in {cwd} (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def matches_shown_output(shown, printed):
    """Whether ``printed`` is what a page shows, ``...`` standing for any text."""
    pattern = ".*?".join(re.escape(part) for part in shown.strip().split("..."))
    return re.fullmatch(pattern, printed.strip(), re.DOTALL) is not None


class Replay:
    """A project built step by step, as a reader pasting a page's marked blocks builds it.

    Each ``run`` step is a new ``bash`` in the directory the last one ended
    in, with the variables the earlier ones exported, as in one terminal.
    """

    def __init__(self, workdir, env, serve=True):
        self.cwd = Path(workdir)
        self.env = env
        self.serve_enabled = serve
        self.state = Path(tempfile.mkdtemp(prefix="quickstart-state-"))
        (self.state / "variables").write_text("")
        self.server = None
        self.port = None
        self.stopped_at_serve = False
        self.last_output = ""

    def apply(self, action, path, code):
        if self.stopped_at_serve:
            return
        getattr(self, f"step_{action}")(path, code)

    def replay(self, steps):
        for step in steps:
            self.apply(*step)
        return self.cwd

    def shown_to_served(self, code):
        return code.replace(SHOWN_ADDRESS, f"127.0.0.1:{self.port}") if self.port else code

    def shell(self, code):
        """``code`` after the earlier steps' variables, in the current directory."""
        return f". {shlex.quote(str(self.state / 'variables'))}\n{self.shown_to_served(code)}"

    def step_run(self, path, code):
        if "\n" in code.strip():
            raise QuickStartError(f"a quickstart run block is one line: {code!r}")
        save = (f"pwd > {shlex.quote(str(self.state / 'cwd'))} && "
                f"export -p > {shlex.quote(str(self.state / 'variables'))}")
        self.last_output = run(f"{self.shell(code.strip())} && {save}", self.cwd, self.env)
        # The shell's last directory is where the next step continues.
        self.cwd = Path((self.state / "cwd").read_text().strip())

    def step_write(self, path, code):
        (self.cwd / path).write_text(code)

    def step_append(self, path, code):
        target = self.cwd / path
        target.write_text(target.read_text() + "\n\n" + code)

    def step_output(self, path, code):
        if not matches_shown_output(code, self.last_output):
            raise QuickStartError(f"the page shows\n{code}\nbut the command printed\n{self.last_output}")

    def step_serve(self, path, code):
        if not self.serve_enabled:
            self.stopped_at_serve = True
            return
        if not code.strip().endswith("runserver"):
            raise QuickStartError(f"a quickstart serve block is a runserver line: {code!r}")
        self.port = free_port()
        command = self.shell(f"exec {code.strip()} --noreload 127.0.0.1:{self.port}")
        self.log = open(self.state / "server.log", "wb")  # closed by stop_server()
        self.server = subprocess.Popen(["bash", "-c", command], cwd=self.cwd, env=self.env,
                                       stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.wait_until_serving()

    def wait_until_serving(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                break
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5)
                return
            except urllib.error.HTTPError:  # any answer: it serves (a 404 at / is fine)
                return
            except OSError:
                time.sleep(0.2)
        log = (self.state / "server.log").read_text(errors="replace")
        raise QuickStartError(f"the quick start's server never answered:\n{log}")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Stop the server, if a step started one, and forget the shell's state."""
        self.stop_server()
        shutil.rmtree(self.state, ignore_errors=True)

    def stop_server(self):
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
            self.log.close()
            self.server = None


def check_and_sync(project, env):
    manage = [sys.executable, "manage.py"]
    run("manage.py check", project, env, [*manage, "check", "--fail-level", "WARNING"])
    return run("manage.py shell -c SYNC_SCRIPT", project, env, [*manage, "shell", "-c", SYNC_SCRIPT])


def main(pythonpath=None, serve=True, page=README):
    """Replay ``page``'s quick start (with its server unless ``serve`` is false), then sync."""
    env = environment(pythonpath)
    with tempfile.TemporaryDirectory(prefix="quickstart-") as workdir:
        with Replay(workdir, env, serve=serve) as replay:
            project = replay.replay(quickstart_steps(page.read_text(), page))
        output = check_and_sync(project, env)
    if "synced" not in output:
        raise QuickStartError(f"the sync script did not finish:\n{output}")
    return output


if __name__ == "__main__":
    main()
    print("The README's quick start builds a project that serves, passes check and syncs.")
