"""limits.py: the scan of a push body before parsing agrees with the parsed JSON, and each
limit holds exactly where docs/settings.md puts it."""

import json
import random

import pytest
from django.test import override_settings

from persistence_sync.exceptions import ProtocolError
from persistence_sync.limits import _structure, check_string, parse_body, parse_changes, printable

TRICKY = ['[', ']', '{', '}', ',', '"', '\\', '\\"', '\\\\', '\\\\"', '\u00e9', '😀', 'a']


def random_value(rng, depth=0):
    kind = rng.choice(["str", "num", "list", "dict", "lit"] if depth < 6 else ["str", "num"])
    if kind == "str":
        return "".join(rng.choice(TRICKY) for _ in range(rng.randrange(6)))
    if kind == "num":
        return rng.choice([0, -1, 2.5, 10**20])
    if kind == "lit":
        return rng.choice([True, False, None])
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {random_value(rng, 6): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def structure_of(value):
    """The reference: the structural characters json.dumps writes outside strings."""
    if isinstance(value, list):
        return "[" + ",".join(structure_of(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(structure_of(v) for v in value.values()) + "}"
    return ""


@pytest.mark.parametrize("seed", range(200))
def test_the_scan_sees_the_structure_json_sees(seed, monkeypatch):
    rng = random.Random(seed)
    monkeypatch.setattr("persistence_sync.limits.WINDOW", rng.choice([1, 2, 3, 7, 64]))
    value = [random_value(rng) for _ in range(rng.randrange(1, 6))]
    body = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode()
    assert bytes(_structure(body)).decode() == structure_of(value)


def test_check_string_and_printable():
    assert check_string("fine é 😀") is None
    assert check_string("\ud800", "the id") == (
        "the id holds a lone surrogate (\\ud800-\\udfff), which is not text")
    assert printable("a\udfffb") == "a?b"


def classic(arrays):
    """A persistence.js push of ``arrays`` empty arrays, and its records as parsed."""
    body = ("[" + ",".join(["[]"] * arrays) + "]").encode()
    return body, lambda: list(parse_body(body)), [[]] * arrays, 0


def watermelon(arrays):
    """The same records in a WatermelonDB push (one table, one list: two objects more)."""
    body = ('{"t":{"created":[' + ",".join(["[]"] * arrays) + "]}}").encode()
    records = [("t", None, -1, None), *(("t", "created", n, []) for n in range(arrays))]
    return body, lambda: list(parse_changes(body, ("created",))), records, 2


@pytest.mark.parametrize("shape", [classic, watermelon])
@pytest.mark.parametrize("arrays", [1, 2, 1000])
def test_max_values_counts_every_array_and_object_once_more(shape, arrays):
    """``[[],[],...]``: few commas, but every array costs memory (docs/settings.md: MAX_VALUES)."""
    body, parse, records, objects = shape(arrays)
    # the inner arrays, then every array and object once more
    values = arrays + (arrays + 1) + objects
    with override_settings(PERSISTENCE_SYNC={"MAX_VALUES": values}):
        assert parse() == records
    with override_settings(PERSISTENCE_SYNC={"MAX_VALUES": values - 1}):
        with pytest.raises(ProtocolError) as refused:
            parse()
    assert refused.value.status_code == 413
    assert f"more than {values - 1} JSON values (PERSISTENCE_SYNC['MAX_VALUES'])" in str(refused.value)


@override_settings(PERSISTENCE_SYNC={"MAX_STRING_LENGTH": 10})
def test_a_string_of_exactly_max_string_length_is_accepted():
    assert check_string("x" * 10) is None
    assert check_string("é😀" * 5) is None  # characters, not bytes
    assert check_string("x" * 11, "the id") == (
        "the id of 11 characters is longer than 10 (PERSISTENCE_SYNC['MAX_STRING_LENGTH'])")
