"""Bad input gets a clear 4xx JSON error and changes nothing."""

import json

import pytest
from django.test import override_settings
from todo.models import Project, Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(sync):
    """A task that a refused push must leave exactly as it is."""
    sync.push("projectUpdates", [{"id": "P", "name": "p"}])
    sync.push("taskUpdates", [{"id": "KEEP", "name": "keep", "done": False, "project": "P"}])
    before = list(Task.objects.values_list("id", "name", "done", "project", "last_change"))
    yield
    assert list(Task.objects.values_list("id", "name", "done", "project", "last_change")) == before


def post(sync, body, content_type="application/json"):
    return sync.client.post("/taskUpdates", data=body, content_type=content_type)


def error_of(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "error" and body["error"]
    return body


@pytest.mark.parametrize("body", ["[{", " ", "[NaN]", "nan", b"\xff\xfe"])
def test_malformed_json(sync, stored, body):
    assert "JSON" in error_of(post(sync, body), 400)["error"]


@pytest.mark.parametrize("body", ['{"id": "X"}', '"text"', "3", "null"])
def test_a_body_that_is_not_an_array(sync, stored, body):
    assert "array" in error_of(post(sync, body), 400)["error"]


def bad_item(sync, items, index, obj_id, field):
    body = error_of(post(sync, json.dumps(items)), 400)
    assert {"index": index, "id": obj_id, "field": field} == {
        k: body["errors"][0][k] for k in ("index", "id", "field")
    }, body
    return body


def test_an_item_that_is_not_an_object(sync, stored):
    bad_item(sync, [{"id": "N", "name": "fine"}, ["not", "an", "object"]], 1, None, None)


@pytest.mark.parametrize("item", [{"name": "no id"}, {"id": 7, "name": "x"}, {"id": "", "name": "x"},
                                  {"id": None}])
def test_a_missing_or_non_string_id(sync, stored, item):
    bad_item(sync, [{"id": "N", "name": "fine"}, item], 1, item.get("id"), "id")


def test_an_id_longer_than_the_column(sync, stored):
    long_id = "X" * 33
    bad_item(sync, [{"id": long_id, "name": "x"}], 0, long_id, "id")


def test_an_unknown_field(sync, stored):
    bad_item(sync, [{"id": "KEEP", "name": "changed", "colour": "red"}], 0, "KEEP", "colour")


@pytest.mark.parametrize("field, value", [
    ("name", 5), ("name", None), ("name", "x" * 201), ("done", "yes"), ("done", 2),
    ("project", 12), ("project", ["P"]),
])
def test_a_value_of_the_wrong_type(sync, stored, field, value):
    bad_item(sync, [{"id": "KEEP", "name": "changed"}, {"id": "NEW", field: value}], 1, "NEW", field)


def test_a_relation_to_a_missing_object(sync, stored):
    body = bad_item(sync, [{"id": "KEEP", "name": "changed"}, {"id": "NEW", "project": "NOPE"}],
                    1, "NEW", "project")
    assert "NOPE" in body["errors"][0]["message"]


def test_every_bad_item_is_listed(sync, stored):
    body = error_of(post(sync, json.dumps([{"id": "A", "done": "x"}, {"id": "B", "name": 1}])), 400)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(0, "done"), (1, "name")]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_a_wrong_content_type(sync, stored, content_type):
    response = sync.client.generic("POST", "/taskUpdates", b'[{"id": "KEEP", "name": "no"}]',
                                   content_type=content_type)
    error_of(response, 415)


def test_content_type_parameters_are_accepted(sync):
    response = post(sync, '[{"id": "Z", "name": "z"}]', "application/json; charset=utf-8")
    assert response.status_code == 200


@override_settings(PERSISTENCE_SYNC={"MAX_BODY_SIZE": 100})
def test_a_body_over_the_limit_gets_413(sync, stored):
    body = json.dumps([{"id": "KEEP", "name": "x" * 200}])
    assert "MAX_BODY_SIZE" in error_of(post(sync, body), 413)["error"]


def test_a_failure_late_in_the_batch_stores_nothing(sync, stored):
    items = [{"id": f"N{i}", "name": "n"} for i in range(50)]
    items.append({"id": "KEEP", "_removed": True})
    items.append({"id": "LAST", "project": "MISSING"})
    error_of(post(sync, json.dumps(items)), 400)
    assert not Task.objects.filter(id__startswith="N").exists()
    assert Project.objects.count() == 1
