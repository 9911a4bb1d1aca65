from django.contrib import admin
from django.urls import include, path
from todo import clientlib

urlpatterns = [
    path("admin/", admin.site.urls),
    # Sign-in for the to-do page (demo / demo, made by migration todo.0003).
    path("accounts/", include("django.contrib.auth.urls")),
    # The persistence.js client from the npm cache (see todo.clientlib), for the
    # to-do page and the browser tests.
    path("vendor/<str:name>", clientlib.serve_client_file, name="client-file"),
    path("", include("todo.urls")),
    # /projectUpdates, /taskUpdates, /tagUpdates: one endpoint per registered model.
    path("", include("persistence_sync.urls")),
]
