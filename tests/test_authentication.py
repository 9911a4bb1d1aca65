"""persistence_sync.authentication.TokenAuthentication answers as DRF's own, request by request."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework import authentication as drf
from rest_framework import exceptions
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.test import APIClient, APIRequestFactory
from todo.models import Task

from persistence_sync.authentication import TokenAuthentication

pytestmark = pytest.mark.django_db

DRF, OURS = drf.TokenAuthentication, TokenAuthentication


@pytest.fixture
def token():
    user = get_user_model().objects.create_user("tess", password="unused")
    return Token.objects.create(user=user)


def answers(header):
    """``{class: outcome}`` of authenticating the same request with DRF's class and ours:
    ``(user pk, token key)``, or the refusal's ``(status, detail)``."""
    found = {}
    for authentication in (drf.TokenAuthentication(), TokenAuthentication()):
        request = Request(APIRequestFactory().get("/taskUpdates", HTTP_AUTHORIZATION=header))
        try:
            user, auth = authentication.authenticate(request)
            found[type(authentication)] = (user.pk, auth.key)
        except exceptions.AuthenticationFailed as exc:
            found[type(authentication)] = (exc.status_code, str(exc.detail))
    return found


def test_the_example_site_uses_it():
    assert TokenAuthentication in api_settings.DEFAULT_AUTHENTICATION_CLASSES


def test_a_token_signs_its_user_in_and_the_request_carries_the_token(token):
    for _ in range(3):  # compiled at the first call, bound at the others
        user, auth = TokenAuthentication().authenticate_credentials(token.key)
        assert (user.pk, user.username, user.is_active) == (token.user.pk, "tess", True)
        assert user.check_password("unused")
        assert (auth.key, auth.user_id, auth.created) == (token.key, token.user_id, token.created)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.post("/taskUpdates", [{"id": "t1", "name": "x"}], format="json").status_code == 200
    assert Task.objects.get(pk="t1").owner_id == token.user_id


@pytest.mark.parametrize("header", ["Token", "Token a b", "Token nosuchtoken", "Token \u00e9"])
def test_bad_headers_get_drfs_answers(token, header):
    found = answers(header)
    assert found[OURS] == found[DRF] and found[OURS][0] == 401


def test_a_deleted_token_or_an_inactive_user_is_refused_at_the_next_request(token):
    header = f"Token {token.key}"
    assert answers(header) == {DRF: (token.user.pk, token.key), OURS: (token.user.pk, token.key)}
    token.user.is_active = False
    token.user.save()
    assert answers(header) == {DRF: (401, "User inactive or deleted."),
                               OURS: (401, "User inactive or deleted.")}
    token.delete()
    assert answers(header) == {DRF: (401, "Invalid token."), OURS: (401, "Invalid token.")}
