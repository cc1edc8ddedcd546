"""The simulator: deterministic, contract-valid, every kind labelled, and the ground truth
complete (nothing suspicious in the background that is not labelled)."""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

import orjson
import pyotp
import pytest

from secmon.cli import main
from secmon.contract import FINDING_KINDS, EventDecoder, parse_ts_ms
from secmon.sim.generate import SimResult, simulate, write
from secmon.sim.world import DEPOSIT_SLA_MIN, NORMAL_CREDIT_CAP_MIN, STRONG_MFA, WEAK_MFA_MAX_USD

SEED, ACCOUNTS, DAYS = 11, 400, 2


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimResult, Path]:
    result = simulate(SEED, ACCOUNTS, DAYS)
    out = tmp_path_factory.mktemp("sim")
    write(result, out)
    return result, out


@pytest.fixture(scope="module")
def events(run: tuple[SimResult, Path]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (run[1] / "events.jsonl").read_bytes().splitlines()]


@pytest.fixture(scope="module")
def labels(run: tuple[SimResult, Path]) -> dict[str, Any]:
    return orjson.loads((run[1] / "labels.json").read_bytes())  # type: ignore[no-any-return]


def _labelled_accounts(labels: dict[str, Any]) -> set[str]:
    return {a for s in labels["scenarios"] for a in s["accounts"]}


def test_same_seed_gives_identical_bytes(run: tuple[SimResult, Path], tmp_path: Path) -> None:
    """Determinism: the same seed and options write byte-identical events and labels."""
    write(simulate(SEED, ACCOUNTS, DAYS), tmp_path)
    for name in ("events.jsonl", "labels.json"):
        assert (tmp_path / name).read_bytes() == (run[1] / name).read_bytes()


def test_different_seed_gives_different_traffic(run: tuple[SimResult, Path], tmp_path: Path) -> None:
    """Another seed is another population and other attacks."""
    write(simulate(SEED + 1, ACCOUNTS, DAYS), tmp_path)
    assert (tmp_path / "events.jsonl").read_bytes() != (run[1] / "events.jsonl").read_bytes()


def test_every_event_decodes_and_file_is_time_ordered(run: tuple[SimResult, Path]) -> None:
    """Every line passes the contract decoder and occurred_at never goes backwards."""
    decoder = EventDecoder()
    last = 0
    lines = (run[1] / "events.jsonl").read_bytes().splitlines()
    for line in lines:
        event = decoder.decode(line)
        assert event.ts >= last
        last = event.ts
    assert len(lines) == len(run[0].events) > 10_000


def test_every_finding_kind_has_labelled_scenarios(labels: dict[str, Any]) -> None:
    """At least two labelled scenarios of every contract kind, with coherent windows."""
    counts = Counter(s["kind"] for s in labels["scenarios"])
    assert set(FINDING_KINDS) <= set(counts)
    assert min(counts[k] for k in FINDING_KINDS) >= 2
    assert labels["counts"] == {k: counts[k] for k in labels["counts"]}
    for s in labels["scenarios"]:
        start, end, anchor = (parse_ts_ms(s[k]) for k in ("start", "end", "anchor"))
        assert start <= anchor <= end + DEPOSIT_SLA_MIN * 60_000, s["id"]
        assert s["account_id"] is None or s["account_id"] in s["accounts"]
        assert set(s["also"]).isdisjoint({s["kind"]}) and set(s["also"]) <= set(FINDING_KINDS)


def test_labels_point_at_real_events_and_transactions(labels: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """Every event id and tx id in the labels exists in events.jsonl."""
    ids = {e["event_id"] for e in events}
    txs = {e["payload"]["tx_id"] for e in events if "tx_id" in e["payload"]}
    for s in labels["scenarios"]:
        assert set(s["events"]) <= ids, s["id"]
        assert set(s["tx_ids"]) <= txs, s["id"]
    for n in labels["hard_negatives"]:
        assert set(n["tx_ids"]) <= txs, n["id"]


def test_an_account_takes_part_in_one_story_only(labels: dict[str, Any]) -> None:
    """Scenarios share accounts only within a composite group; hard negatives use others."""
    stories: dict[str, set[str]] = defaultdict(set)
    for s in labels["scenarios"]:
        for a in s["accounts"]:
            stories[a].add(s["group"] or s["id"])
    assert all(len(v) == 1 for v in stories.values())
    negative = {a for n in labels["hard_negatives"] for a in n["account_ids"]}
    assert negative.isdisjoint(stories)


def test_every_lock_and_burst_of_withdrawal_failures_is_labelled(
    labels: dict[str, Any], events: list[dict[str, Any]]
) -> None:
    """Locks happen only in labelled stories; the background never fails 3 withdrawals."""
    labelled_events = {e for s in labels["scenarios"] for e in s["events"]}
    locks = [e for e in events if e["event_type"] == "account.locked"]
    assert locks and all(e["event_id"] in labelled_events for e in locks)
    failures = Counter(
        e["account_id"] for e in events
        if e["event_type"] == "withdrawal.failed" and e["event_id"] not in labelled_events
    )  # fmt: skip
    assert max(failures.values(), default=0) <= 2


def test_weak_2fa_on_a_valuable_account_is_always_labelled(
    labels: dict[str, Any], events: list[dict[str, Any]]
) -> None:
    """A snapshot of a valuable account with weak 2FA belongs to a labelled account."""
    labelled = _labelled_accounts(labels)
    for e in events:
        if e["event_type"] != "account.snapshot":
            continue
        p = e["payload"]
        if float(p["balance_usd"]) >= WEAK_MFA_MAX_USD and not STRONG_MFA.intersection(p["mfa_methods"]):
            assert e["account_id"] in labelled


def test_normal_deposits_credit_inside_the_sla(labels: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """Unlabelled deposits credit within the normal cap; slow hard negatives just inside the SLA."""
    delayed = {t for s in labels["scenarios"] if s["kind"] == "deposit_delayed" for t in s["tx_ids"]}
    slow = {t for n in labels["hard_negatives"] if n["scenario"] == "slow_credit" for t in n["tx_ids"]}
    started: dict[str, int] = {}
    for e in events:
        tx = e["payload"].get("tx_id")
        if e["event_type"] == "deposit.initiated":
            started[tx] = parse_ts_ms(e["occurred_at"])
        elif e["event_type"] == "deposit.credited":
            minutes = (parse_ts_ms(e["occurred_at"]) - started.pop(tx)) / 60_000
            if tx in slow:
                assert 25 <= minutes < DEPOSIT_SLA_MIN
            elif tx not in delayed:
                assert minutes <= NORMAL_CREDIT_CAP_MIN + 0.1
    assert set(started) <= delayed and slow


def test_totp_secrets_strong_unless_labelled_weak(labels: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """Background TOTP enrolments: 160-bit secrets, default parameters, never shared, usable
    by pyotp; secrets under 112 bits (which pyotp itself refuses) are all labelled weak."""
    weak = {s["account_id"] for s in labels["scenarios"] if s["kind"] == "mfa_weak_secret"}
    reuse = {a for s in labels["scenarios"] if s["kind"] == "mfa_secret_reuse" for a in s["accounts"]}
    holders: dict[str, set[str]] = defaultdict(set)
    for e in events:
        uri = e["payload"].get("otpauth_uri")
        if e["event_type"] != "mfa.enrolled" or uri is None:
            continue
        query = parse_qs(urlparse(uri).query)
        secret = query["secret"][0]
        if len(secret) * 5 < 112:  # base32: 5 bits a character
            assert e["account_id"] in weak
            with pytest.raises(ValueError, match="at least 112 bits"):
                cast(pyotp.TOTP, pyotp.parse_uri(uri)).now()
        else:
            assert cast(pyotp.TOTP, pyotp.parse_uri(uri)).now().isdigit()
        holders[secret].add(e["account_id"])
        if e["account_id"] not in weak:
            assert len(secret) == 32 and "digits" not in query and "period" not in query
    for secret, accounts in holders.items():
        if len(accounts) > 1:
            assert accounts <= weak | reuse, secret


def test_hard_negatives_have_their_shape(labels: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """The carrier NAT is one IP for many accounts with mostly successes; travellers could
    have flown."""
    nat = next(n for n in labels["hard_negatives"] if n["scenario"] == "carrier_nat")
    on_nat = [e for e in events if e.get("ip") == nat["subject"]["ip"]]
    kinds = Counter(e["event_type"] for e in on_nat)
    assert len({e["account_id"] for e in on_nat}) == len(nat["account_ids"]) >= 50
    assert kinds["login.failed"] < 0.2 * kinds["login.succeeded"]
    logins: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for e in events:
        if e["event_type"] == "login.succeeded" and "geo" in e:
            logins[e["account_id"]].append((parse_ts_ms(e["occurred_at"]), e["geo"]["lat"], e["geo"]["lon"]))
    for n in labels["hard_negatives"]:
        if n["scenario"] != "traveller":
            continue
        seen = logins[n["account_ids"][0]]
        assert len({round(lat) for _, lat, _ in seen}) > 1  # it did travel
        for (t1, la1, lo1), (t2, la2, lo2) in itertools.pairwise(seen):
            assert _km(la1, lo1, la2, lo2) <= 1000 * max((t2 - t1) / 3.6e6, 0.5)


def test_simulate_command_writes_files_and_refuses_tiny_populations(tmp_path: Path) -> None:
    """`secmon simulate --out` writes both files; too few accounts is a clear error (2)."""
    assert main(["simulate", "--seed", "3", "--out", str(tmp_path), "--accounts", "300", "--days", "1",
                 "--no-progress"]) == 0  # fmt: skip
    assert (tmp_path / "events.jsonl").stat().st_size > 0
    assert orjson.loads((tmp_path / "labels.json").read_bytes())["seed"] == 3
    assert main(["simulate", "--seed", "3", "--out", str(tmp_path), "--accounts", "10"]) == 2


@pytest.mark.integration
def test_kafka_mode_produces_to_contract_topics_near_now(broker: str) -> None:
    """--kafka: events keyed by account on the topic of their type, timeline shifted to now,
    paced by --rate."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from secmon.config import Topics
    from secmon.sim.play import play, topic_map

    result = simulate(5, 300, 1)
    sample = result.events[:300]
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    shift = int(time.time() * 1000) - sample[0][0]
    started = time.monotonic()
    assert play(sample, producer, Topics(), shift_ms=shift, rate=1000.0) == len(sample)
    assert time.monotonic() - started >= 0.25  # 300 events at ≤ 1000/s
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker, auto_offset_reset="earliest", consumer_timeout_ms=3000)
    consumer.assign([
        TopicPartition(t, p) for t in ("auth.events", "wallet.events", "account.snapshots")
        for p in consumer.partitions_for_topic(t) or ()
    ])  # fmt: skip
    got = [(r.topic, r.key, orjson.loads(r.value)) for r in consumer]
    consumer.close()
    assert len(got) == len(sample)
    topics = topic_map(Topics())
    now = time.time() * 1000
    for topic, key, ev in got:
        assert topic == topics[ev["event_type"]] and key == ev["account_id"].encode()
        assert abs(parse_ts_ms(ev["occurred_at"]) - now) < 3_600_000


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))
