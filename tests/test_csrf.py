"""Pushes from a logged-in browser session go through DRF's CSRF check."""

import pytest


@pytest.mark.django_db
def test_a_logged_in_push_with_the_csrf_token_is_accepted(django_user_model):
    """POST /taskUpdates as a logged-in user, X-CSRFToken set: 200; without it: 403."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_user("ada", password="x"))
    client.get("/admin/login/")  # any page rendering {% csrf_token %} sets the cookie
    token = client.cookies["csrftoken"].value

    def push(**headers):
        return client.post("/taskUpdates", "[]", content_type="application/json", **headers)

    without = push()
    assert (without.status_code, without.json()["status"]) == (403, "error")
    accepted = push(HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["status"] == "ok"
