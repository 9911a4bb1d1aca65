"""One endpoint per registered model: ``path("", include("persistence_sync.urls"))``.

The patterns are those of :data:`persistence_sync.routers.default_router`,
read whenever Django (re)builds its URL resolver, so models registered after
this module is imported still appear. Reverse them as
``reverse("persistence_sync:<app_label>.<model_name>")``.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern

from persistence_sync.routers import default_router

app_name = "persistence_sync"


def __getattr__(name: str) -> list[URLPattern]:
    if name != "urlpatterns":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        return default_router.urls
    except AttributeError as exc:
        # Django reads getattr(module, "urlpatterns", module): an AttributeError
        # escaping from here would be taken for a missing urlpatterns and
        # reported as "does not appear to have any patterns ... circular
        # import", hiding the real error. Any other exception shows as it is.
        raise ImproperlyConfigured(
            f"persistence_sync could not build its URL patterns: {exc!r}"
        ) from exc
