"""``labels.json``: the ground truth the simulator writes beside ``events.jsonl``.

Schema (``"version": 1``); times are RFC 3339 UTC with milliseconds, like the events::

    {
      "version": 1,
      "seed": 7,                                  # --seed
      "generated_at_fixed": "2026-10-04T00:00:00.000Z",  # the window end, never the wall clock
      "window": {"start": ..., "end": ...},       # simulated event time covered
      "accounts": 2000, "days": 3, "events": 312345,
      "assumptions": {...},                       # the platform rules the traffic follows
      "counts": {"brute_force": 16, ...},         # labelled scenarios per kind
      "scenarios": [{
          "id": "brute_force-003",                # unique
          "kind": "brute_force",                  # a contract finding kind
          "variant": "fast_lockout",              # how this instance was built
          "group": "bf-003" | null,               # composite: the labels of one injected story
          "account_id": "w…" | null,              # null for kinds about an IP/ASN/network
          "accounts": ["w…", …],                  # every population account involved
          "subject": {"ip"?, "ips"?, "network"?, "asn"?, "tx_id"?, "address"?, "reason"?, …},
                                                  # what else it is about (network: a CIDR or a
                                                  # chain/rail name; extra keys only describe)
          "start": …, "end": …,                   # first and last injected event
          "anchor": …,                            # when the pattern is complete (see below)
          "also": ["compromise_suspected", …],    # kinds it may legitimately also trigger
          "also_until": …,                        # `also` covers findings up to here
          "events": ["<event_id>", …],            # the injected events
          "tx_ids": ["tx-…", …],                  # transactions the scenario made
          "hard_negative": false
      }],
      "hard_negatives": [{
          "id": "carrier_nat-001", "scenario": "carrier_nat",
          "account_ids": [...], "subject": {"ip"?, "asn"?}, "tx_ids": [...],
          "start": …, "end": …,
          "must_not": ["credential_stuffing", …],  # kinds that would be false alarms here
          "hard_negative": true
      }]
    }

A story that satisfies several definitions is labelled once per kind, sharing a ``group``:
a brute force that locks the account is a ``brute_force`` label and an ``account_lockout``
label.  ``also`` lists kinds a reasonable detector may raise on the story without being
wrong (a takeover is also a suspicious login, often impossible travel, an anomalous
withdrawal); ``secmon eval`` counts those findings neither as hits nor as false alarms.

``anchor`` is the event time at which the labelled pattern is complete, using the thresholds
in ``assumptions.anchors``: e.g. the 10th failed login of a brute force, the first lock of
an ``account_lockout``, the third lock of a ``repeated_lockout``, the 20th account tried by a
stuffing source, the 30th account failing in an outage, the initiation plus the SLA of a
delayed deposit, the value-moving transaction of a takeover.  Detection delay is measured
from it; a detector with a lower threshold shows a negative delay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

ANCHORS: Final = {
    "brute_force": "the 10th failed login (or the last, if fewer)",
    "account_lockout": "the (first) account.locked event",
    "repeated_lockout": "the 3rd account.locked event",
    "credential_stuffing": "the attempt on the 20th distinct account",
    "password_spraying": "the attempt on the 20th distinct account",
    "compromise_suspected": "the successful login after the attack",
    "impossible_travel": "the far-away login",
    "account_takeover": "the withdrawal or transfer that moves the value out",
    "anomalous_transaction": "the transaction",
    "deposit_delayed": "deposit.initiated + the SLA",
    "withdrawal_failures": "the 3rd failed withdrawal",
    "withdrawal_outage": "the failure of the 30th distinct account",
    "mfa_weak_posture": "the first snapshot showing a valuable account with weak 2FA",
    "mfa_weak_secret": "the mfa.enrolled event",
    "mfa_secret_reuse": "the 2nd enrolment of the shared secret",
    "mfa_bruteforce": "the 5th failed MFA challenge",
    "mfa_disabled_risk": "the mfa.disabled event",
    "weak_password": "the password.changed event",
}


@dataclass(slots=True, eq=False)
class ScenarioLabel:
    """One labelled scenario, filled in while its events are generated."""

    id: str
    kind: str
    variant: str
    account_id: str | None
    group: str | None = None
    accounts: list[str] = field(default_factory=list)
    subject: dict[str, Any] = field(default_factory=dict)
    also: list[str] = field(default_factory=list)
    start_ms: int = 0
    end_ms: int = 0
    anchor_ms: int = 0
    also_until_ms: int = 0
    events: list[str] = field(default_factory=list)
    tx_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.account_id is not None and self.account_id not in self.accounts:
            self.accounts.append(self.account_id)

    def add(self, ts: int, event_id: str) -> None:
        """Record an injected event (keeps start/end as the first and last one)."""
        self.events.append(event_id)
        if not self.start_ms or ts < self.start_ms:
            self.start_ms = ts
        self.end_ms = max(self.end_ms, ts)

    def to_json(self, iso: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "variant": self.variant,
            "group": self.group,
            "account_id": self.account_id,
            "accounts": self.accounts,
            "subject": self.subject,
            "start": iso(self.start_ms),
            "end": iso(self.end_ms),
            "anchor": iso(self.anchor_ms or self.start_ms),
            "also": sorted(self.also),
            "also_until": iso(max(self.also_until_ms, self.end_ms)),
            "events": self.events,
            "tx_ids": self.tx_ids,
            "hard_negative": False,
        }


@dataclass(slots=True, eq=False)
class NegativeLabel:
    """A hard negative: realistic traffic that must not raise the kinds in ``must_not``."""

    id: str
    scenario: str
    must_not: list[str]
    account_ids: list[str] = field(default_factory=list)
    subject: dict[str, Any] = field(default_factory=dict)
    tx_ids: list[str] = field(default_factory=list)
    start_ms: int = 0
    end_ms: int = 0

    def span(self, ts: int) -> None:
        if not self.start_ms or ts < self.start_ms:
            self.start_ms = ts
        self.end_ms = max(self.end_ms, ts)

    def to_json(self, iso: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "scenario": self.scenario,
            "account_ids": self.account_ids,
            "subject": self.subject,
            "tx_ids": self.tx_ids,
            "start": iso(self.start_ms),
            "end": iso(self.end_ms),
            "must_not": sorted(self.must_not),
            "hard_negative": True,
        }
