"""The example site's to-do page: the real persistence.js client, synced with this site.

The page keeps the tasks in the browser (persistence.js on the Web SQL
polyfill, saved in localStorage) and syncs them with /projectUpdates and
/taskUpdates when the user presses Sync. It needs a logged-in user (the
models are per user); the demo account is demo / demo. Everything it needs in the browser
is in ``todo/templates/todo/index.html`` and ``todo/static/todo/app.js``; the
client itself is served from the npm cache at ``/vendor/<name>`` (see
:mod:`todo.clientlib`).
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from todo import clientlib
from todo.models import Project

DEFAULT_PROJECT_NAME = "My tasks"


@login_required  # the page syncs the user's own projects and tasks
@ensure_csrf_cookie  # the page sends the cookie's token with every push
def index(request):
    try:
        clientlib.ensure_installed()
        client_unavailable = None
    except clientlib.ClientLibUnavailable as exc:
        client_unavailable = str(exc)
    if not Project.objects.filter(owner=request.user).exists():
        # Made here, once per user, rather than by every browser that finds no project.
        Project.objects.create(owner=request.user, name=DEFAULT_PROJECT_NAME)
    return render(
        request,
        "todo/index.html",
        {
            "client_unavailable": client_unavailable,
            "persistencejs_version": clientlib.PERSISTENCEJS_VERSION,
            "sqljs_version": clientlib.SQLJS_VERSION,
        },
    )
