"""``credential_attacks``: stuffing, spraying and a success from a flagged source, at IP,
network and ASN level — one finding per attack, shared egress and allowlists respected."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest

from secmon.cli import main
from secmon.config import ConfigError
from secmon.contract import parse_ts_ms
from secmon.detectors.credential_attacks import CredentialAttacks, SourceState, entry_fields
from secmon.detectors.registry import resolve
from secmon.engine.pipeline import Pipeline
from tests.helpers.detectors import run_events, specs
from tests.helpers.events import HOUR, MINUTE, SECOND, T0, decoded, ev, write_jsonl

STUFFER = "198.51.100.7"


def fail(account: str, ts: int, ip: str, asn: int | None = 64501, reason: str = "bad_password") -> dict[str, Any]:
    return ev("login.failed", account, ts, {"reason": reason}, ip=ip, asn=asn)


def ok(account: str, ts: int, ip: str, asn: int | None = 64501) -> dict[str, Any]:
    return ev("login.succeeded", account, ts, ip=ip, asn=asn)


def stuffing(ip: str | list[str], n: int = 200, start: int = T0, asn: int | None = 64501) -> list[dict[str, Any]]:
    """``n`` accounts tried once or twice each, 3 s apart (a breached-credentials list)."""
    rnd = random.Random(n)
    ips = [ip] if isinstance(ip, str) else ip
    events = []
    for i in range(n):
        t = start + i * 3 * SECOND
        src = ips[i % len(ips)]
        reason = rnd.choice(["bad_password", "unknown_account"])
        events.append(fail(f"victim{i}", t, src, asn, reason))
        if i % 3 == 0:
            events.append(fail(f"victim{i}", t + SECOND, src, asn))
    return events


def run(events: list[dict[str, Any]], **options: Any):  # type: ignore[no-untyped-def]
    return run_events(events, {CredentialAttacks: options})


def test_one_ip_stuffing_is_one_ip_level_finding_and_not_repeated_at_net_or_asn() -> None:
    result = run(stuffing(STUFFER))
    found = result.latest()
    assert [f.kind for f in found] == ["credential_stuffing"]
    f = found[0]
    assert f.account_id is None
    assert (f.subject.ip, f.subject.asn, f.subject.network) == (STUFFER, 64501, None)
    assert f.explanation["level"] == "ip" and f.explanation["accounts"] >= 100
    assert f.severity == "high"
    assert 1 <= len(f.evidence) <= 10


def test_stuffing_spread_over_a_24_is_one_network_finding() -> None:
    ips = [f"198.51.100.{i}" for i in range(1, 21)]  # 10 accounts each: below the per-IP threshold
    found = run(stuffing(ips)).latest()
    assert [(f.kind, f.subject.network, f.subject.ip) for f in found] == [
        ("credential_stuffing", "198.51.100.0/24", None)
    ]
    assert found[0].explanation["distinct_ips"] == 20


def test_failures_dispersed_over_an_asn_are_one_asn_level_spraying_finding() -> None:
    """Each of 40 addresses in 40 networks tries 5 accounts: the low-and-slow evasion of
    per-IP limits, reported once for the ASN (never as 40 small findings)."""
    ips = [f"10.{i}.0.1" for i in range(40)]
    found = run(stuffing(ips, asn=64999)).latest()
    assert [(f.kind, f.subject.asn, f.explanation["level"], f.explanation["rule"]) for f in found] == [
        ("password_spraying", 64999, "asn", "breadth")
    ]
    assert found[0].explanation["distinct_networks"] >= 5


def test_below_the_elastic_thresholds_is_not_stuffing() -> None:
    """14 accounts, 28 attempts: under 15 accounts.  And three accounts brute-forced hard."""
    events = []
    for i in range(14):
        events += [fail(f"v{i}", T0 + i * 10 * SECOND, STUFFER), fail(f"v{i}", T0 + i * 10 * SECOND + 1, STUFFER)]
    events += [fail(f"bf{k}", T0 + i * SECOND, "192.0.2.1") for k in range(3) for i in range(30)]
    assert run(events).records == []


def nat_day(ip: str = "100.64.0.1", accounts: int = 300, seed: int = 7) -> list[dict[str, Any]]:
    """A carrier NAT at rush hour: 300 accounts log in within 2 hours, 40% of the logins
    after one or two typos (dense enough that counting failures alone would alert)."""
    rnd = random.Random(seed)
    events: list[dict[str, Any]] = []
    for a in range(accounts):
        for _ in range(rnd.randint(1, 4)):
            t = T0 + rnd.randrange(2 * HOUR)
            if rnd.random() < 0.4:
                events += [fail(f"nat{a}", t + j * 5 * SECOND, ip, 64502) for j in range(rnd.randint(1, 2))]
            events.append(ok(f"nat{a}", t + 30 * SECOND, ip, 64502))
        if rnd.random() < 0.05:  # gave up, will reset the password later
            events.append(fail(f"nat{a}", T0 + rnd.randrange(2 * HOUR), ip, 64502))
    return events


def test_a_carrier_nat_with_300_accounts_typos_and_mostly_successes_is_not_an_attack() -> None:
    """The hard negative from the issue (the same failures without the successes would alert)."""
    assert run(nat_day()).records == []
    failures_only = [e for e in nat_day() if e["event_type"] == "login.failed"]
    assert run(failures_only).latest("credential_stuffing")


def test_stuffing_through_a_learned_shared_egress_ip_needs_more_but_is_still_found() -> None:
    events = nat_day()
    attack = stuffing("100.64.0.1", n=400, start=T0 + 3 * HOUR, asn=64502)
    found = run(events + attack).latest()
    assert [f.kind for f in found] == ["credential_stuffing"]
    assert found[0].explanation["shared_egress"] is True
    assert found[0].explanation["min_accounts"] == 45  # 15 × threshold_factor 3


@pytest.mark.parametrize(
    "allowlist",
    [{"ips": [STUFFER]}, {"cidrs": ["198.51.100.0/24"]}, {"asns": [64501]}],
)
def test_allowlisted_sources_are_exempt(allowlist: dict[str, Any]) -> None:
    assert run(stuffing(STUFFER), allowlist=allowlist).records == []


def spray(ips: list[str], accounts: int = 60, rounds: int = 3, asn: int = 64503,
          every: int = 40 * SECOND) -> list[dict[str, Any]]:
    """One password per round across the same accounts, an account every ``every``, the
    rounds an hour apart."""
    rnd = random.Random(accounts)
    period = accounts * every + HOUR
    return [
        fail(f"s{a}", T0 + r * period + a * every, rnd.choice(ips), asn)
        for r in range(rounds) for a in range(accounts)
    ]


def test_a_slow_spray_over_many_ips_of_one_asn_is_one_asn_level_spraying_finding() -> None:
    rnd = random.Random(3)
    ips = [f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}" for _ in range(150)]
    found = run(spray(ips)).latest()
    assert [(f.kind, f.subject.asn, f.explanation["level"]) for f in found] == [
        ("password_spraying", 64503, "asn")
    ]
    assert found[0].account_id is None


def test_an_open_asn_spray_is_rescanned_only_when_a_revision_is_possible(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a spray open at the ASN (a level that reports spraying only), a due scan runs only
    when the running counts could reach a higher severity or the update cooldown has passed:
    the same revisions as scanning every time, with fewer scans."""
    rnd = random.Random(5)
    ips = [f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}" for _ in range(150)]
    events = spray(ips, accounts=150, rounds=4, every=10 * SECOND)  # ~100 revisits 17 min into round 2
    scanned: list[str] = []
    scan = CredentialAttacks._scan

    def counted_scan(self: CredentialAttacks, keys: Any, states: Any, i: int, level: str, *rest: Any) -> None:
        scanned.append(level)
        scan(self, keys, states, i, level, *rest)

    monkeypatch.setattr(CredentialAttacks, "_scan", counted_scan)
    gated = [msgspec.json.encode(f) for f in run(events).records]
    gated_scans = scanned.count("asn")
    scanned.clear()
    monkeypatch.setattr(CredentialAttacks, "_spray_settled", lambda self, s, ts: False)
    every_time = run(events).records
    assert gated == [msgspec.json.encode(f) for f in every_time]
    asn_spray = [f for f in every_time if f.kind == "password_spraying" and f.explanation["level"] == "asn"]
    assert [f.severity for f in asn_spray][:2] == ["medium", "high"]  # escalated inside the cooldown
    assert len(asn_spray) >= 3  # and revised again after it
    assert gated_scans < scanned.count("asn")  # 13 against 19


def test_a_slow_spray_from_one_ip_is_found_at_ip_level_and_not_as_stuffing() -> None:
    """An account every 3 minutes: never 15 in half an hour, but revisited round after round."""
    found = run(spray(["192.0.2.44"], accounts=40, every=3 * MINUTE)).latest()
    assert [(f.kind, f.subject.ip, f.explanation["rule"]) for f in found] == [
        ("password_spraying", "192.0.2.44", "revisits")
    ]


def test_one_slow_round_from_one_ip_is_neither_spraying_nor_stuffing() -> None:
    """Hard negative: 40 accounts tried once each, slowly, from one address."""
    assert run(spray(["192.0.2.44"], accounts=40, rounds=1, every=3 * MINUTE)).records == []


def test_a_success_from_the_stuffing_ip_is_a_suspected_compromise_of_that_account() -> None:
    events = stuffing(STUFFER)
    events.append(ok("lucky", T0 + 5 * MINUTE, STUFFER))
    events.append(ok("bystander", T0 + 5 * MINUTE, "203.0.113.50", asn=64777))
    (c,) = run(events).latest("compromise_suspected")
    assert (c.account_id, c.subject.ip) == ("lucky", STUFFER)
    assert c.explanation["attack"] == "credential_stuffing"


def test_a_success_from_an_unflagged_ip_of_a_flagged_asn_is_not_a_compromise() -> None:
    ips = [f"10.{i}.0.1" for i in range(40)]
    events = stuffing(ips, asn=64999)
    events.append(ok("neighbour", T0 + 9 * MINUTE, "10.200.0.9", asn=64999))  # same ISP, not attacking
    events.append(ok("lucky", T0 + 9 * MINUTE, "10.3.0.1", asn=64999))  # one of the spraying addresses
    result = run(events)
    assert [f.kind for f in result.latest()] == ["password_spraying", "compromise_suspected"]
    assert result.latest("compromise_suspected")[0].account_id == "lucky"


def test_forwarding_uses_one_key_per_login() -> None:
    """``asn:`` when the event has an ASN, else its /24; not forwarded for expired passwords."""
    keys = CredentialAttacks.source_keys
    config = CredentialAttacks.Config()
    assert list(keys(decoded(fail("a", T0, "192.0.2.1", 64500)), config)) == ["asn:64500"]
    assert list(keys(decoded(fail("a", T0, "192.0.2.1", None)), config)) == ["net:192.0.2.0/24"]
    assert list(keys(decoded(fail("a", T0, "2001:db8::1", None)), config)) == ["net:2001:db8::/64"]
    assert list(keys(decoded(fail("a", T0, "192.0.2.1", 1, "expired_password")), config)) == []
    assert list(keys(decoded(ev("password.changed", "a", T0)), config)) == []


def test_an_attack_seen_by_several_account_partitions_is_found_by_the_source_task() -> None:
    """Accounts live in different partitions; the source task sees all their forwards."""
    findings: list[Any] = []
    pipeline = Pipeline(specs({CredentialAttacks: {}}))
    source = pipeline.source_task("src", findings.append)
    parts = [pipeline.account_task(f"acc-{p}", findings.append, source.process_record) for p in range(4)]
    for offset, event in enumerate(stuffing(STUFFER)):
        p = hash(event["account_id"]) % 4
        parts[p].process(decoded(event), f"auth-{p}", offset)
    assert {f.kind for f in findings} == {"credential_stuffing"}


def test_tracked_accounts_per_source_are_capped() -> None:
    result = run(stuffing(STUFFER, n=600), max_accounts_tracked=50)
    det = result.source_task.by_name["credential_attacks"]  # type: ignore[union-attr]
    sizes = [len(s.acc) for _, s in det.state.items()]
    assert sizes and max(sizes) <= 62
    assert result.latest("credential_stuffing")


def test_an_account_entry_keeps_counts_times_and_cover_in_one_int() -> None:
    ip = "203.0.113.9"
    events = [fail("alice", T0 + i * 10 * MINUTE, ip) for i in range(20)]
    events += [fail(f"other{i}", T0 + i * SECOND, ip) for i in range(3)]
    det = run(events).source_task.by_name["credential_attacks"]  # type: ignore[union-attr]
    entry = det.state.get(f"ip:{ip}").acc["alice"]
    assert type(entry) is int and entry < 2**60  # two 30-bit digits: a 32-byte int
    # failures counted up to 15 (thresholds must stay below), times in seconds
    assert entry_fields(entry) == (15, 0, T0 // 1000, (T0 + 190 * MINUTE) // 1000, 0)
    det = run([*events, ok("alice", T0 + 200 * MINUTE, ip)]).source_task.by_name["credential_attacks"]  # type: ignore[union-attr]
    last = (T0 + 200 * MINUTE) // 1000
    assert entry_fields(det.state.get(f"ip:{ip}").acc["alice"]) == (15, 1, last, last, 0)  # a user: no age kept
    with pytest.raises(ConfigError):
        resolve({"credential_attacks": {"spraying": {"max_attempts_per_account": 15}}})


@pytest.mark.parametrize(("ip", "net"), [("203.0.113.9", "203.0.113.0/24"), ("2001:db8:1:2::9", "2001:db8:1:2::/64")])
@pytest.mark.parametrize("levels", [("ip", "net", "asn"), ("ip", "net"), ("net", "asn")])
def test_a_success_is_recorded_at_each_level_of_its_source(ip: str, net: str, levels: tuple[str, ...]) -> None:
    """``_succeeded`` builds the usual login's keys (IPv4, an ASN, every level) inline;
    IPv6 and a subset of levels take ``_level_keys``: both must name ``_failure``'s states."""
    events = [fail("alice", T0, ip), fail("bob", T0 + SECOND, ip), ok("alice", T0 + MINUTE, ip)]
    det = run(events, levels=levels).source_task.by_name["credential_attacks"]  # type: ignore[union-attr]
    keys = {"ip": f"ip:{ip}", "net": f"net:{net}", "asn": "asn:64501"}
    assert sorted(k for k, _ in det.state.items()) == sorted(keys[level] for level in levels)
    for level in levels:
        assert entry_fields(det.state.get(keys[level]).acc["alice"])[:2] == (1, 1)  # a failure, then a success


def test_a_source_state_checkpointed_with_tuple_entries_is_read_as_ints() -> None:
    """Checkpoints before 2026-11-26 held (failures, successes, first failure ms, last ms,
    cover) tuples: a restart after the upgrade keeps the sources' state."""
    legacy = msgspec.msgpack.encode([T0, {"a": (2, 0, T0, T0 + 30 * MINUTE, 1), "b": (0, 1, 0, T0 + 5 * SECOND, 0)}, [T0], 1])
    state = msgspec.msgpack.Decoder(SourceState).decode(legacy)
    assert entry_fields(state.acc["a"]) == (2, 0, T0 // 1000, (T0 + 30 * MINUTE) // 1000, 1)
    assert entry_fields(state.acc["b"])[:2] == (0, 1) and state.acc["b"] & (2**32 - 1) == (T0 + 5 * SECOND) // 1000
    assert state.fo == 1 and state.att == 0  # the failure times: the count starts afresh
    assert state.rv >= 2**30  # no revisit count yet: the next scan may run and count them
    again = msgspec.msgpack.Decoder(SourceState).decode(msgspec.msgpack.encode(state))
    assert again.acc == state.acc  # written back as ints


def test_a_stuffing_burst_across_two_counting_windows_is_found() -> None:
    """Failures are counted per fixed 30-min window for the pre-check: a burst split by a
    window's end still adds up (the two windows are read together)."""
    window = 30 * MINUTE
    start = (T0 // window + 1) * window - 40 * SECOND  # 16 accounts before the boundary, the rest after
    found = run(stuffing(STUFFER, n=30, start=start)).latest()
    assert [(f.kind, f.explanation["level"]) for f in found] == [("credential_stuffing", "ip")]


def test_an_address_trying_a_dozen_accounts_once_each_is_never_scanned() -> None:
    """A botnet's address (a few accounts each, once): the running counts rule out both
    stuffing (15 accounts) and spraying (revisits), so the exact scan never runs for it."""
    events = [fail(f"combo{i}", T0 + i * 40 * SECOND, "10.9.8.7", asn=None) for i in range(12)]
    det = run(events).source_task.by_name["credential_attacks"]  # type: ignore[union-attr]
    state = det.state.get("ip:10.9.8.7")
    assert state.fo == 12 and state.rv == 0
    assert state.eval_at == SourceState().eval_at  # not scanned


def test_revisited_accounts_are_counted_as_they_turn_so() -> None:
    ip = "192.0.2.60"
    events = [fail(f"r{a}", T0 + rnd * 15 * MINUTE + a * SECOND, ip) for rnd in range(2) for a in range(5)]
    det = run(events).source_task.by_name["credential_attacks"]  # type: ignore[union-attr]
    assert det.state.get(f"ip:{ip}").rv == 5  # two tries 15 min apart each: 5 spray revisits


def test_bad_allowlist_entries_fail_at_start_up() -> None:
    with pytest.raises(ConfigError):
        resolve({"credential_attacks": {"allowlist": {"cidrs": ["10.0.0.0/33"]}}})
    with pytest.raises(ConfigError):
        resolve({"credential_attacks": {"levels": ["ip", "city"]}})


def test_secmon_replay_reports_stuffing_with_a_null_account(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", stuffing(STUFFER) + nat_day())
    out = tmp_path / "findings.jsonl"
    assert main(["replay", str(path), "--findings", str(out), "--no-progress"]) == 0
    findings = [json.loads(line) for line in out.read_text().splitlines()]
    stuffed = [f for f in findings if f["kind"] == "credential_stuffing"]
    assert len(stuffed) == 1
    assert stuffed[0]["account_id"] is None and stuffed[0]["subject"]["ip"] == STUFFER
    assert not [f for f in findings if f["kind"] in ("password_spraying", "compromise_suspected")]


@pytest.mark.parametrize("attack", ["stuffing", "spraying"])
def test_first_seen_is_when_the_attack_began_and_the_evidence_lies_within(attack: str) -> None:
    """The contract's first_seen is the time of the first evidence: a finding opened by a
    scan minutes (stuffing) or hours (spraying) into the attack starts at its first failure,
    not at the scan, and every failure it lists lies between first_seen and last_seen."""
    events = stuffing(STUFFER) if attack == "stuffing" else spray(["192.0.2.44"], accounts=40, every=3 * MINUTE)
    when = {e["event_id"]: parse_ts_ms(e["occurred_at"]) for e in events}
    result = run(events)
    assert result.records
    for f in result.records:
        first, last = parse_ts_ms(f.first_seen), parse_ts_ms(f.last_seen)
        assert all(first <= when[i] <= last for i in f.evidence), f
        assert first == T0 // 1000 * 1000  # the first failure, to the second
