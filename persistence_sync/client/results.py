"""What one model's sync did: :class:`ModelResult`, as ``syncall`` prints it (and ``--json``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Progress:
    """Where a model's sync stands, for a progress display (``syncall`` on a terminal)."""

    stage: str = ""  # "pulling" or "pushing" (other stages have no numbers)
    done: int = 0  # items of this stage done so far
    # Items of the stage: a push's count; a pull's is the first page's "total"
    # (docs/protocol.md, "Extensions"), None from a remote that does not send it
    # or for a resumed pull.
    total: int | None = None
    bytes: int = 0  # bytes received (pulling) or sent (pushing) so far in this stage
    bytes_total: int | None = None  # bytes of the whole push (None while pulling)


@dataclass
class ModelResult:
    """What one model's sync did (or, with ``dry_run``, would do).

    :meth:`as_dict` (``syncall --json``) holds, per model:

    ``model``: its label, e.g. ``"todo.task"``; ``url``: its remote endpoint,
    without credentials; ``ok``; ``error``: why it failed (naming the model and
    URL) or null; ``cause``: that failure's root cause, the same text for
    every model one failure stopped; ``stopped_by``: the label of the model
    whose failure stopped this one, or null; ``dry_run``; ``received``: items
    the remote sent (objects and deletions, our own pushes' echoes and items
    equal to the local copy included); ``pulled``: of those, the ones that
    differed from the local data (taken, or in conflict); ``created``,
    ``updated``, ``removed``: local objects written; ``pushed``: items sent
    to the remote; ``conflicts``: ``[{"id", "properties", "resolution"}]``;
    ``resynced``: the remote had pruned older deletions, so the model was
    pulled from scratch and reconciled; ``resumed``: the pull went on from an
    interrupted run's last page; ``bytes_received``, ``bytes_sent``: sizes of
    the pull answers and push bodies; ``previous_url``: the URL this model
    was last synced with when it differs from this run's (sync state is
    kept per URL: this run started afresh), else null.
    """

    model: str  # label, e.g. "todo.task"
    url: str | None
    received: int = 0  # items the pull returned, our own echoes included
    pulled: int = 0  # of those, the ones that differed from the local data
    created: int = 0
    updated: int = 0
    removed: int = 0
    pushed: int = 0
    # {"id", "properties", "resolution"}; resolution is "local", "remote", "custom",
    # or "deleted" (a deletion on one side and a change on the other: the deletion wins).
    conflicts: list[dict] = field(default_factory=list)
    dry_run: bool = False
    error: str | None = None
    resynced: bool = False  # the remote had pruned deletions: pulled from 0 and reconciled
    bytes_received: int = 0  # size of the pull answers
    resumed: bool = False  # the pull went on from where an interrupted run had stopped
    # The root cause of a failure, without the model: the same text for every model of a
    # group that one failure stopped (syncall says it once).
    cause: str | None = None
    stopped_by: str | None = None  # the label of the model whose failure stopped this one
    bytes_sent: int = 0  # size of the push bodies
    previous_url: str | None = None  # the model's last sync was with another URL (see above)
    progress: Progress = field(default_factory=Progress, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict:
        return {
            "model": self.model, "url": self.url, "ok": self.ok, "error": self.error,
            "dry_run": self.dry_run, "received": self.received, "pulled": self.pulled,
            "created": self.created, "updated": self.updated, "removed": self.removed,
            "pushed": self.pushed, "conflicts": self.conflicts, "resynced": self.resynced,
            "resumed": self.resumed, "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent, "cause": self.cause, "stopped_by": self.stopped_by,
            "previous_url": self.previous_url,
        }

    def done_before_failing(self) -> str:
        """What a failed run did all the same (a push sent, pages written), or ""."""
        done = [f"pushed {self.pushed:,}"] if self.pushed else []
        written = self.created + self.updated + self.removed
        if written:  # pages of the pull written as they came stay written
            done.append(f"wrote {written:,} pulled objects; the next run resumes the pull")
        return ", ".join(done)

    def summary(self) -> str:
        if self.error:
            done = self.done_before_failing()
            return f"error: {self.error}" + (f" ({done} before failing)" if done else "")
        resolutions: dict[str, int] = {}
        for conflict in self.conflicts:
            resolutions[conflict["resolution"]] = resolutions.get(conflict["resolution"], 0) + 1
        how = ", ".join(f"{count} {name}" for name, count in sorted(resolutions.items()))
        verb = "would be: " if self.dry_run else ""
        return (
            f"{self.model}: {verb}received {self.received:,} ({self.pulled:,} differed here), "
            f"created {self.created:,}, updated {self.updated:,}, removed {self.removed:,}, "
            f"pushed {self.pushed:,}, conflicts {len(self.conflicts):,}" + (f" ({how})" if how else "")
            + (" (full resync: the remote pruned older deletions)" if self.resynced else "")
            + (" (resumed an interrupted pull)" if self.resumed else "")
        )
