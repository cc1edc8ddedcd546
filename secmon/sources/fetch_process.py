"""The worker's Kafka consumer, run in a process of its own.

kafka-python parses record batches in pure Python (varints, headers, one object per
record): on the bench machine that costs as much CPU as everything else in the core
pipeline.  Here the ``KafkaConsumer`` (group membership, fetching, parsing, commits) lives
in a child process that hands the worker each poll batch as one msgpack message, a few
batches ahead, so parsing the next batches overlaps with detecting the current one, on
another core (a thread of the worker's reads them off the socket as they come:
:class:`_Inbox`).  :class:`ProcessConsumer` stands in for the part of ``KafkaConsumer`` the
worker uses, with the same meaning:

- ``poll`` returns batches in fetch order; ``position`` and ``highwater`` are as of the last
  batch returned, never the child's read-ahead, so checkpointed offsets cannot run ahead of
  processed records;
- rebalance callbacks run in the worker, from ``poll`` (as kafka-python runs them), while
  the child waits inside its own listener: commits and seeks made there happen inside the
  rebalance, exactly as in process;
- records fetched before a ``seek`` are dropped;
- the child ignores SIGINT/SIGTERM (the worker stops it in order: final commit, then
  ``close``) and exits when the worker is gone (end of file on the pipe).

The child is a fresh interpreter (``python -m secmon.sources.fetch_process``; forking a
threaded process is unsafe, and multiprocessing's ``spawn`` would import the worker's whole
main module) that loads only kafka-python, msgspec, ``secmon.contract`` and ``secmon.logs``
(it logs as the worker does).

While the worker is the slower side (its batches are waiting when it asks for them), the
child also decodes the input records with the contract's decoder (JSON parsing, validation,
event time) and hands over the events msgpack-encoded, which the worker unpacks at about
half the cost of decoding the JSON: work moved to the second core when the worker is the
bottleneck.  A bad record comes with its reason and original bytes, and the worker
dead-letters it as it would its own.  When the worker waits for records, the child is the
slower side and hands over the bytes as fetched; repartition records always pass as bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from multiprocessing.connection import Connection
from typing import Any, Literal

import msgspec
from kafka import OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from secmon.contract import DEFAULT_MAX_EVENT_BYTES, AnyEvent, BadRecord, EventDecoder
from secmon.logs import JsonFormatter, setup_logging
from secmon.sources.consumer import ResumableConsumer

log = logging.getLogger(__name__)

#: Batches the child may hand over before the worker has taken them: one being processed,
#: the rest ready (a few MB each), so that a batch the child fetched slowly does not leave
#: the worker waiting.
READ_AHEAD = 4
#: How long the child's ``poll`` may block; commands (commits, seeks) wait at most this.
CHILD_POLL_MS = 20
#: Weight of the newest credit in the moving share of "busy" credits (see ``decode_here``).
BUSY_WEIGHT = 0.2
#: An idle child still reports positions and high watermarks this often.
IDLE_REPORT_MS = 200
#: A command the child does not answer within this is a dead child.
CALL_TIMEOUT_S = 120.0


# ------------------------------------------------------------------------------- messages
class Rejected(msgspec.Struct, array_like=True, gc=False):
    """Why the child could not decode a record (a :class:`~secmon.contract.BadRecord`)."""

    reason: str
    detail: str
    event_id: str | None = None

    def error(self) -> BadRecord:
        return BadRecord(self.reason, self.detail, self.event_id)


class FetchedRecord(msgspec.Struct, array_like=True, gc=False):
    """What the worker reads of a Kafka record (the attributes of kafka-python's).

    A record of an input topic the child decoded comes as an ``event`` (``value`` dropped)
    or ``rejected`` (``value`` kept for the dead letter); otherwise as bytes, which the
    worker decodes itself."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    event: AnyEvent | None = None
    rejected: Rejected | None = None


class Mark(msgspec.Struct, array_like=True):
    """Where one assigned partition stands after a batch."""

    topic: str
    partition: int
    position: int | None
    highwater: int | None


class Batch(msgspec.Struct, tag="batch", array_like=True):
    records: list[FetchedRecord]
    marks: list[Mark]


class Rebalance(msgspec.Struct, tag="rebalance", array_like=True):
    kind: Literal["revoked", "assigned"]
    partitions: list[tuple[str, int]]


class Reply(msgspec.Struct, tag="reply", array_like=True):
    value: Any = None
    error: str | None = None


class Failed(msgspec.Struct, tag="failed", array_like=True):
    error: str


class Call(msgspec.Struct, tag="call", array_like=True):
    op: str
    args: list[Any] = []
    #: False: the worker does not wait for the outcome (pause and resume, which it makes
    #: every few batches while aligning partitions: waiting cost it ~4 % of its time on
    #: the bench); the child logs a failure instead of replying.
    reply: bool = True


class Credit(msgspec.Struct, tag="credit", array_like=True):
    """The worker took a batch.  ``busy``: a batch was waiting when it asked (the worker is
    the slower side), rather than the worker waiting for one."""

    busy: bool = False


ToWorker = Batch | Rebalance | Reply | Failed
ToChild = Call | Credit


#: Where input records are decoded: here while the worker is busy (``when_busy``), or here
#: always (``always``, for tests).
DecodePolicy = Literal["when_busy", "always"]


class FetchProcessError(RuntimeError):
    """The fetch process failed or went away; the worker cannot go on without it."""


# ---------------------------------------------------------------------------- the worker side
class ProcessConsumer:
    """The worker's end: the ``KafkaConsumer`` methods the worker calls, served by the child."""

    def __init__(self, options: dict[str, Any], *, read_ahead: int = READ_AHEAD,
                 decode_topics: Iterable[str] = (), max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
                 decode_policy: DecodePolicy = "when_busy") -> None:
        """``decode_topics``: topics whose records the child may decode as contract events
        (:class:`FetchedRecord`), with ``max_event_bytes`` as the worker's decoder would;
        ``decode_policy``: see :meth:`_Child.decode_here`."""
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(theirs.fileno()), str(read_ahead)], pass_fds=[theirs.fileno()]
        )
        theirs.close()
        self._sock = ours
        self._conn = Connection(os.dup(ours.fileno()))  # the worker's calls and credits
        self._inbox = _Inbox(ours)  # the child's messages, read off the socket as they come
        # Pickled once: plain values and the assignor classes, and how the worker logs.
        self._conn.send((options, _logging_now(), sorted(decode_topics), max_event_bytes, decode_policy))
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(ToWorker).decode
        self._waiting: deque[ToWorker] = deque()
        self._listener: ConsumerRebalanceListener | None = None
        self._assignment: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}
        self._highwaters: dict[TopicPartition, int] = {}
        self._closed = False

    # -- consuming ---------------------------------------------------------------------
    def subscribe(self, topics: Sequence[str], listener: ConsumerRebalanceListener | None = None) -> None:
        self._listener = listener
        self._call("subscribe", [list(topics)])

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[FetchedRecord]]:
        """Every batch the child has handed over so far, merged (up to about ``max_records``),
        as kafka-python returns everything it has buffered: one worker loop — and one
        commit — per poll, not per child batch.  A rebalance runs the listener here and
        returns an empty batch (batches fetched before it come first)."""
        ready = self._ready()  # before waiting: does the worker wait for the child, or the reverse?
        message = self._next(timeout_ms / 1000)
        if message is None:
            return {}
        if isinstance(message, Rebalance):
            self._rebalance(message)
            return {}
        batch: dict[TopicPartition, list[FetchedRecord]] = {}
        taken = 0
        while True:
            assert isinstance(message, Batch)
            self._send(Credit(busy=ready and bool(message.records)))  # an idle report: not behind
            self._take(message, batch)
            taken += len(message.records)
            if max_records is not None and taken >= max_records:
                return batch
            next_message = self._next(0.0)
            if next_message is None:
                return batch
            if not isinstance(next_message, Batch):  # a rebalance: at the next poll, after these
                self._waiting.appendleft(next_message)
                return batch
            ready = True
            message = next_message

    def _take(self, message: Batch, batch: dict[TopicPartition, list[FetchedRecord]]) -> None:
        for mark in message.marks:
            tp = TopicPartition(mark.topic, mark.partition)
            if mark.position is not None:
                self._positions[tp] = mark.position
            if mark.highwater is not None:
                self._highwaters[tp] = mark.highwater
        for rec in message.records:
            tp = TopicPartition(rec.topic, rec.partition)
            records = batch.get(tp)
            if records is None:
                batch[tp] = records = []
            records.append(rec)

    def position(self, partition: TopicPartition) -> int:
        """The next offset ``poll`` will return for the partition (as of the last batch)."""
        position = self._positions.get(partition)
        if position is None:
            raise FetchProcessError(f"position of {partition} not known yet")
        return position

    def highwater(self, partition: TopicPartition) -> int | None:
        return self._highwaters.get(partition)

    def assignment(self) -> set[TopicPartition]:
        return set(self._assignment)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._call("seek", [partition.topic, partition.partition, offset])
        # Everything still waiting was fetched before the seek.
        sought = (partition.topic, partition.partition)
        for message in self._waiting:
            if isinstance(message, Batch):
                message.records = [r for r in message.records if (r.topic, r.partition) != sought]
                message.marks = [m for m in message.marks if (m.topic, m.partition) != sought]
        self._positions[partition] = offset

    def pause(self, *partitions: TopicPartition) -> None:
        """Asynchronous (as in kafka-python, a hint for the next fetches): batches the child
        fetched before it may still hold records of these partitions."""
        self._send(Call("pause", [list(tp) for tp in partitions], reply=False))

    def resume(self, *partitions: TopicPartition) -> None:
        self._send(Call("resume", [list(tp) for tp in partitions], reply=False))

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self._call("commit", _offsets(offsets))

    def commit_async(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self._call("commit_async", _offsets(offsets))

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        parts = self._call("partitions_for_topic", [topic])
        return set(parts) if parts is not None else None

    def close(self, autocommit: bool = False, timeout_s: float = 30.0) -> None:
        if self._closed:
            return
        self._closed = True
        try:  # kafka-python's close revokes the assignment: the listener runs meanwhile
            self._call("close", [autocommit], timeout_s=timeout_s, rebalance_inline=True)
        except FetchProcessError as exc:
            log.warning("fetch process did not close cleanly: %s", exc)
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        self._conn.close()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # the inbox's thread sees the end, if it has not
        self._sock.close()

    # -- plumbing ------------------------------------------------------------------------
    def _rebalance(self, message: Rebalance) -> None:
        tps = [TopicPartition(t, p) for t, p in message.partitions]
        if message.kind == "revoked":
            callback = self._listener.on_partitions_revoked if self._listener else None
            self._assignment.difference_update(tps)
            for tp in tps:
                self._positions.pop(tp, None)
                self._highwaters.pop(tp, None)
        else:
            callback = self._listener.on_partitions_assigned if self._listener else None
            self._assignment.update(tps)
        try:
            if callback is not None:
                callback(tps)
        except Exception:  # as kafka-python does: a failing listener is logged, not fatal
            log.exception("rebalance listener failed (%s)", message.kind)
        finally:
            self._call("rebalanced")

    def _call(
        self,
        op: str,
        args: list[Any] | None = None,
        *,
        timeout_s: float = CALL_TIMEOUT_S,
        rebalance_inline: bool = False,
    ) -> Any:
        """Send a call and wait for its reply; batches and rebalances that come first wait for
        ``poll`` (or, with ``rebalance_inline``, a rebalance runs now: the child is blocked
        in the call until the listener is done)."""
        self._send(Call(op, args or []))
        deadline = time.monotonic() + timeout_s
        while True:
            message = self._receive(max(0.0, deadline - time.monotonic()))
            if message is None:
                raise FetchProcessError(f"fetch process did not answer {op!r} within {timeout_s:.0f} s")
            if isinstance(message, Reply):
                if message.error is not None:
                    raise FetchProcessError(f"{op}: {message.error}")
                return message.value
            if rebalance_inline and isinstance(message, Rebalance):
                self._rebalance(message)
            else:
                self._waiting.append(message)  # a batch or a rebalance, for poll

    def _ready(self) -> bool:
        """Whether a message is waiting already (an error shows at the next receive)."""
        try:
            return bool(self._waiting) or self._inbox.ready()
        except (EOFError, OSError):
            return False

    def _next(self, timeout_s: float) -> ToWorker | None:
        if self._waiting:
            return self._waiting.popleft()
        message = self._receive(timeout_s)
        if isinstance(message, Reply):  # only calls expect replies; one here is a protocol bug
            raise FetchProcessError(f"unexpected reply from the fetch process: {message}")
        return message

    def _receive(self, timeout_s: float) -> ToWorker | None:
        try:
            data = self._inbox.get(timeout_s)
            if data is None:
                return None
            message = self._decode(data)
        except (EOFError, OSError) as exc:
            raise FetchProcessError(f"the fetch process is gone (exit code {self._process.poll()})") from exc
        if isinstance(message, Failed):
            raise FetchProcessError(message.error)
        return message

    def _send(self, message: ToChild) -> None:
        try:
            self._conn.send_bytes(self._encode(message))
        except OSError as exc:
            raise FetchProcessError(f"the fetch process is gone (exit code {self._process.poll()})") from exc


#: ``multiprocessing.connection``'s framing, which the child writes: a signed 4-byte length,
#: or -1 and an 8-byte one.
_LENGTH = struct.Struct("!i")
_LONG_LENGTH = struct.Struct("!Q")


class _Inbox:
    """The child's messages, read off the socket by a thread of its own as soon as they come.

    The worker itself reads only when it polls, between batches that keep it busy for ~100 ms,
    and a batch is a few MB where the socket buffers ~200 KB (``net.core.wmem_default``): the
    child sat in ``send`` until the worker polled instead of fetching the next batch, and the
    worker then waited for that one.  On the bench, with all detectors, the worker waited
    ~1.4 s of a 13 s run.  One ``recv`` with ``MSG_WAITALL`` per message, so the thread holds
    the GIL only to hand each message over; the credits (``read_ahead``) bound what it holds.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._queue: queue.SimpleQueue[bytearray | BaseException] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="secmon-fetch-inbox", daemon=True)
        self._thread.start()

    def get(self, timeout_s: float) -> bytearray | None:
        """The next message, waiting up to ``timeout_s``; None if none came.  Raises
        ``EOFError``/``OSError`` once the child's end is gone (and again at every call)."""
        try:
            item = self._queue.get(timeout=timeout_s) if timeout_s > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            self._queue.put(item)
            raise item
        return item

    def ready(self) -> bool:
        return not self._queue.empty()

    def _run(self) -> None:
        try:
            while True:
                (size,) = _LENGTH.unpack(self._read(_LENGTH.size))
                if size == -1:
                    (size,) = _LONG_LENGTH.unpack(self._read(_LONG_LENGTH.size))
                self._queue.put(self._read(size))
        except (EOFError, OSError) as exc:
            self._queue.put(exc)
        except BaseException as exc:  # never silent: the worker's next receive fails with it
            self._queue.put(OSError(f"reading from the fetch process: {exc!r}"))

    def _read(self, n: int) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:  # MSG_WAITALL returns short only at the end or on a signal
            k = self._sock.recv_into(view[got:], n - got, socket.MSG_WAITALL)
            if k == 0:
                raise EOFError("the fetch process closed its end")
            got += k
        return buf


def _logging_now() -> tuple[str, str]:
    root = logging.getLogger()
    json = any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    return logging.getLevelName(root.level), "json" if json else "text"


def _offsets(offsets: dict[TopicPartition, OffsetAndMetadata]) -> list[list[Any]]:
    return [[tp.topic, tp.partition, om.offset] for tp, om in offsets.items()]


# ----------------------------------------------------------------------------- the child side
class _Child:
    """The fetch process: a ``KafkaConsumer`` that reads ahead and serves the worker's calls."""

    def __init__(self, conn: Connection, options: dict[str, Any], read_ahead: int,
                 decode_topics: Iterable[str] = (), max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
                 decode_policy: DecodePolicy = "when_busy") -> None:
        self.conn = conn
        self.decode_topics = frozenset(decode_topics)
        self.decoder = EventDecoder(max_event_bytes)
        self.decode_policy = decode_policy
        self.worker_busy = 0.0  # share of the worker's recent credits that said "busy" (EWMA)
        self.consumer = ResumableConsumer(**options)
        self.max_records: int | None = options.get("max_poll_records")
        self.credit = read_ahead
        self.positions: dict[TopicPartition, int] = {}
        self.subscribed = False
        self.closing = False
        self.last_sent = 0.0
        self.encode = msgspec.msgpack.Encoder().encode
        self.decode = msgspec.msgpack.Decoder(ToChild).decode

    def run(self) -> None:
        while not self.closing:
            self.serve(block_s=0.0 if self.credit > 0 and self.subscribed else 0.05)
            if self.closing or self.credit <= 0 or not self.subscribed:
                continue
            polled = self.consumer.poll(timeout_ms=CHILD_POLL_MS, max_records=self.max_records)
            records = self.records(polled, self.decode_here())
            now = time.monotonic()
            if records or now - self.last_sent >= IDLE_REPORT_MS / 1000:
                self.send(Batch(records, self.marks()))
                self.credit -= 1
                self.last_sent = now

    def decode_here(self) -> bool:
        """Whether to decode the next batch here: when the worker mostly finds its batches
        waiting for it (the worker is the slower side), so that decoding moves off its core.
        A worker that mostly waits for records decodes them itself: this process is the
        slower side then, and bytes are the cheapest to hand over.  "Mostly": a moving
        average of the credits, so that one batch that happened to wait does not flip it."""
        return self.decode_policy == "always" or self.worker_busy >= 0.5

    def records(self, polled: dict[TopicPartition, list[Any]], decode_events: bool) -> list[FetchedRecord]:
        out: list[FetchedRecord] = []
        append = out.append
        decode = self.decoder.decode_record
        for tp, recs in polled.items():
            topic, partition = tp.topic, tp.partition
            if not decode_events or topic not in self.decode_topics:
                for r in recs:
                    append(FetchedRecord(topic, partition, r.offset, r.timestamp, r.key, r.value))
            else:
                for r in recs:
                    try:
                        event = decode(r.value)
                    except BadRecord as bad:
                        append(FetchedRecord(topic, partition, r.offset, r.timestamp, r.key, r.value,
                                             rejected=Rejected(bad.reason, bad.detail, bad.event_id)))
                        continue
                    append(FetchedRecord(topic, partition, r.offset, r.timestamp, r.key, None, event))
            if recs:
                self.positions[tp] = recs[-1].offset + 1
        return out

    def marks(self) -> list[Mark]:
        marks = []
        for tp in self.consumer.assignment():
            position = self.positions.get(tp)
            if position is None:
                try:
                    position = self.consumer.position(tp, timeout_ms=0)
                except Exception:  # not known yet (an offset reset in flight): next time
                    position = None
                if position is not None:
                    self.positions[tp] = position
            marks.append(Mark(tp.topic, tp.partition, position, self.consumer.highwater(tp)))
        return marks

    def serve(self, block_s: float, until_rebalanced: bool = False) -> None:
        """Answer the worker's calls; inside a rebalance, until the worker says it is done."""
        while not self.closing:
            if not self.conn.poll(None if until_rebalanced else block_s):
                return
            block_s = 0.0
            message = self.decode(self.conn.recv_bytes())
            if isinstance(message, Credit):
                self.credit += 1
                self.worker_busy += BUSY_WEIGHT * (message.busy - self.worker_busy)
                continue
            if message.op == "rebalanced":
                self.send(Reply())
                if until_rebalanced:
                    return
                continue
            if not message.reply:
                try:
                    self.call(message.op, message.args)
                except Exception:
                    log.warning("%s failed", message.op, exc_info=True)
                continue
            try:
                value = self.call(message.op, message.args)
            except Exception as exc:
                self.send(Reply(error=f"{type(exc).__name__}: {exc}"))
            else:
                self.send(Reply(value))

    def call(self, op: str, args: list[Any]) -> Any:
        consumer = self.consumer
        if op == "subscribe":
            consumer.subscribe(topics=args[0], listener=_ChildListener(self))
            self.subscribed = True
        elif op in ("commit", "commit_async"):
            offsets = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for t, p, o in args}
            (consumer.commit if op == "commit" else consumer.commit_async)(offsets)
        elif op == "seek":
            tp = TopicPartition(args[0], args[1])
            consumer.seek(tp, args[2])
            self.positions[tp] = args[2]
        elif op in ("pause", "resume"):
            tps = [TopicPartition(t, p) for t, p in args]
            (consumer.pause if op == "pause" else consumer.resume)(*tps)
        elif op == "partitions_for_topic":
            parts = consumer.partitions_for_topic(args[0])
            return sorted(parts) if parts is not None else None
        elif op == "close":
            consumer.close(autocommit=bool(args[0]))  # runs the listener: calls are served meanwhile
            self.closing = True
        else:
            raise ValueError(f"unknown call {op!r}")
        return None

    def rebalance(self, kind: Literal["revoked", "assigned"], tps: Iterable[TopicPartition]) -> None:
        tps = list(tps)
        if kind == "revoked":
            for tp in tps:
                self.positions.pop(tp, None)
        self.send(Rebalance(kind, [(tp.topic, tp.partition) for tp in tps]))
        self.serve(0.0, until_rebalanced=True)

    def send(self, message: ToWorker) -> None:
        self.conn.send_bytes(self.encode(message))


class _ChildListener(ConsumerRebalanceListener):
    def __init__(self, child: _Child) -> None:
        self.child = child

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.child.rebalance("revoked", revoked)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.child.rebalance("assigned", assigned)


def _child_main(conn: Connection, read_ahead: int) -> None:
    # Ctrl-C reaches the whole process group: the worker shuts this process down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child: _Child | None = None
    try:
        options, (level, fmt), decode_topics, max_event_bytes, decode_policy = conn.recv()
        setup_logging(level, fmt)
        child = _Child(conn, options, read_ahead, decode_topics, max_event_bytes, decode_policy)
        child.run()
    except (EOFError, BrokenPipeError, ConnectionResetError):  # the worker is gone: leave the group
        if child is not None:
            with contextlib.suppress(Exception):
                child.consumer.close(autocommit=False)
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send_bytes(msgspec.msgpack.encode(Failed(f"{type(exc).__name__}: {exc}")))
        raise


if __name__ == "__main__":
    _child_main(Connection(int(sys.argv[1])), int(sys.argv[2]))
