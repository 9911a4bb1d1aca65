from django.http import HttpResponse


def index(request):
    return HttpResponse(
        "<h1>django-persistence-sync example</h1>"
        '<p>Sync endpoints: <a href="/projectUpdates">/projectUpdates</a>, '
        '<a href="/taskUpdates">/taskUpdates</a>, <a href="/tagUpdates">/tagUpdates</a>; '
        'the <a href="/admin/">admin</a>.</p>'
    )
