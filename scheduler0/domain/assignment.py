"""Which node executes which jobs in a cluster: the replicated assignment of job buckets."""

from __future__ import annotations

import attrs

#: how many buckets the jobs are cut into (a job's bucket: its id modulo this); each has
#: an owner in the assignment (L{scheduler0.consensus.ownership})
JOB_BUCKETS = 256


@attrs.frozen
class Assignment:
    """The owner (a NodeId; 0 for none) of each bucket, and the change count."""

    version: int
    owners: tuple[int, ...] = attrs.field(converter=tuple)

    def owner_of(self, job_id: int) -> int:
        return self.owners[job_id % JOB_BUCKETS]

    def buckets_of(self, node_id: int) -> frozenset[int]:
        return frozenset(b for b, owner in enumerate(self.owners) if owner == node_id)

    def nodes(self) -> frozenset[int]:
        return frozenset(owner for owner in self.owners if owner)

    def shares(self) -> dict[int, int]:
        """Buckets per owning node."""
        counts: dict[int, int] = {}
        for owner in self.owners:
            if owner:
                counts[owner] = counts.get(owner, 0) + 1
        return counts
