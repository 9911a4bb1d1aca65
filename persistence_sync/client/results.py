"""What one model's sync did: :class:`ModelResult`, as ``syncall`` prints it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Progress:
    """Where a model's sync stands, for a progress display (``syncall`` on a terminal)."""

    stage: str = ""
    done: int = 0  # objects of this stage done so far
    total: int | None = None  # known for pushes; a pull cannot know how many pages follow
    bytes: int = 0  # bytes received (pulls)


@dataclass
class ModelResult:
    """What one model's sync did (or, with ``dry_run``, would do)."""

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
        }

    def summary(self) -> str:
        if self.error:
            # What a failed run already did on the remote is on record: say so.
            done = [f"pushed {self.pushed}"] if self.pushed else []
            written = self.created + self.updated + self.removed
            if written:  # pages of the pull written as they came stay written
                done.append(f"wrote {written} pulled objects; the next run resumes the pull")
            return f"error: {self.error}" + (f" ({', '.join(done)} before failing)" if done
                                             else "")
        resolutions: dict[str, int] = {}
        for conflict in self.conflicts:
            resolutions[conflict["resolution"]] = resolutions.get(conflict["resolution"], 0) + 1
        how = ", ".join(f"{count} {name}" for name, count in sorted(resolutions.items()))
        verb = "would be: " if self.dry_run else ""
        return (
            f"{self.model}: {verb}pulled {self.pulled}, created {self.created}, "
            f"updated {self.updated}, removed {self.removed}, pushed {self.pushed}, "
            f"conflicts {len(self.conflicts)}" + (f" ({how})" if how else "")
            + (" (full resync: the remote pruned older deletions)" if self.resynced else "")
            + (" (resumed an interrupted pull)" if self.resumed else "")
        )
