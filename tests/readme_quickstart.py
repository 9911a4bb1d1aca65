"""The README's quick start, pasted into a fresh project as a new user would.

README.md marks each step of its quick start with an HTML comment (invisible
on GitHub and PyPI) right before the code block it applies to::

    <!-- quickstart: run -->             a one-line shell command, run in the
                                          current directory; a ``cd`` carries on
    <!-- quickstart: write PATH -->      the block is the whole file PATH
    <!-- quickstart: append PATH -->     the block goes at the end of PATH

:func:`build_project` replays those steps in an empty directory with the
Python running this module (so ``python`` and ``django-admin`` are that
interpreter's), then :func:`check_and_sync` runs ``manage.py check`` and one
sync against the new project: a push and a pull through Django's test client,
and a logged-in push refused without the CSRF header and accepted with it.

``tests/test_readme.py`` runs this on the checkout under test. Run as a script,
it tests whatever ``persistence_sync`` the interpreter has installed, e.g. a
built wheel::

    .venv-wheel/bin/python tests/readme_quickstart.py
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

MARKED_BLOCK = re.compile(
    r"<!-- quickstart: (?P<action>run|write|append)(?: (?P<path>\S+))? -->\s*\n"
    r"(?P<indent>[ \t]*)```[a-z]*\n(?P<body>.*?)\n(?P=indent)```",
    re.DOTALL,
)

# The README's claims: an anonymous request is refused, and under session
# authentication a logged-in push needs the CSRF header, nothing else; then a
# push and a pull of the quick start's models.
SYNC_SCRIPT = r"""
import json
from django.contrib.auth import get_user_model
from django.test import Client
from django.test.utils import setup_test_environment

setup_test_environment()  # lets the test client's host, "testserver", in


def push(client, uri, items, **headers):
    return client.post(uri, json.dumps(items), content_type="application/json", **headers)


anonymous = Client()
refused = push(anonymous, "/projectChanges", [{"id": "P1", "name": "Home"}])
assert refused.status_code == 403, (refused.status_code, refused.content)

browser = Client(enforce_csrf_checks=True)
browser.force_login(get_user_model().objects.create_user("ada", password="x"))
browser.get("/admin/login/")  # a page with {% csrf_token %} sets the cookie
token = browser.cookies["csrftoken"].value
refused = push(browser, "/taskChanges", [])
assert refused.status_code == 403, (refused.status_code, refused.content)
answer = push(browser, "/projectChanges", [{"id": "P1", "name": "Home"}], HTTP_X_CSRFTOKEN=token)
assert answer.status_code == 200, answer.content
task = {"id": "T1", "name": "Paste the README", "done": True, "project": "P1"}
answer = push(browser, "/taskChanges", [task], HTTP_X_CSRFTOKEN=token)
assert answer.status_code == 200, answer.content

pulled = browser.get("/taskChanges", {"since": 0}).json()
assert [{k: u[k] for k in task} for u in pulled["updates"]] == [task], pulled
print("synced")
"""


class QuickStartError(AssertionError):
    pass


def quickstart_steps(readme_text):
    """The marked blocks as (action, path, code), in README order."""
    steps = []
    for match in MARKED_BLOCK.finditer(readme_text):
        indent = match["indent"]
        lines = match["body"].split("\n")
        code = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines)
        steps.append((match["action"], match["path"], code + "\n"))
    if not steps:
        raise QuickStartError(f"no <!-- quickstart: ... --> blocks in {README}")
    return steps


def environment(pythonpath=None):
    """This interpreter's bin directory first on PATH: its python and django-admin."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DJANGO_", "PS_DB", "PYTHONPATH"))}
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


def build_project(workdir, env, readme_text=None):
    """Replay the quick start in workdir; returns the directory it ends in (the project's)."""
    cwd = Path(workdir)
    for action, path, code in quickstart_steps(readme_text or README.read_text()):
        if action == "run":
            if "\n" in code.strip():
                raise QuickStartError(f"a quickstart run block is one line: {code!r}")
            # The shell's last directory is where the next step continues.
            output = run(f"{code.strip()} && pwd", cwd, env)
            cwd = Path(output.strip().splitlines()[-1])
        elif action == "write":
            (cwd / path).write_text(code)
        else:
            target = cwd / path
            target.write_text(target.read_text() + "\n\n" + code)
    return cwd


def check_and_sync(project, env):
    manage = [sys.executable, "manage.py"]
    run("manage.py check", project, env, [*manage, "check", "--fail-level", "WARNING"])
    return run("manage.py shell -c SYNC_SCRIPT", project, env, [*manage, "shell", "-c", SYNC_SCRIPT])


def main(pythonpath=None):
    env = environment(pythonpath)
    with tempfile.TemporaryDirectory(prefix="quickstart-") as workdir:
        project = build_project(workdir, env)
        output = check_and_sync(project, env)
    if "synced" not in output:
        raise QuickStartError(f"the sync script did not finish:\n{output}")
    return output


if __name__ == "__main__":
    main()
    print("The README's quick start builds a project that passes check and syncs.")
