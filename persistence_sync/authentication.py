"""DRF's token authentication, with its query compiled once per process.

A device signs every poll and push with its token. DRF's
``TokenAuthentication`` builds and compiles
``Token.objects.select_related("user").get(key=...)`` on each request: on a
one-object push that was a seventh of the server's time. This subclass
answers exactly as DRF's does (same header, same errors, ``request.auth`` a
token instance), reading the token and its user in one query compiled once
(:mod:`persistence_sync.compiled`); nothing is cached but the SQL, so a
deleted token or a deactivated user is refused at once::

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework.authentication.SessionAuthentication",
            "persistence_sync.authentication.TokenAuthentication",
        ],
    }

A token or user model whose default manager overrides ``get_queryset`` is
looked up by DRF's own code.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from persistence_sync import compiled


class TokenAuthentication(authentication.TokenAuthentication):
    """``rest_framework.authentication.TokenAuthentication``, its lookup compiled once."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        model: Any = self.get_model()
        user_model: Any = model._meta.get_field("user").related_model
        if not (compiled.static_manager(model.objects)
                and compiled.static_manager(user_model._default_manager)):
            return super().authenticate_credentials(key)
        token_fields = [field for field in model._meta.concrete_fields]
        user_fields = [field for field in user_model._meta.concrete_fields]
        using = model.objects.db

        def build(marked_key):
            # A relation by its name reads its id, stored under the attname.
            return model.objects.filter(key=marked_key).values_list(
                *(field.name for field in token_fields),
                *(f"user__{field.name}" for field in user_fields))

        rows = compiled.fetch(using, ("token", model), build, key)
        if not rows:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        row, split = rows[0], len(token_fields)
        token = model.from_db(using, [field.attname for field in token_fields], row[:split])
        user = user_model.from_db(using, [field.attname for field in user_fields], row[split:])
        token.user = user
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, token
