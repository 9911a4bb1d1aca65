"""limits.py: the scan of a push body before parsing agrees with the parsed JSON."""

import json
import random

import pytest

from persistence_sync.limits import _structure, check_string, printable

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
