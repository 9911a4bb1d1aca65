"""The value table: how each field type travels, both ways."""

import datetime
import decimal

import pytest
from django.test import override_settings

from tests.testapp.models import Gadget

pytestmark = pytest.mark.django_db

JAN_15 = 1705314600  # 2024-01-15T10:30:00Z in seconds


def test_every_type_is_pulled_as_its_wire_value(sync):
    stored = Gadget.objects.create(
        id="G", name="g", count=3, price=decimal.Decimal("9.50"), ratio=0.25, active=False,
        due=datetime.datetime(2024, 1, 15, 10, 30, tzinfo=datetime.timezone.utc),
        day=datetime.date(2024, 1, 15), data={"a": [1, None]},
    )
    [gadget] = sync.pull("gadgets")["updates"]
    assert gadget == {
        "id": "G", "name": "g", "count": 3, "price": 9.5, "ratio": 0.25, "active": False,
        "due": JAN_15, "day": 1705276800, "data": {"a": [1, None]}, "size": "S",
        "_lastChange": stored.last_change,
    }
    assert "secret" not in gadget  # excluded from sync


def test_pushed_values_are_stored_as_their_python_values(sync):
    sync.push("gadgets", [{"id": "G", "name": "g", "count": 2, "price": 1.25, "ratio": 3,
                           "active": 1, "due": JAN_15, "day": JAN_15, "data": [True]}])
    gadget = Gadget.objects.get()
    assert gadget.price == decimal.Decimal("1.25") and gadget.active is True
    assert gadget.due == datetime.datetime(2024, 1, 15, 10, 30, tzinfo=datetime.timezone.utc)
    assert gadget.day == datetime.date(2024, 1, 15) and gadget.data == [True]
    assert gadget.secret == "hidden"


@pytest.mark.parametrize("due", [JAN_15 * 1000, "2024-01-15T10:30:00.000Z", JAN_15,
                                 "2024-01-15T10:30:00", "2024-01-15T11:30:00+01:00"])
def test_dates_are_accepted_as_seconds_milliseconds_or_iso(sync, due):
    sync.push("gadgets", [{"id": "G", "name": "g", "due": due}])
    assert Gadget.objects.get().due == datetime.datetime(2024, 1, 15, 10, 30,
                                                         tzinfo=datetime.timezone.utc)


@override_settings(TIME_ZONE="America/New_York")  # Django sets the process's time zone too
def test_an_iso_date_time_without_offset_is_utc_whatever_the_sites_time_zone(sync):
    sync.push("gadgets", [{"id": "G", "name": "g", "due": "2024-01-15T10:30:00"}])
    assert Gadget.objects.get().due == datetime.datetime(2024, 1, 15, 10, 30,
                                                         tzinfo=datetime.timezone.utc)


@override_settings(PERSISTENCE_SYNC={"DATES_IN_MILLISECONDS": True})
def test_dates_in_milliseconds_setting(sync):
    sync.push("gadgets", [{"id": "G", "name": "g", "due": JAN_15}])
    assert sync.pull("gadgets")["updates"][0]["due"] == JAN_15 * 1000


@override_settings(PERSISTENCE_SYNC={"DATES_IN_MILLISECONDS": True})
def test_dates_in_milliseconds_keep_the_milliseconds_of_a_datetime(sync):
    Gadget.objects.create(
        id="G", name="g", day=datetime.date(2024, 1, 15),
        due=datetime.datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=datetime.timezone.utc),
    )
    [gadget] = sync.pull("gadgets")["updates"]
    assert (gadget["due"], gadget["day"]) == (JAN_15 * 1000 + 123, 1705276800 * 1000)


def test_pushed_milliseconds_keep_their_fraction_of_a_second(sync):
    sync.push("gadgets", [{"id": "G", "name": "g", "due": JAN_15 * 1000 + 250}])
    assert Gadget.objects.get().due == datetime.datetime(2024, 1, 15, 10, 30, 0, 250000,
                                                         tzinfo=datetime.timezone.utc)


def test_a_decimal_is_stored_as_the_number_written_not_its_binary_float(sync):
    """0.1 has no exact float: the field gets Decimal("0.1"), not 0.1000000000000000055..."""
    sync.push("gadgets", [{"id": "G", "name": "g", "price": 0.1}])
    assert Gadget.objects.get().price == decimal.Decimal("0.10")


def test_null_is_accepted_only_where_the_field_allows_it(sync):
    sync.push("gadgets", [{"id": "G", "name": "g", "ratio": None, "due": None, "data": None}])
    response = sync.push("gadgets", [{"id": "G", "count": None}], expect=400)
    assert response["errors"][0]["field"] == "count"
    response = sync.push("nodes", [{"id": "N", "label": None}], expect=400)  # no default
    assert response["errors"][0]["field"] == "label"


def test_null_for_a_new_object_means_the_default(sync):
    """The classic client sends null for every property a new object never set."""
    sync.push("gadgets", [{"id": "G", "name": "g", "count": None, "price": None, "active": None}])
    gadget = Gadget.objects.get()
    assert (gadget.count, gadget.price, gadget.active) == (0, 0, True)


@pytest.mark.parametrize("field, value", [
    ("count", 1.5), ("count", True), ("count", "3"), ("price", "1"), ("ratio", "x"),
    ("active", "no"), ("due", "tomorrow"), ("price", 12345678.9), ("count", 2**40),
])
def test_wrong_values_are_refused_and_name_the_field(sync, field, value):
    response = sync.push("gadgets", [{"id": "G", "name": "g", field: value}], expect=400)
    assert response["errors"][0]["field"] == field
    assert not Gadget.objects.exists()


def test_an_unchanged_date_keeps_the_stamp_despite_sub_second_precision(sync):
    gadget = Gadget.objects.create(
        name="g", due=datetime.datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=datetime.timezone.utc)
    )
    sync.push("gadgets", [{"id": gadget.pk, "due": JAN_15}])
    assert Gadget.objects.get().last_change == gadget.last_change
