"""The simulation's moving parts: accounts, where an event comes from, and the event sink.

Each account owns a small agenda (a heap of ``(time, seq, step, arg)``).  Background habits
and injected scenarios both push steps into it; the accounts' agendas then run one account
after another, each in time order, so a step sees the account as it is at that moment
(balance, lock, 2FA methods) even when a scenario was planned before the habits.  Steps may
emit events with later timestamps (a credit 12 minutes after its deposit); everything is
sorted by ``(occurred_at, emission order)`` at the end, which makes ties deterministic.

One ``random.Random`` per purpose (population, scenario planning, execution), each seeded
from ``--seed`` with a string (hashed with SHA-512 by ``random``, so stable across runs and
platforms), keeps the output a pure function of the seed and the options.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final

from secmon.contract import EVENT_TYPES
from secmon.sim.labels import NegativeLabel, ScenarioLabel
from secmon.sim.world import STRONG_MFA, City, Isp

MINUTE: Final = 60_000
HOUR: Final = 3_600_000
DAY: Final = 86_400_000

_SOURCES: Final = {
    "auth.events": "auth-service",
    "wallet.events": "wallet-ledger",
    "account.snapshots": "account-service",
}
SOURCE_OF: Final = {etype: _SOURCES[cls.topic] for etype, cls in EVENT_TYPES.items()}

_minute_prefix: dict[int, str] = {}


def iso(ms: int) -> str:
    """Epoch ms → ``2026-10-01T12:34:56.789Z`` (the contract's format), fast: the part up to
    the minute is cached, because the generator formats hundreds of thousands of timestamps."""
    minute, rem = divmod(ms, MINUTE)
    prefix = _minute_prefix.get(minute)
    if prefix is None:
        prefix = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:")
        if len(_minute_prefix) > 200_000:
            _minute_prefix.clear()
        _minute_prefix[minute] = prefix
    s, milli = divmod(rem, 1000)
    return f"{prefix}{s:02d}.{milli:03d}Z"


@dataclass(frozen=True, slots=True)
class Where:
    """Where a client event comes from: address, network, device and place."""

    ip: str | None
    asn: int | None
    device_id: str | None
    user_agent: str | None
    city: City | None


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    user_agent: str
    mobile: bool


@dataclass(frozen=True, slots=True)
class Trip:
    """A journey of a traveller (hard negative): in the air between ``depart`` and ``arrive``."""

    depart_ms: int
    arrive_ms: int
    city: City
    isp: Isp
    ip: str


Step = Callable[["Sim", "Account", int, Any], None]


@dataclass(slots=True, eq=False)
class Account:
    """One wallet user: habits (fixed) and state (changes as its agenda runs)."""

    idx: int
    id: str
    city: City
    locale: str
    created_ms: int
    home_isp: Isp
    mobile_isp: Isp
    home_ip: str
    mobile_ips: list[str]
    devices: list[Device]
    peak_local_h: float
    sessions_per_day: float
    typo_rate: float
    wallet_rate: float
    mfa: list[str]
    email_verified: bool
    phone_verified: bool
    balance: float
    amount_mu: float
    amount_sigma: float
    holdings: list[tuple[str, str]]
    book: dict[tuple[str, str], list[str]]
    friends: list[str] = field(default_factory=list)
    #: Id of the scenario or hard negative that owns the account ('' = habits only).
    role: str = ""
    #: Background weak-2FA accounts stay small (see ``world.WEAK_MFA_MAX_USD``).
    capped: bool = False
    #: Only known addresses (whales): never adds an address in the background.
    known_only: bool = False
    nat_ip: str | None = None
    trip: Trip | None = None
    #: Lock intervals ``[locked, unlocked)`` set by scenarios (logins in between fail as ``locked``).
    locks: list[tuple[int, int]] = field(default_factory=list)
    #: No background wallet activity before this (a scenario is moving this account's money).
    quiet_until: int = 0
    tx_count: int = 0
    #: Set by a takeover that changed the password: the labels the owner's recovery joins.
    lost_password: tuple[Any, ...] = ()
    wd_fail_day: int = -1
    agenda: list[tuple[int, int, Step, Any]] = field(default_factory=list)

    def is_locked(self, ts: int) -> bool:
        return any(a <= ts < b for a, b in self.locks)

    @property
    def weak_mfa(self) -> bool:
        return not STRONG_MFA.intersection(self.mfa)

    def home_where(self, rng: random.Random, ts: int) -> Where | None:
        """A typical session origin for this account at ``ts`` (None: in the air)."""
        device = self.devices[0] if len(self.devices) == 1 or rng.random() < 0.75 else rng.choice(self.devices)
        trip = self.trip
        if trip is not None and ts >= trip.depart_ms:
            if ts < trip.arrive_ms:
                return None
            return Where(trip.ip, trip.isp.asn, device.id, device.user_agent, trip.city)
        if device.mobile:
            if self.nat_ip is not None:
                return Where(self.nat_ip, self.mobile_isp.asn, device.id, device.user_agent, self.city)
            r = rng.random()
            isp = self.mobile_isp
            if r < 0.6:
                ip = self.mobile_ips[0] if len(self.mobile_ips) == 1 else rng.choice(self.mobile_ips)
            elif r < 0.9 or isp.v6 is None:
                ip = isp.ip(rng)
            else:
                ip = isp.ip_v6(rng)
            return Where(ip, isp.asn, device.id, device.user_agent, self.city)
        return Where(self.home_ip, self.home_isp.asn, device.id, device.user_agent, self.city)


@cache
def _places(city: City) -> tuple[dict[str, Any], ...]:
    """128 points within ~10 km of the city centre (geolocation is that coarse anyway);
    events share these read-only dicts, which keeps ``emit`` cheap."""
    rng = random.Random(f"secmon-sim-geo:{city.name}")
    return tuple(
        {
            "country": city.country,
            "city": city.name,
            "lat": round(city.lat + (rng.random() - 0.5) * 0.2, 3),
            "lon": round(city.lon + (rng.random() - 0.5) * 0.2, 3),
        }
        for _ in range(128)
    )


class Sim:
    """Event sink, agendas and labels of one simulation run."""

    def __init__(self, seed: int, start_ms: int, days: int) -> None:
        self.seed = seed
        self.t0 = start_ms
        self.t_end = start_ms + days * DAY
        self.days = days
        self.rng = random.Random(f"secmon-sim:{seed}:run")
        self.events: list[tuple[int, int, dict[str, Any]]] = []
        self.accounts: list[Account] = []
        self.by_id: dict[str, Account] = {}
        self.scenarios: list[ScenarioLabel] = []
        self.negatives: list[NegativeLabel] = []
        #: (network, start, end, reason, label): background withdrawals then fail too.
        self.outages: list[tuple[str, int, int, str, ScenarioLabel]] = []
        self._seq = 0
        self._ids: set[str] = set()
        self._numbers: dict[str, int] = {}

    # ---------------------------------------------------------------- ids
    def uid(self, prefix: str, bits: int = 48) -> str:
        """A fresh id (``prefix`` + hex) never handed out before in this run."""
        width = bits // 4
        while True:
            value = f"{prefix}{self.rng.getrandbits(bits):0{width}x}"
            if value not in self._ids:
                self._ids.add(value)
                return value

    # ---------------------------------------------------------------- events
    def emit(
        self,
        ts: int,
        etype: str,
        account_id: str,
        payload: dict[str, Any],
        where: Where | None = None,
        labels: Iterable[ScenarioLabel] = (),
    ) -> str:
        """Append one contract event; returns its ``event_id`` (also recorded in ``labels``)."""
        rng = self.rng
        event_id = f"{rng.getrandbits(96):024x}"
        ev: dict[str, Any] = {
            "event_id": event_id,
            "event_type": etype,
            "schema_version": "1",
            "occurred_at": iso(ts),
            "account_id": account_id,
            "source": SOURCE_OF[etype],
            "payload": payload,
        }
        if where is not None:
            if where.ip is not None:
                ev["ip"] = where.ip
            if where.device_id is not None:
                ev["device_id"] = where.device_id
            city = where.city
            if city is not None:
                ev["geo"] = _places(city)[rng.getrandbits(7)]
            if where.asn is not None:
                ev["asn"] = where.asn
            if where.user_agent is not None:
                ev["user_agent"] = where.user_agent
        self._seq += 1
        self.events.append((ts, self._seq, ev))
        for label in labels:
            label.add(ts, event_id)
        return event_id

    def snapshot(self, acct: Account, ts: int, labels: Iterable[ScenarioLabel] = ()) -> str:
        """An ``account.snapshot`` of the account as it is now (daily, and on 2FA change)."""
        return self.emit(
            ts,
            "account.snapshot",
            acct.id,
            {
                "balance_usd": f"{max(acct.balance, 0.0):.2f}",
                "mfa_methods": list(acct.mfa),
                "email_verified": acct.email_verified,
                "phone_verified": acct.phone_verified,
                "created_at": iso(acct.created_ms),
                "locale": acct.locale,
            },
            labels=labels,
        )

    # ---------------------------------------------------------------- agendas
    def at(self, acct: Account, ts: int, step: Step, arg: Any = None) -> None:
        """Run ``step(sim, acct, ts, arg)`` when the account's agenda reaches ``ts``."""
        self._seq += 1
        heapq.heappush(acct.agenda, (ts, self._seq, step, arg))

    def run_agenda(self, acct: Account) -> None:
        agenda = acct.agenda
        pop = heapq.heappop
        while agenda:
            ts, _, step, arg = pop(agenda)
            step(self, acct, ts, arg)

    # ---------------------------------------------------------------- labels
    def label(
        self,
        kind: str,
        variant: str,
        account: Account | None,
        *,
        also: Iterable[str] = (),
        group: str | None = None,
        subject: dict[str, Any] | None = None,
    ) -> ScenarioLabel:
        label = ScenarioLabel(
            id=self._number(kind),
            kind=kind,
            variant=variant,
            account_id=account.id if account is not None else None,
            group=group,
            subject=dict(subject or {}),
            also=list(also),
        )
        self.scenarios.append(label)
        return label

    def negative(self, scenario: str, must_not: Iterable[str], **subject: Any) -> NegativeLabel:
        label = NegativeLabel(id=self._number(scenario), scenario=scenario, must_not=list(must_not), subject=subject)
        self.negatives.append(label)
        return label

    def _number(self, name: str) -> str:
        n = self._numbers[name] = self._numbers.get(name, 0) + 1
        return f"{name}-{n:03d}"
