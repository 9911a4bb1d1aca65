"""One endpoint per registered model: ``path("", include("persistence_sync.urls"))``.

The patterns are read from the registry whenever Django (re)builds its URL
resolver, so models registered after this module is imported still appear.
Reverse them as ``reverse("persistence_sync:<app_label>.<model_name>")``.
"""

from persistence_sync import registry

app_name = "persistence_sync"


def __getattr__(name):
    if name == "urlpatterns":
        return registry.urls()
    raise AttributeError(name)
