"""The limits of one push body, checked before it is parsed.

A push is read and parsed in memory, so what a request can make the server
allocate is bounded here, each limit a setting (``PERSISTENCE_SYNC``):

=====================  ===========  ==============================================
MAX_BODY_SIZE          32 MiB       bytes of the body (Content-Length, and a
                                    capped read for bodies without one): 413
MAX_ITEMS              10,000       objects in the pushed array: 413
MAX_VALUES             2,000,000    JSON values in the body, each array and
                                    object counted once more (they cost more
                                    memory); a key and its value count once: 413
MAX_DEPTH              32           nesting of arrays/objects (the array and its
                                    objects are 2; a JSON field adds its own): 400
MAX_STRING_LENGTH      1,000,000    characters of any one string (ids, values,
                                    keys and strings inside JSON fields): 400
=====================  ===========  ==============================================

:func:`scan_body` measures depth and the number of values on the raw
bytes, without parsing and without recursion, so a body nested 100,000 deep
or a 30 MB array of zeros is refused before Python builds a single object
for it; the scan allocates at most about the body's size again. The array is
then parsed item by item as it is checked, up to ``MAX_ITEMS``. Strings are
measured while the parsed values are checked
(:mod:`persistence_sync.serializers`). ``benchmarks/push_limits.py``
measures what refused and accepted pushes cost.

Usage::

    for item in parse_body(request_body):   # raises ProtocolError (400/413)
        ...
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import accumulate
from typing import Any, NoReturn

from persistence_sync.conf import sync_settings
from persistence_sync.exceptions import ProtocolError

STRUCTURE = b"[]{},"
# The structure and the quotes; what strings hold never counts as structure.
NOT_STRUCTURE_OR_QUOTE = bytes(c for c in range(256) if c not in STRUCTURE + b'"')
# A string once escapes are gone and only structure and quotes are left.
QUOTED = re.compile(rb'"[^"]*"')
# Bytes of that skeleton handled per regex pass: each pass builds a list of
# its pieces, so this keeps the scan's memory independent of the body.
WINDOW = 64 * 1024
# Depth change per structural byte, indexed by the byte.
DEPTH_STEP = [0] * 256
for _open in b"[{":
    DEPTH_STEP[_open] = 1
for _close in b"]}":
    DEPTH_STEP[_close] = -1


def body_too_large(limit: int) -> ProtocolError:
    return ProtocolError(
        f"The body is larger than {limit} bytes (PERSISTENCE_SYNC['MAX_BODY_SIZE']); "
        "push fewer objects at a time.",
        status_code=413,
    )


def scan_body(body: bytes) -> None:
    """Refuse a body nested deeper than ``MAX_DEPTH`` or holding more than ``MAX_VALUES`` values.

    Works on the bytes with C-speed passes (a regex, ``bytes.translate``,
    ``bytes.count``, ``itertools.accumulate``): no recursion, no parsed
    objects. A body that is not valid JSON may pass; the parser refuses it.
    """
    structure = _structure(body)
    max_depth = sync_settings.MAX_DEPTH
    brackets = structure.translate(None, b",")
    depth = max(accumulate(map(DEPTH_STEP.__getitem__, brackets)), default=0)
    if depth > max_depth:
        raise ProtocolError(
            f"The body is nested more than {max_depth} arrays/objects deep "
            "(PERSISTENCE_SYNC['MAX_DEPTH']); flatten the values of JSON fields.",
        )
    # Every value but the first follows a comma (an object's key and value
    # count once); arrays and objects count once more, for their memory.
    values = structure.count(b",") + 1 + len(brackets) // 2
    max_values = sync_settings.MAX_VALUES
    if values > max_values:
        raise ProtocolError(
            f"The body holds more than {max_values} JSON values (PERSISTENCE_SYNC['MAX_VALUES']); "
            "push fewer objects at a time.",
            status_code=413,
        )


def _structure(body: bytes) -> bytes | bytearray:
    """The ``[]{},`` of ``body`` that are not inside strings, in order."""
    if b"\\" in body:  # escapes go first, as pairs from the left: \\ then \"
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = body.translate(None, NOT_STRUCTURE_OR_QUOTE)
    if b'"' not in skeleton:
        return skeleton
    out, start, end = bytearray(), 0, len(skeleton)
    while start < end:
        cut = min(start + WINDOW, end)
        if skeleton.count(b'"', start, cut) % 2:  # never cut a string in two
            close = skeleton.find(b'"', cut)
            cut = end if close < 0 else close + 1
        out += QUOTED.sub(b"", skeleton[start:cut])
        start = cut
    return out.translate(None, b'"')  # an unterminated string's quote (not JSON anyway)


def too_many_items(limit: int) -> ProtocolError:
    return ProtocolError(
        f"The push has more than {limit} objects (PERSISTENCE_SYNC['MAX_ITEMS']); "
        f"push at most {limit} objects at a time.",
        status_code=413,
    )


WHITESPACE = re.compile(r"[ \t\n\r]*")


def _after_whitespace(text: str, index: int) -> int:
    """The index of the first character from ``index`` on that is not JSON whitespace."""
    match = WHITESPACE.match(text, index)
    assert match is not None  # the pattern matches the empty string too
    return match.end()


def parse_body(body: bytes) -> Iterator[Any]:
    """The items of the pushed array in ``body`` (bytes), once it is within the limits.

    An iterator: the array is parsed one item at a time as the caller
    consumes it, so the parsed objects never all exist at once, and a body
    with too many items is refused at item ``MAX_ITEMS + 1``, whatever follows.
    Raises :class:`ProtocolError` (a body that is not JSON, not an array, or
    over a limit), from this call or while iterating.
    """
    scan_body(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"The body is not valid JSON: {exc}") from exc
    decoder = json.JSONDecoder(parse_constant=_refuse_constant)
    index = _after_whitespace(text, 0)
    if not text.startswith("[", index):
        try:
            value = decoder.decode(text)
        except ValueError as exc:
            raise ProtocolError(f"The body is not valid JSON: {exc}") from exc
        kind = {dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(value), "a number")
        raise ProtocolError(f"The body must be a JSON array of objects, not {kind}.")
    return _items(text, index + 1, decoder, sync_settings.MAX_ITEMS)


def parse_changes(body: bytes, parts: tuple[str, ...]) -> Iterator[tuple[str, str | None, int, Any]]:
    """``(table, part, index, record)`` of a body ``{table: {part: [records]}}``, one at a time.

    For WatermelonDB's ``changes`` object: the same scan as :func:`parse_body`
    first, then each record is parsed only when the caller asks for it, and
    the body is refused at record ``MAX_ITEMS + 1`` (counted over every
    table), whatever follows. Each table starts with ``(table, None, -1,
    None)``, so that an empty one is seen too. ``parts``: the keys a table's
    object may hold. A table or part named twice is refused (JSON keeps only
    one of them).
    """
    scan_body(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"The body is not valid JSON: {exc}") from exc
    return _changes(text, parts, json.JSONDecoder(parse_constant=_refuse_constant),
                    sync_settings.MAX_ITEMS)


def _changes(text: str, parts: tuple[str, ...], decoder: json.JSONDecoder, max_items: int
             ) -> Iterator[tuple[str, str | None, int, Any]]:
    reader = _Reader(text, decoder)
    count = 0
    try:
        if not reader.take("{"):
            raise ProtocolError("The body must be a JSON object of tables: WatermelonDB's changes.")
        tables: set[str] = set()
        names = " and ".join([", ".join(map(repr, parts[:-1])), repr(parts[-1])])
        for table in reader.keys("table"):
            if table in tables or not reader.take("{"):
                raise ProtocolError(f"{table[:100]} must be one object of {names} lists.")
            tables.add(table)
            yield table, None, -1, None
            seen: set[str] = set()
            for part in reader.keys("list"):
                if part not in parts or part in seen or not reader.take("["):
                    raise ProtocolError(f"{table[:100]} must be an object of {names} lists, each once.")
                seen.add(part)
                for position, record in enumerate(reader.values()):
                    if count == max_items:
                        raise too_many_items(max_items)
                    count += 1
                    yield table, part, position, record
        reader.end()
    except ValueError as exc:
        raise ProtocolError(f"The body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # a body the scan could not measure (not JSON anyway)
        raise ProtocolError("The body is not valid JSON: nested too deep.") from exc


class _Reader:
    """A cursor over JSON text that reads one object key or one value at a time."""

    def __init__(self, text: str, decoder: json.JSONDecoder) -> None:
        self.text, self.decoder, self.index = text, decoder, _after_whitespace(text, 0)

    def take(self, char: str) -> bool:
        """Step over ``char`` (and whitespace after it) if it comes next."""
        if self.text.startswith(char, self.index):
            self.index = _after_whitespace(self.text, self.index + 1)
            return True
        return False

    def keys(self, what: str) -> Iterator[str]:
        """The keys of the object just opened; the caller reads each one's value."""
        if self.take("}"):
            return
        while True:
            if not self.text.startswith('"', self.index):
                raise json.JSONDecodeError(f"Expecting a {what} name", self.text, self.index)
            key, self.index = self.decoder.raw_decode(self.text, self.index)
            self.index = _after_whitespace(self.text, self.index)
            if not self.take(":"):
                raise json.JSONDecodeError("Expecting ':' delimiter", self.text, self.index)
            yield key
            if not self.take(","):
                self.expect("}")
                return

    def values(self) -> Iterator[Any]:
        """The values of the array just opened, each parsed when asked for."""
        if self.take("]"):
            return
        while True:
            value, self.index = self.decoder.raw_decode(self.text, self.index)
            self.index = _after_whitespace(self.text, self.index)
            yield value
            if not self.take(","):
                self.expect("]")
                return

    def expect(self, char: str) -> None:
        if not self.take(char):
            raise json.JSONDecodeError(f"Expecting {char!r}", self.text, self.index)

    def end(self) -> None:
        if self.index != len(self.text):
            raise json.JSONDecodeError("Extra data", self.text, self.index)


def _items(text: str, index: int, decoder: json.JSONDecoder, max_items: int) -> Iterator[Any]:
    try:
        index = _after_whitespace(text, index)
        if text.startswith("]", index):
            index += 1
        else:
            count = 0
            while True:
                if count == max_items:
                    raise too_many_items(max_items)
                item, index = decoder.raw_decode(text, index)
                count += 1
                yield item
                index = _after_whitespace(text, index)
                if text.startswith(",", index):
                    index = _after_whitespace(text, index + 1)
                    continue
                if text.startswith("]", index):
                    index += 1
                    break
                raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
        if _after_whitespace(text, index) != len(text):
            raise json.JSONDecodeError("Extra data", text, index)
    except ValueError as exc:
        raise ProtocolError(f"The body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # a body the scan could not measure (not JSON anyway)
        raise ProtocolError("The body is not valid JSON: nested too deep.") from exc


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def check_string(value: str, what: str = "a string") -> str | None:
    """The reason ``value`` (a str) cannot be stored, or None.

    Over ``MAX_STRING_LENGTH``, or holding a lone surrogate (``"\\ud800"`` is
    valid JSON but no database stores it, and no answer could echo it).
    """
    limit = sync_settings.MAX_STRING_LENGTH
    if len(value) > limit:
        return (f"{what} of {len(value)} characters is longer than {limit} "
                "(PERSISTENCE_SYNC['MAX_STRING_LENGTH'])")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{what} holds a lone surrogate (\\ud800-\\udfff), which is not text"
    return None


def printable(value: Any) -> Any:
    """``value`` made safe to echo in a JSON answer (lone surrogates replaced)."""
    if isinstance(value, str) and not value.isascii():
        return value.encode("utf-8", "replace").decode("utf-8")
    return value
