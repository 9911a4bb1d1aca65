from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("todo.urls")),
    # /projectUpdates, /taskUpdates, /tagUpdates: one endpoint per registered model.
    path("", include("persistence_sync.urls")),
]
