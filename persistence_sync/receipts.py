"""Idempotent pushes: a push id is stored at most once, and its client can learn its fate.

A client that cannot tell whether its push was stored (the connection broke
after the request was sent, the process was killed, the answer was cut)
must neither store it twice nor take its echo for another client's change.
So a push may carry an id (``X-Sync-Push-Id``, docs/protocol.md
"Idempotent pushes"); the server records ``(endpoint, user, id) -> stamp``
in the push's own transaction, under the clocks of the models it writes:

* the same id again stores nothing and gets the first answer;
* a *replay* (``X-Sync-Push-Replay: 1``) asks for that answer only; an id
  never stored is then closed (*abandoned*): a late copy is refused (409);
* a push may name ids its client never got an answer for
  (``X-Sync-Unanswered``, how a WatermelonDB app says it): those never stored
  are abandoned as by a replay, and from those stored the server remembers
  what they wrote (a digest per column), so that the new push does not write
  the same values again over a change another client made since
  (:meth:`Receipt.repeated`).

Ids belong to their user and their endpoint: another user's (or endpoint's)
id is a new push, and tells nothing about the first. Receipts older than
``PUSH_RECEIPT_DAYS`` are pruned, a few by each push.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, field

import orjson
from django.utils import timezone

from persistence_sync import compiled
from persistence_sync.conf import sync_settings
from persistence_sync.exceptions import ProtocolError
from persistence_sync.models import PushReceipt

# Expired push receipts deleted by one push, at most.
RECEIPTS_PRUNED_PER_PUSH = 100


def digest(value) -> str:
    """A short digest of a wire value: what a receipt remembers of each column written."""
    return hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS),
                           digest_size=8).hexdigest()


@dataclass
class Receipt:
    """The idempotency bookkeeping of one push (nothing to do when it has no id).

    ``endpoint``: what the id is scoped to (a model's label, ``watermelon``);
    ``user``: the requester's key ("" when anonymous). ``remember``: keep a
    digest of each value written, for a later push that names this one
    unanswered.
    """

    endpoint: str
    user: str
    push_id: str | None
    using: str
    replay: bool = False
    unanswered: tuple[str, ...] = ()
    remember: bool = False
    written: dict = field(default_factory=dict)  # {label: {pk: {attname: digest}}}

    @property
    def receipts(self):
        return PushReceipt.objects.using(self.using).filter(endpoint=self.endpoint, user=self.user)

    def lookup(self) -> tuple[str, int | None] | None:
        """``(push id, stamp)`` of this push's receipt, if there is one."""
        if self.push_id is None:
            return None
        found = compiled.fetch(self.using, ("receipt",), _receipt, self.endpoint, self.user,
                               self.push_id)
        return found[0] if found else None

    def known(self) -> bool:
        return self.lookup() is not None

    def answer(self) -> int | None:
        """Under the clocks: the first answer of a repeated id, or None for an abandoned replay."""
        found = self.lookup()
        if found is not None:
            push_id, stamp = found
            if stamp is None and not self.replay:
                raise ProtocolError(
                    f"Push {push_id!r} was abandoned by its client (it replayed the push "
                    "before this copy arrived); nothing was stored.", status_code=409)
            return stamp
        self._remember(self.push_id, None)  # a replay of an id never stored: abandon it
        return None

    def repeated(self, abandon: bool = True) -> dict:
        """``{label: {pk: {attname: digest}}}`` that the unanswered pushes stored.

        Under the clocks, ``abandon`` closes each unanswered id never stored
        (a late copy of it is then refused), as a replay would.
        """
        if not self.unanswered:
            return {}
        found = {receipt.push_id: receipt for receipt in
                 self.receipts.filter(push_id__in=self.unanswered)}
        merged: dict = {}
        for push_id in self.unanswered:
            receipt = found.get(push_id)
            if receipt is None:
                if abandon:
                    self._remember(push_id, None)
                continue
            for label, objects in (receipt.written or {}).items():
                for pk, columns in objects.items():
                    merged.setdefault(label, {}).setdefault(pk, {}).update(columns)
        return merged

    @property
    def remembers(self) -> bool:
        """Whether the values written are remembered (:meth:`note`)."""
        return self.remember and self.push_id is not None

    def note(self, label, pk, values) -> None:
        """Remember the wire ``values`` (``{attname: wire value}``) the push writes to ``pk``."""
        if self.remembers:
            self.written.setdefault(label, {})[pk] = {name: digest(value)
                                                      for name, value in values.items()}

    def record(self, stamp: int) -> int:
        if self.push_id is not None:
            self._remember(self.push_id, stamp)
        return stamp

    def _remember(self, push_id, stamp) -> None:
        """Record a push id, and forget receipts older than PUSH_RECEIPT_DAYS."""
        now = timezone.now()
        receipts = PushReceipt.objects.using(self.using)
        receipts.create(endpoint=self.endpoint, user=self.user, push_id=push_id, stamp=stamp,
                        received_at=now, written=(self.written or None) if stamp else None)
        cutoff = now - datetime.timedelta(days=sync_settings.PUSH_RECEIPT_DAYS)
        # Find first, then delete by primary key (as Tombstone.forget does), a
        # bounded number per push so that no push pays for a long backlog.
        old = list(receipts.filter(received_at__lt=cutoff)
                   .values_list("pk", flat=True)[:RECEIPTS_PRUNED_PER_PUSH])
        if old:
            receipts.filter(pk__in=old).delete()


def _receipt(endpoint, user, push_id):
    return PushReceipt.objects.filter(endpoint=endpoint, user=user,
                                      push_id=push_id).values_list("push_id", "stamp")[:1]
