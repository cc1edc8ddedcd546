"""kafka-python's consumer, with its resume fixed.

kafka-python 3.0.12 parks the records already fetched for a partition that gets paused
(KAFKA-7548) and puts them back in line when the partition is resumed, but only when its
in-line slot (``Fetcher._next_partition_records``) is ``None``.  After the first partition
drained through that slot it holds an empty, drained ``PartitionRecords`` instead, for good.
So a resumed partition's parked records never come back, and a partition with parked records
is never fetched again: it stalls, with its lag growing, while the others go on (seen with
the worker's event-time alignment; backpressure's resume of every partition could stall the
same way once more than one partition had records parked).

:class:`ResumableConsumer` clears a drained slot before each poll (where kafka-python looks
for resumed partitions' parked records), so the parked records of a resumed partition go back
in line at the next poll.  It touches kafka-python's private fetcher state; if that changes
shape, it does nothing.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer, TopicPartition


class ResumableConsumer(KafkaConsumer):  # type: ignore[misc]
    """A ``KafkaConsumer`` whose resumed partitions are fetched again (see the module doc)."""

    def poll(self, *args: Any, **kwargs: Any) -> dict[TopicPartition, list[Any]]:
        free_drained_slot(self)
        return super().poll(*args, **kwargs)  # type: ignore[no-any-return]


def free_drained_slot(consumer: Any) -> None:
    """Empty the fetcher's in-line slot if it only holds drained records."""
    fetcher = getattr(consumer, "_fetcher", None)
    current = getattr(fetcher, "_next_partition_records", None)
    if current is not None and not current:  # drained: PartitionRecords is falsy once drained
        fetcher._next_partition_records = None  # type: ignore[union-attr]
