"""URLs of a registry's endpoints, built as DRF's routers build their viewsets'.

A :class:`SyncRouter` serves one registry: one classic endpoint per
registration at its URI, named after the model's label, and WatermelonDB's
endpoint for every model at ``watermelon``, and the change feed at ``events``
(:mod:`persistence_sync.feed`)::

    # urls.py
    urlpatterns = [path("sync/", include(SyncRouter(my_registry).urls))]

``include("persistence_sync.urls")`` serves :data:`default_router`, which
follows :data:`persistence_sync.registry.default`. The URLs are built when
first asked for and rebuilt after any registration changes, also in URL
resolvers Django has loaded already.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.urls import URLPattern, URLResolver, clear_url_caches, get_resolver, path

from persistence_sync import registry as registries
from persistence_sync.classic import endpoint_class
from persistence_sync.endpoints import as_view
from persistence_sync.feed.views import EventsEndpoint
from persistence_sync.registry import SyncRegistry
from persistence_sync.watermelon import WatermelonEndpoint

__all__ = ["SyncRouter", "default_router"]


class SyncRouter:
    """The URL patterns of ``registry``'s endpoints (default: the current default registry)."""

    def __init__(self, registry: SyncRegistry | None = None) -> None:
        self._registry = registry
        self._urls: list[URLPattern] | None = None
        _routers.append(self)
        if registry is not None:
            registries.served(registry)

    @property
    def registry(self) -> SyncRegistry:
        # The default router follows registry.default, which tests may swap.
        return self._registry or registries.default

    @property
    def urls(self) -> list[URLPattern]:
        """One pattern per registration, parents first, then WatermelonDB's and the change feed's; cached."""
        if self._urls is None:
            self._urls = self.get_urls()
        return self._urls

    def get_urls(self) -> list[URLPattern]:
        served = self.registry
        return [
            *(path(reg.uri, as_view(endpoint_class(reg, served)), name=reg.label)
              for reg in served.registrations()),
            path("watermelon", as_view(WatermelonEndpoint, registry=served), name="watermelon"),
            path("events", as_view(EventsEndpoint, registry=served), name="events"),  # the change feed
        ]

    def invalidate(self) -> None:
        """Forget the cached URLs, and make the URL resolvers serving them reload."""
        stale, self._urls = self._urls, None
        if stale is not None:
            _reset_resolvers_serving(stale, lambda: self.urls)
        clear_url_caches()


# Every router made (a few, at import): kept, since include(SyncRouter(r).urls) keeps
# only the patterns, and those must still be rebuilt when r changes.
_routers: list[SyncRouter] = []


def _registrations_changed(changed: SyncRegistry) -> None:
    for router in _routers:
        if router.registry is changed or router._registry is None:
            router.invalidate()


registries.on_change(_registrations_changed)


def _reset_resolvers_serving(stale: list[URLPattern],
                             fresh: Callable[[], list[URLPattern]]) -> None:
    """Reset every loaded URL resolver whose patterns are ``stale``.

    ``include()`` makes a resolver that caches its patterns, and Django's
    ``clear_url_caches()`` drops only the root resolver. A resolver made by
    ``include("persistence_sync.urls")`` reads the module again; one made by
    ``include(router.urls)`` holds the list itself, whether it loaded it yet
    or not, and is given ``fresh()``. Before the URLconf is imported
    (registrations at import time) nothing holds them and nothing is loaded here.
    """
    if getattr(settings, "ROOT_URLCONF", None) not in sys.modules:
        return
    pending: list[Any] = list(get_resolver().url_patterns)
    while pending:
        pattern = pending.pop()
        if not isinstance(pattern, URLResolver):
            continue
        # A resolver holds the list itself (include(router.urls)), loaded or not,
        # or loaded it from a module (include("persistence_sync.urls")).
        loaded = pattern.__dict__.get("url_patterns")
        if loaded is stale or pattern.urlconf_name is stale:
            for cached in ("url_patterns", "urlconf_module"):
                pattern.__dict__.pop(cached, None)
            urlconf = fresh() if pattern.urlconf_name is stale else pattern.urlconf_name
            URLResolver.__init__(pattern, pattern.pattern, urlconf, pattern.default_kwargs,
                                 pattern.app_name, pattern.namespace)
        elif loaded:
            pending.extend(loaded)


#: The router of ``include("persistence_sync.urls")``: the default registry's endpoints.
default_router = SyncRouter()
