"""``credential_attacks``: one source failing logins against many accounts.

A source-scope detector for the family that shares one view of each source (same state,
one pass per login event):

* ``credential_stuffing`` — one IP, or one /24 (IPv6: /64) a bot rotates in, fails against
  many distinct accounts with at most 2 attempts each within minutes (Elastic's rule: at
  least 15 accounts and 25 attempts; default window 30 min).  ``account_id`` is null.
* ``password_spraying`` — few attempts per account (2–6), each account revisited in
  separate rounds (attempts spread over at least ``min_spread_ms``), across many accounts
  over hours (default 6 h); and the low-and-slow variant spread over many IPs and networks
  of one ASN, where each address tries a handful of accounts once (``breadth``).
* ``compromise_suspected`` — a successful login from a source currently flagged as a
  stuffing/spraying source: the account that succeeded, ``subject.ip`` the source.

**Keys and levels.**  The account tasks forward each login under one key, ``asn:<n>`` (or
``net:<cidr>`` when the event has no ASN), and this detector keeps three levels of state
for it in the same task: ``ip:``, ``net:`` and ``asn:`` keys.  A /24 lies within one ASN, so
every level of one source lives in one task.  That costs one forwarded record per login
instead of three and lets the levels see each other, which is how double-reporting is
avoided (below).  The price: one busy ASN is one partition's work.

**One attack, one finding.**  Levels are evaluated from the narrowest (IP) to the widest
(ASN).  When a level opens a finding, the accounts it covers are marked in the wider levels,
which count only the *residual* accounts (attacked from IPs without a finding of their own)
and need them to come from at least ``min_sources_wide`` IPs.  A narrower level does not open
a finding while a wider one is open for the same kind (the wider finding absorbs it).  So a
single-IP attack is reported once at ``ip`` level; a bot rotating inside a /24 once at
``net`` level (``subject.network`` holds the CIDR, ``subject.ip`` is left empty).  The
widest level, an ASN, is used for spraying only: an attack dispersed over many networks of
one provider, each address trying a few accounts, is the low-and-slow evasion of per-IP
limits that defines a spray, while stuffing is a burst from one address or a small pool.

**Shared egress.**  Offices and carrier NAT put many honest users behind one IP.  Accounts
that log in successfully from a source are not counted as attacked (a typo then a success
is a user), and a source where at least ``shared_egress.min_accounts`` distinct accounts
succeed is learned as shared egress: its thresholds are multiplied by ``threshold_factor``
and failing accounts must be at least ``min_failure_share`` of its active accounts.  The
``allowlist`` (IPs, CIDRs, ASNs) exempts sources entirely.  A carrier NAT IP with 300
accounts, a few typos each and mostly successes yields no finding.

**Bounded state, cheap events.**  A source is tracked from its first counted failure (a
success at an untracked source costs three dict lookups and changes nothing).  Per source
key: a dict of recently active accounts (pruned to the tracking window, capped at
``max_accounts_tracked`` with the least recently active dropped) with one 32-byte int each
(counts and times in seconds, packed: see ``_LAST_MASK``), running counts (accounts that
failed and never succeeded, accounts revisited as a spray does, failures per stuffing
window), a few capped lists and, only while a finding is open, a small slot struct.  Exact
evaluation scans the dict, so it runs only when the running counts make a finding possible (failing accounts and failures per
window for stuffing, accounts revisited in rounds for spraying: a botnet's address trying a
dozen accounts once each is never scanned), and at most once per
``eval_interval_ms`` — or ``spraying.eval_interval_ms`` at a level only spraying is reported at
(the ASN): a spray unfolds over hours, and an ASN's dict is the largest to scan.  While a spray
is open there, a scan runs only when it could revise the finding (``_spray_settled``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import msgspec

from secmon.contract import Event, LoginFailed, LoginSucceeded, Subject
from secmon.detectors.base import Context, Detector, DetectorConfig, KeyState, Scope, SourceRecord
from secmon.detectors.common import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    SEVERITY_NAMES,
    mask_ip,
    pushed,
    subnet_of,
    subnet_of_valid,
    tier_rank,
    update_due,
)

# An account's entry at a source is one int under 2**60 (a 32-byte object: two 30-bit digits),
# replaced on change.  A tuple of five took 80 bytes and kept two timestamp ints alive besides
# (~150 bytes an account at two levels).  Times are in seconds: windows are minutes to hours.
#   bits  0-31  last activity, epoch seconds
#   bits 32-48  seconds from the first failure to the last activity (capped: ~36 h); kept
#               only until the account succeeds here: from then on it is not counted
#   bits 49-50  cover bits (_COVER_STUFF, _COVER_SPRAY)
#   bits 51-54  failures (capped at _FAILS_CAP)
#   bits 55-56  successes (capped at 3), on top: ``e >= _ONE_OK`` is "succeeded here"
_LAST_MASK: Final = (1 << 32) - 1
_AGE_SHIFT, _AGE_CAP = 32, (1 << 17) - 1
_COVER_SHIFT = 49
_FAIL_SHIFT, _FAILS_CAP = 51, 15
_OK_SHIFT, _OKS_CAP = 55, 3
_ONE_FAIL: Final = 1 << _FAIL_SHIFT
_ONE_OK: Final = 1 << _OK_SHIFT
_OKS_FULL: Final = _OKS_CAP << _OK_SHIFT
_COVER_STUFF, _COVER_SPRAY = 1, 2
_LEVELS: Final = ("ip", "net", "asn")
_NEVER: Final = 2**62
#: ``SourceState.att``: failures counted per fixed stuffing window: the window's number in
#: bits 32 and up, the previous window's count in bits 16-31, this window's in bits 0-15.
_ATT_COUNT: Final = 0xFFFF
_AGE_MASK: Final = _AGE_CAP << _AGE_SHIFT
#: ``SourceState.rv`` of a state from before the count existed: high enough to let a scan run.
_RV_UNKNOWN: Final = 2**30
_COVER_MASK: Final = 3 << _COVER_SHIFT
#: A success of an account already succeeding at a source is recorded again (its last
#: activity moved on) only after this long (seconds): users log in many times a day from one place.
_SUCCESS_REFRESH_S: Final = 10 * MINUTE_MS // 1000


class _Options(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class StuffingOptions(_Options, frozen=True, kw_only=True):
    #: Sliding window (Elastic's credential-stuffing rules look back 15–30 minutes).
    window_ms: int = 30 * MINUTE_MS
    #: Distinct accounts failing with at most ``max_attempts_per_account`` each (Elastic: 15).
    min_accounts: int = 15
    #: Failed attempts on those accounts in the window (Elastic: 25).
    min_attempts: int = 25
    max_attempts_per_account: int = 2
    #: Severity is medium at the trigger, high and critical at these account counts.
    severity_tiers: tuple[int, ...] = (100, 1_000)
    #: Levels stuffing is reported at: one address, or the /24 (/64) a bot rotates in.
    levels: tuple[str, ...] = ("ip", "net")


class SprayingOptions(_Options, frozen=True, kw_only=True):
    #: Sliding window: sprays go low and slow, hours rather than minutes.
    window_ms: int = 6 * HOUR_MS
    #: Distinct accounts revisited with ``min..max_attempts_per_account`` failures each.
    min_accounts: int = 10
    min_attempts_per_account: int = 2
    max_attempts_per_account: int = 6
    #: An account counts once its failures span this long (separate spray rounds; stuffing
    #: tries an account in one go).
    min_spread_ms: int = 10 * MINUTE_MS
    #: Low-and-slow spread over a provider: this many accounts failing (once or a few
    #: times each) from at least ``breadth_min_ips`` IPs in ``breadth_min_networks`` /24s.
    breadth_min_accounts: int = 50
    breadth_min_ips: int = 10
    breadth_min_networks: int = 5
    #: Levels the breadth rule applies to (it needs many networks: the ASN).
    breadth_levels: tuple[str, ...] = ("asn",)
    severity_tiers: tuple[int, ...] = (100, 1_000)
    levels: tuple[str, ...] = ("ip", "net", "asn")
    #: Exact evaluation at a level only spraying is reported at (no stuffing there: by
    #: default the ASN) at most this often.  Sprays take hours; stuffing levels keep the
    #: detector's ``eval_interval_ms``.
    eval_interval_ms: int = 5 * MINUTE_MS


class SharedEgressOptions(_Options, frozen=True, kw_only=True):
    #: Distinct accounts with a successful login from a source (within the tracking window)
    #: that make it shared egress: an office, a carrier NAT, a VPN.
    min_accounts: int = 20
    #: Thresholds are this many times higher for a shared-egress source ...
    threshold_factor: float = 3.0
    #: ... and failing accounts must be at least this share of its active accounts.
    min_failure_share: float = 0.5
    #: Once learned, a source stays shared egress this long (offices are quiet at night).
    memory_ms: int = 7 * DAY_MS


class Allowlist(_Options, frozen=True, kw_only=True):
    """Sources exempt from this detector (own offices, scanners, partners)."""

    ips: tuple[str, ...] = ()
    cidrs: tuple[str, ...] = ()
    asns: tuple[int, ...] = ()


class CredentialAttacksConfig(DetectorConfig, frozen=True, kw_only=True):
    stuffing: StuffingOptions = StuffingOptions()
    spraying: SprayingOptions = SprayingOptions()
    shared_egress: SharedEgressOptions = SharedEgressOptions()
    allowlist: Allowlist = Allowlist()
    #: Aggregation levels, narrowest first (a subset of ip, net, asn).
    levels: tuple[str, ...] = _LEVELS
    #: Failure reasons that count (``expired_password`` means the password was right).
    counted_reasons: tuple[str, ...] = ("bad_password", "unknown_account", "bad_mfa", "locked")
    #: Accounts tracked per source key; the least recently active are dropped beyond it.
    max_accounts_tracked: int = 2_000
    #: Exact evaluation of one key at most this often (a cheap pre-check gates it).
    eval_interval_ms: int = 30_000
    #: net/asn findings need failures from at least this many IPs (else it is one IP's).
    min_sources_wide: int = 2
    #: A success within this long of the source's last attack activity is suspicious.
    compromise_window_ms: int = HOUR_MS
    #: Between escalations, re-issue a finding only when its accounts doubled and this passed.
    update_cooldown_ms: int = HOUR_MS
    max_evidence: int = 10
    #: Idle sources are forgotten after this long (busy shared-egress sources stay).
    state_ttl_ms: int = 12 * HOUR_MS

    def __post_init__(self) -> None:
        for name, levels in (("levels", self.levels), ("stuffing.levels", self.stuffing.levels),
                             ("spraying.levels", self.spraying.levels),
                             ("spraying.breadth_levels", self.spraying.breadth_levels)):
            if set(levels) - set(_LEVELS) or (name == "levels" and not levels):
                raise ValueError(f"{name} must be a subset of {list(_LEVELS)}")
        for cidr in self.allowlist.cidrs:
            ipaddress.ip_network(cidr, strict=False)  # ValueError names the bad entry
        for ip in self.allowlist.ips:
            ipaddress.ip_address(ip)
        if self.stuffing.min_accounts < 1 or self.spraying.min_accounts < 1:
            raise ValueError("min_accounts must be at least 1")
        if max(self.stuffing.max_attempts_per_account, self.spraying.max_attempts_per_account) >= _FAILS_CAP:
            raise ValueError(f"max_attempts_per_account must be below {_FAILS_CAP} (failures are counted up to it)")
        if self.spraying.min_spread_ms > _AGE_CAP * 1000:
            raise ValueError(f"spraying.min_spread_ms must be at most {_AGE_CAP * 1000}")


class Slot(msgspec.Struct, array_like=True, gc=False):
    """An open finding of one kind at one source (only allocated while there is one)."""

    key: str
    rev: int = 0
    sev: int = 0
    first: int = 0
    last: int = 0  # last attack activity
    at: int = 0  # event time of the last revision
    n: int = 0  # accounts at the last revision
    fresh: int = 0  # accounts newly attacked since the last revision


if TYPE_CHECKING:
    _Stored: TypeAlias = int
    _Attempts: TypeAlias = int
else:  # checkpoints written before entries were ints hold (failures, successes, first failure
    # ms, last activity ms, cover bits) tuples: read, then converted by SourceState.__post_init__
    _Stored = int | tuple[int, int, int, int, int]
    # Checkpoints before 2026-11-27 held the newest failure times as a tuple (read as 0).
    _Attempts = int | tuple[int, ...]


class SourceState(KeyState, array_like=True):
    acc: dict[str, _Stored] = {}  # account → entry (see _LAST_MASK.._ONE_OK)
    # Short bounded lists are tuples (common.pushed): most sources keep them empty or short.
    att: _Attempts = 0  # failures in this and the last stuffing window (_ATT_COUNT): pre-check
    fo: int = 0  # accounts that failed and never succeeded (running; exact after a scan)
    ips: tuple[str, ...] = ()  # recent distinct failing IPs (net/asn levels, cap 32)
    ev: tuple[str, ...] = ()  # newest failure event ids
    shared_until: int = 0
    eval_at: int = -(2**62)
    st: Slot | None = None  # open credential_stuffing finding
    sp: Slot | None = None  # open password_spraying finding
    cmp: tuple[str, ...] = ()  # accounts already reported as compromised from here (cap 32)
    #: Accounts revisited as a spray does (spraying's attempts per account, spread over
    #: ``min_spread_ms``, not covered): counted as entries turn so (running, an upper bound;
    #: exact after a scan).  A state read from a checkpoint written before it existed holds
    #: _RV_UNKNOWN, which lets the next scan run and count it.
    rv: int = _RV_UNKNOWN

    def __post_init__(self) -> None:
        acc = self.acc
        if acc and not all(type(e) is int for e in acc.values()):
            self.acc = {a: e if type(e) is int else _from_tuple(e) for a, e in acc.items()}
        if type(self.att) is not int:  # a tuple of times: the count starts afresh
            self.att = 0


@lru_cache(maxsize=65536)
def _asn_keys(asn: int) -> tuple[str]:
    """``("asn:<n>",)``, interned: forwarded for every login, so built once per ASN."""
    return (f"asn:{asn}",)


class CredentialAttacks(Detector[CredentialAttacksConfig, SourceState]):
    name = "credential_attacks"
    kinds = ("credential_stuffing", "password_spraying", "compromise_suspected")
    event_types = frozenset({"login.failed", "login.succeeded"})
    scope = Scope.SOURCE
    Config = CredentialAttacksConfig
    State = SourceState

    def __init__(self, config: CredentialAttacksConfig) -> None:
        super().__init__(config)
        c = config
        self._counted = frozenset(c.counted_reasons)
        self._use_ip, self._use_net, self._use_asn = (lv in c.levels for lv in _LEVELS)
        self._all_levels = self._use_ip and self._use_net and self._use_asn
        self._track_ms = max(c.stuffing.window_ms, c.spraying.window_ms)
        allow = c.allowlist
        self._allow_ips = frozenset(str(ipaddress.ip_address(i)) for i in allow.ips)
        self._allow_nets = tuple(ipaddress.ip_network(n, strict=False) for n in allow.cidrs)
        self._allow_asns = frozenset(allow.asns)
        self._has_allowlist = bool(self._allow_ips or self._allow_nets or self._allow_asns)
        self._allowed: dict[str, bool] = {}
        self._cap_hi = c.max_accounts_tracked * 5 // 4
        self._by_type: dict[str, Callable[[Any, Context], None]] = {
            "login.failed": self._failed,
            "login.succeeded": self._succeeded,
        }
        sp = c.spraying
        #: Per level (by the state key's first letter): its name; the counts from which a scan
        #: may find stuffing (failing accounts), spraying by revisits (revisited accounts)
        #: and spraying by breadth (failing accounts): a cheap pre-check before the exact
        #: scan, _NEVER where the rule does not apply; and how often the scan may run (see
        #: the module doc).
        self._level_checks: dict[str, tuple[str, int, int, int, int]] = {
            level[0]: (
                level,
                c.stuffing.min_accounts if level in c.stuffing.levels else _NEVER,
                sp.min_accounts if level in sp.levels else _NEVER,
                sp.breadth_min_accounts if level in sp.levels and level in sp.breadth_levels else _NEVER,
                c.eval_interval_ms if level in c.stuffing.levels else max(c.eval_interval_ms, sp.eval_interval_ms),
            )
            for level in _LEVELS
        }
        #: An entry is a spray revisit with this many failures and at least this age (shifted).
        self._revisit = (sp.min_attempts_per_account, sp.max_attempts_per_account,
                         -(-sp.min_spread_ms // 1000) << _AGE_SHIFT)

    # -- forwarding (runs in the account tasks) --------------------------------------------
    @classmethod
    def source_keys(cls, event: Event, config: DetectorConfig) -> Iterable[str]:
        """One key per login: ``asn:<n>``, or ``net:<cidr>`` without an ASN (see module doc)."""
        t = type(event)
        if t is LoginFailed:
            assert isinstance(config, CredentialAttacksConfig)
            if event.payload.reason not in config.counted_reasons:  # type: ignore[attr-defined]
                return ()
        elif t is not LoginSucceeded:
            return ()
        asn = event.asn
        if asn is not None:
            return _asn_keys(asn)
        if event.ip:
            net = subnet_of_valid(event.ip)
            return (f"net:{net}",) if net else ()
        return ()

    # -- per record ----------------------------------------------------------------------
    def on_event(self, r: SourceRecord, ctx: Context) -> None:
        """A login from the source (the engine calls the ``handlers`` directly)."""
        self._by_type[r.event_type](r, ctx)

    def handlers(self) -> dict[str, Callable[[Any, Context], None]]:
        return dict(self._by_type)

    def _failed(self, r: SourceRecord, ctx: Context) -> None:
        if r.reason in self._counted:
            self._failure(r, ctx)

    def _succeeded(self, r: SourceRecord, ctx: Context) -> None:
        """Successes are recorded only at sources with failing accounts: a success is what
        shows a failing account to be a user with a typo, and many succeeding accounts make a
        source shared egress; a success elsewhere changes nothing (the common case, kept
        cheap: no call beyond the state lookups)."""
        ip, asn = r.ip, r.asn
        if self._has_allowlist and self._is_allowed(ip, asn):
            return
        if ip and asn is not None and self._all_levels and ":" not in ip:
            # _level_keys' usual case (an IPv4 address with an ASN, every level), inlined:
            # half of all events are successes.
            keys: tuple[str, ...] = ("ip:" + ip, "net:" + ip.rpartition(".")[0] + ".0/24", _asn_keys(asn)[0])
        else:
            keys = self._level_keys(ip, asn)
        get, put = self.state.get, self.state.put
        acct, ts = r.account_id, r.ts
        cw = self.config.compromise_window_ms
        flagged = False
        for key in keys:
            s = get(key)
            if s is None:
                continue
            now = ts // 1000  # entries keep seconds
            if (s.st is not None and ts - s.st.last <= cw) or (s.sp is not None and ts - s.sp.last <= cw):
                flagged = True
            acc = s.acc
            e = acc.get(acct)
            if e is None:
                if key[0] == "a" or not s.fo:
                    # An ASN holds a provider's whole user base: its successes count only for
                    # accounts that failed there (typos).  An address or network learns from
                    # every succeeding account, but only while some account is failing there.
                    continue
                acc[acct] = _ONE_OK | now
                if len(acc) > self._cap_hi:
                    _shrink(s, self.config.max_accounts_tracked)
            elif e >= _ONE_OK and now - (e & _LAST_MASK) < _SUCCESS_REFRESH_S:
                continue  # a success on record, recent: another one changes nothing (no write)
            else:
                if e < _ONE_OK:
                    if e >= _ONE_FAIL:
                        s.fo -= 1
                    e += _ONE_OK
                elif e < _OKS_FULL:
                    e += _ONE_OK
                # The time moves; the age goes (it counts only for accounts without a success).
                acc[acct] = e >> _COVER_SHIFT << _COVER_SHIFT | now
                if key[0] == "i" and not s.fo and len(acc) == 1 and _quiet(s, ts):
                    # A typo: the only account that failed at this address got in.  Nothing
                    # here can add up to an attack, and it is the commonest failure of all.
                    self.state.delete(key)
                    continue
            put(key, s, ts)
        if flagged:
            self._check_compromise(keys, [get(k) for k in keys], r, ctx)

    def _failure(self, r: SourceRecord, ctx: Context) -> None:
        """Count a failure at each level of its source, narrowest first, and evaluate the
        level when its running counts make a finding possible.  In an attack nearly every
        event comes here (in ``bench/storm.py``'s 300k-attempt storm, half of all the
        detectors' time), so the counters and the pre-check are inlined, not method calls."""
        ip, asn = r.ip, r.asn
        if self._has_allowlist and self._is_allowed(ip, asn):
            return
        keys = self._level_keys(ip, asn)
        if not keys:
            return
        ts, acct, event_id = r.ts, r.account_id, r.event_id
        c = self.config
        get, put = self.state.get, self.state.put
        states = []
        for key in keys:
            s = get(key)
            states.append(SourceState(rv=0) if s is None else s)
        cover = 0
        first_wide = 1 if keys[0][0] == "i" else 0
        min_attempts, max_evidence = c.stuffing.min_attempts, c.max_evidence
        st_window, sp_window = c.stuffing.window_ms, c.spraying.window_ms
        checks = self._level_checks
        rv_lo, rv_hi, spread = self._revisit
        breadth_ips = c.spraying.breadth_min_ips
        now = ts // 1000
        for i, s in enumerate(states):
            acc = s.acc
            e = acc.get(acct)
            fails = 0 if e is None else (e >> _FAIL_SHIFT) & _FAILS_CAP
            if e is None or not fails:  # the account's first failure here
                if e is None or e < _ONE_OK:
                    s.fo += 1
                    if s.st is not None:
                        s.st.fresh += 1
                    if s.sp is not None:
                        s.sp.fresh += 1
                # age 0: the first failure is now; successes and cover bits are kept
                entry = now | _ONE_FAIL | (0 if e is None else (e >> _COVER_SHIFT << _COVER_SHIFT))
            else:  # the first failure is kept: the age grows by the step (an event earlier
                # than the first failure makes that the first failure)
                age = ((e >> _AGE_SHIFT) & _AGE_CAP) + now - (e & _LAST_MASK)
                age = 0 if age < 0 else _AGE_CAP if age > _AGE_CAP else age
                entry = e >> _COVER_SHIFT << _COVER_SHIFT | age << _AGE_SHIFT | now
                if fails < _FAILS_CAP:
                    entry += _ONE_FAIL
            entry |= cover << _COVER_SHIFT
            acc[acct] = entry
            # A spray revisit now (failures within spraying's range, spread out, no success,
            # not covered) and not before: the running count of revisited accounts grows.
            # (Inline, as _scan's loop tests it: a helper call cost 3 % of a failure.)
            if (rv_lo <= entry >> _FAIL_SHIFT <= rv_hi and entry & _AGE_MASK >= spread and not entry & _COVER_MASK
                    and not (e is not None and rv_lo <= e >> _FAIL_SHIFT <= rv_hi and e & _AGE_MASK >= spread
                             and not e & _COVER_MASK)):
                s.rv += 1
            if e is None and len(acc) > self._cap_hi:
                _shrink(s, c.max_accounts_tracked)  # counts fo afresh, this account included
            # Failures per fixed stuffing window, this one and the one before: together they
            # cover the sliding window (an upper bound, as a pre-check needs), without a list
            # of times to copy on every failure of an attack.
            att, w = s.att, ts // st_window
            if att >> 32 >= w:  # (a late event counts in the newest window)
                if att & _ATT_COUNT < _ATT_COUNT:
                    att += 1
            elif att >> 32 == w - 1:
                att = w << 32 | (att & _ATT_COUNT) << 16 | 1
            else:
                att = w << 32 | 1
            s.att = att
            s.ev = pushed(s.ev, event_id, max_evidence)
            if i >= first_wide and ip and ip not in s.ips:
                s.ips = pushed(s.ips, ip, 32)
            # Evaluate the level: open findings follow the attack; the exact scan runs only
            # when the running counts make a finding possible, and at most once per interval.
            level, stuff_min, revisit_min, breadth_min, every = checks[keys[i][0]]
            st_open = sp_open = False
            st, sp = s.st, s.sp
            if st is not None and ts - st.last <= st_window:
                st.last, st_open = ts, True
            if sp is not None and ts - sp.last <= sp_window:
                sp.last, sp_open = ts, True
            fo = s.fo
            if (st_open or sp_open or s.rv >= revisit_min
                    or (fo >= breadth_min and len(s.ips) >= breadth_ips)
                    or (fo >= stuff_min and (att & _ATT_COUNT) + (att >> 16 & _ATT_COUNT) >= min_attempts)) \
                    and ts - s.eval_at >= every:
                s.eval_at = ts
                if sp_open and stuff_min == _NEVER and self._spray_settled(s, ts):
                    _drop_expired(s, (ts - self._track_ms) // 1000)  # what the scan must not skip
                else:
                    self._scan(keys, states, i, level, ts, asn, st_open, sp_open, ctx)
                st, sp = s.st, s.sp
                st_open = st is not None and ts - st.last <= st_window
                sp_open = sp is not None and ts - sp.last <= sp_window
            if st_open:
                cover |= _COVER_STUFF
            if sp_open:
                cover |= _COVER_SPRAY
            put(keys[i], s, ts)

    def _spray_settled(self, s: SourceState, ts: int) -> bool:
        """Whether a scan now, at a level that reports spraying only (the ASN) with a spray
        open, could change nothing but bookkeeping: a revision needs a higher severity, and
        the running counts bound the accounts it would count (``rv`` the revisits, ``fo`` the
        failing accounts), or growth after the cooldown.  An open spray is re-scanned every
        ``spraying.eval_interval_ms`` for as long as it goes on, and an ASN's dict is the
        largest to scan: 821 of the simulator's 856 ASN scans came while a spray was open.
        Entries past the window are still dropped (:func:`_drop_expired`); the rest of the
        scan's bookkeeping waits for the next scan that runs: the running counts stay upper
        bounds, and shared egress is learned (``shared_until``) then."""
        c, slot = self.config, s.sp
        return (slot is not None and ts - slot.at < c.update_cooldown_ms
                and tier_rank(max(s.rv, s.fo), c.spraying.severity_tiers, base=2) <= slot.sev)

    def _level_keys(self, ip: str | None, asn: int | None) -> tuple[str, ...]:
        """The state keys of a login's source, narrowest first.

        Built afresh for every login: most addresses are seen once (mobile carriers hand out
        one per session), and a cache of them cost more in misses than its hits saved."""
        asn_key = _asn_keys(asn)[0] if asn is not None and self._use_asn else None
        if not ip:
            return () if asn_key is None else (asn_key,)
        # subnet_of_valid, its IPv4 case inlined (the decoder checked the address): every login.
        net = (ip.rpartition(".")[0] + ".0/24" if ":" not in ip else subnet_of_valid(ip)) if self._use_net else None
        keys = ("ip:" + ip if self._use_ip else None, None if net is None else "net:" + net, asn_key)
        if keys[0] is not None and keys[1] is not None and asn_key is not None:
            return keys  # type: ignore[return-value]  # all levels: the usual case
        return tuple(k for k in keys if k is not None)

    def _is_allowed(self, ip: str | None, asn: int | None) -> bool:
        if asn is not None and asn in self._allow_asns:
            return True
        if not ip:
            return False
        allowed = self._allowed.get(ip)
        if allowed is None:
            if len(self._allowed) > 200_000:
                self._allowed.clear()
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                addr = None
            allowed = addr is not None and (
                str(addr) in self._allow_ips or any(addr in net for net in self._allow_nets)
            )
            self._allowed[ip] = allowed
        return allowed

    # -- evaluation ------------------------------------------------------------------------
    def _scan(self, keys: tuple[str, ...], states: list[SourceState], i: int, level: str, ts: int,
              asn: int | None, st_open: bool, sp_open: bool, ctx: Context) -> None:
        """Exact counts over the level's accounts; open or update findings."""
        c = self.config
        sp = c.spraying
        s = states[i]
        horizon = (ts - self._track_ms) // 1000  # entry times are in seconds
        st_h = (ts - c.stuffing.window_ms) // 1000
        st_max = c.stuffing.max_attempts_per_account
        sp_lo, sp_hi = sp.min_attempts_per_account, sp.max_attempts_per_account
        n_ok = n_ok_st = n_fail = n_st = att_st = covered = n_sp = n_br = expired = 0
        # The hottest loop of the detector (up to max_accounts_tracked entries): fields are
        # tested in place where a mask will do, constants are locals.
        last_mask, one_ok = _LAST_MASK, _ONE_OK
        age_mask, spread = _AGE_MASK, self._revisit[2]
        stuff_bit, cover_mask = _COVER_STUFF << _COVER_SHIFT, _COVER_MASK
        for e in s.acc.values():
            last = e & last_mask
            if last < horizon:
                expired += 1
                continue
            if e >= one_ok:
                n_ok += 1
                if last >= st_h:
                    n_ok_st += 1
                continue
            fails = e >> _FAIL_SHIFT  # no successes: the failures are the top field
            if not fails:
                continue
            n_fail += 1
            spread_out = e & age_mask >= spread
            if last >= st_h and not spread_out:
                if e & stuff_bit:
                    covered += 1
                elif fails <= st_max:
                    n_st += 1
                    att_st += fails
            if not e & cover_mask and fails <= sp_hi:
                n_br += 1
                if fails >= sp_lo and spread_out:
                    n_sp += 1
        if expired:
            _drop_expired(s, horizon)
        s.fo, s.rv = n_fail, n_sp
        se = c.shared_egress
        if n_ok >= se.min_accounts:
            s.shared_until = ts + se.memory_ms
        shared = s.shared_until > ts
        factor = se.threshold_factor if shared else 1.0
        n_ips = 1 if level == "ip" else len(s.ips)
        wide_ok = level == "ip" or n_ips >= c.min_sources_wide
        wider = states[i + 1:]
        counts: dict[str, Any] = {
            "success_accounts": n_ok,
            "shared_egress": shared,
            "threshold_factor": factor,
            "distinct_ips": n_ips,
            "covered_by_narrower": covered,
        }
        if level in c.stuffing.levels:
            share = n_st / (n_st + n_ok_st) if n_st else 0.0
            if (n_st >= c.stuffing.min_accounts * factor and att_st >= c.stuffing.min_attempts * factor
                    and (not shared or share >= se.min_failure_share) and wide_ok):
                absorbed = any(w.st is not None and ts - w.st.last <= c.stuffing.window_ms for w in wider)
                if st_open or not absorbed:
                    self._report("credential_stuffing", keys, states, i, ts, asn, n_st, share,
                                 counts | {"attempts": att_st}, ctx)
        if level in sp.levels:
            rule = ""
            n = 0
            share = 0.0
            if n_sp >= sp.min_accounts * factor and wide_ok:
                rule, n = "revisits", n_sp
            elif level in sp.breadth_levels and n_br >= sp.breadth_min_accounts * factor:
                nets = len({subnet_of(ip) for ip in s.ips})
                if n_ips >= sp.breadth_min_ips and nets >= sp.breadth_min_networks:
                    rule, n = "breadth", n_br
                    counts["distinct_networks"] = nets
            if rule:
                share = n / (n + n_ok)
            if rule and (not shared or share >= se.min_failure_share):
                absorbed = any(w.sp is not None and ts - w.sp.last <= sp.window_ms for w in wider)
                if sp_open or not absorbed:
                    self._report("password_spraying", keys, states, i, ts, asn, n, share,
                                 counts | {"rule": rule}, ctx)

    def _report(self, kind: str, keys: tuple[str, ...], states: list[SourceState], i: int, ts: int,
                asn: int | None, n: int, share: float, counts: dict[str, Any], ctx: Context) -> None:
        c = self.config
        s, key = states[i], keys[i]
        stuffing = kind == "credential_stuffing"
        opts = c.stuffing if stuffing else c.spraying
        window = opts.window_ms
        slot = s.st if stuffing else s.sp
        rank = tier_rank(n, opts.severity_tiers, base=2)
        if slot is None or ts - slot.last > window:
            first = self._attack_start(s, stuffing, counts.get("rule") == "breadth", ts)
            slot = Slot(key=f"{key}|{s.ev[0] if s.ev else ts}", first=first, last=ts)
            if stuffing:
                s.st = slot
            else:
                s.sp = slot
            self._cover_wider(states, i, _COVER_STUFF if stuffing else _COVER_SPRAY)
        elif update_due(slot.sev, rank, slot.at, ts, c.update_cooldown_ms,
                        n >= 2 * slot.n or slot.fresh >= opts.min_accounts):
            slot.rev += 1  # escalated, or (at most once per cooldown) a fresh wave of accounts
        else:
            return
        slot.sev, slot.at, slot.n, slot.last, slot.fresh = max(rank, slot.sev), ts, n, ts, 0
        level, value = key.split(":", 1)
        subject, where = _subject(level, value, asn)
        if stuffing:
            summary = (f"{n} accounts failed logins from {where} within {window // MINUTE_MS} min, "
                       f"at most {opts.max_attempts_per_account} tries each: credential stuffing "
                       "with a list of stolen passwords.")
        elif counts.get("rule") == "breadth":
            summary = (f"{n} accounts were tried a few times each from {counts['distinct_ips']}+ addresses "
                       f"across {where} within {window // HOUR_MS} h: password spraying.")
        else:
            summary = (f"{n} accounts were each tried a few times, in separate rounds, from {where} "
                       f"within {window // HOUR_MS} h: password spraying.")
        factor = counts["threshold_factor"]
        explanation: dict[str, Any] = {
            "level": level,
            "accounts": n,
            "window_ms": window,
            "min_accounts": round(opts.min_accounts * factor),
            "failure_share": round(share, 3),
            **counts,
        }
        if stuffing:
            explanation |= {
                "min_attempts": round(c.stuffing.min_attempts * factor),
                "max_attempts_per_account": c.stuffing.max_attempts_per_account,
            }
        else:
            sp = c.spraying
            explanation |= {
                "attempts_per_account": [sp.min_attempts_per_account, sp.max_attempts_per_account],
                "min_spread_ms": sp.min_spread_ms,
            }
            if counts.get("rule") == "breadth":
                explanation |= {
                    "min_accounts": round(sp.breadth_min_accounts * factor),
                    "min_ips": sp.breadth_min_ips,
                    "min_networks": sp.breadth_min_networks,
                }
        if level == "net":
            explanation["network"] = value
        ctx.emit(
            kind=kind,
            severity=SEVERITY_NAMES[slot.sev],
            dedup_key=slot.key,
            account_id=None,
            first_seen_ms=slot.first,
            last_seen_ms=ts,
            evidence=list(reversed(s.ev)),
            summary=summary,
            explanation=explanation,
            subject=subject,
            revision=slot.rev,
        )

    def _attack_start(self, s: SourceState, stuffing: bool, breadth: bool, ts: int) -> int:
        """When the accounts a new finding counts first failed here (ms, to the second): its
        ``first_seen``, which the contract makes the time of its first evidence; the time of
        the scan would come after the failures it lists.  The tests are ``_scan``'s (one pass
        over the level's accounts, only when a finding opens)."""
        c = self.config
        sp = c.spraying
        spread = self._revisit[2]
        first = _NEVER
        if stuffing:
            since, lo, hi = (ts - c.stuffing.window_ms) // 1000, 1, c.stuffing.max_attempts_per_account
            skip = _COVER_STUFF << _COVER_SHIFT
        else:
            since, lo, hi = (ts - self._track_ms) // 1000, 1 if breadth else sp.min_attempts_per_account, \
                sp.max_attempts_per_account
            skip = _COVER_MASK
        for e in s.acc.values():
            if e >= _ONE_OK or e & skip or not lo <= e >> _FAIL_SHIFT <= hi:  # no successes: failures on top
                continue
            last = e & _LAST_MASK
            if last < since:
                continue
            spread_out = e & _AGE_MASK >= spread
            if (stuffing and spread_out) or (not stuffing and not breadth and not spread_out):
                continue  # stuffing counts accounts tried in one go, revisits those tried in rounds
            start = last - ((e >> _AGE_SHIFT) & _AGE_CAP)
            if start < first:
                first = start
        return ts if first == _NEVER else min(first * 1000, ts)

    def _cover_wider(self, states: list[SourceState], i: int, bit: int) -> None:
        """Mark the accounts of a new finding at level ``i`` as covered in the wider levels."""
        attacked = [a for a, e in states[i].acc.items() if _ONE_FAIL <= e < _ONE_OK]
        for wider in states[i + 1:]:
            acc = wider.acc
            for a in attacked:
                e = acc.get(a)
                if e is not None:
                    acc[a] = e | bit << _COVER_SHIFT

    # -- compromise ----------------------------------------------------------------------
    def _check_compromise(self, keys: tuple[str, ...], states: list[SourceState | None], r: SourceRecord,
                          ctx: Context) -> None:
        c = self.config
        ts, acct = r.ts, r.account_id
        for i, s in enumerate(states):
            if s is None:
                continue
            slot = None
            for cand in (s.st, s.sp):
                if cand is not None and ts - cand.last <= c.compromise_window_ms:
                    slot = cand
                    break
            if slot is None:
                continue
            e = s.acc.get(acct)
            targeted = e is not None and (e >> _FAIL_SHIFT) & _FAILS_CAP > 0 and e >> _OK_SHIFT == 1
            ip_state = states[0] if keys[0].startswith("ip:") else None
            ip_attacking = ip_state is not None and (i == 0 or _attacking(ip_state))
            shared = s.shared_until > ts
            # From an address that takes part in the attack (at a shared-egress source, only
            # for an account the attack tried): a user of the same provider is not suspect.
            if not ip_attacking or (shared and not targeted) or acct in s.cmp:
                return
            s.cmp = pushed(s.cmp, acct, 32)
            kind = "credential_stuffing" if slot is s.st else "password_spraying"
            level, value = keys[i].split(":", 1)
            _, where = _subject(level, value, r.asn)
            ctx.emit(
                kind="compromise_suspected",
                severity="critical" if targeted and ip_attacking else "high",
                dedup_key=f"{acct}|{r.event_id}",
                account_id=acct,
                first_seen_ms=slot.first,
                last_seen_ms=ts,
                evidence=[r.event_id, *reversed(s.ev)],
                summary=(f"A successful login came from {where}, which is running {kind.replace('_', ' ')} "
                         "right now: the account's password may be among the attacker's."),
                explanation={
                    "source": "source",
                    "attack": kind,
                    "level": level,
                    "attack_finding_dedup_key": slot.key,
                    "account_failed_first": targeted,
                    "ip_is_attacking": ip_attacking,
                    "shared_egress": shared,
                    "minutes_since_attack_activity": round((ts - slot.last) / MINUTE_MS, 1),
                    "window_ms": c.compromise_window_ms,
                },
                subject=Subject(ip=r.ip, asn=r.asn),
            )
            return


def _drop_expired(s: SourceState, horizon_s: int) -> None:
    """Drop the entries last active before ``horizon_s`` (epoch seconds), in place: cheaper
    than rebuilding a dict of up to 2,000 entries.  Not only memory: a new failure of an
    account whose entry outlived the window would carry its old failures on."""
    acc = s.acc
    for k in [k for k, v in acc.items() if v & _LAST_MASK < horizon_s]:
        del acc[k]


def _shrink(s: SourceState, cap: int) -> None:
    """Keep the ``cap`` most recently active accounts of a source (run once per cap/4 new)."""
    s.acc = dict(sorted(s.acc.items(), key=lambda kv: kv[1] & _LAST_MASK)[-cap:])
    s.fo = sum(1 for v in s.acc.values() if _ONE_FAIL <= v < _ONE_OK)


def entry_fields(e: int) -> tuple[int, int, int, int, int]:
    """An entry's (failures, successes, first failure, last activity, cover bits), times in
    epoch seconds (the first failure is the last activity when there was none, or once the
    account succeeded): for tests and for reading a state by hand."""
    last = e & _LAST_MASK
    return ((e >> _FAIL_SHIFT) & _FAILS_CAP, e >> _OK_SHIFT, last - ((e >> _AGE_SHIFT) & _AGE_CAP), last,
            (e >> _COVER_SHIFT) & 3)


def _from_tuple(e: Any) -> int:
    """An entry as checkpoints before 2026-11-26 held it → the int layout."""
    fails, oks, first_fail, last, cover = e
    last_s = last // 1000
    age = min(max(last_s - first_fail // 1000, 0), _AGE_CAP) if fails else 0
    return (min(oks, _OKS_CAP) << _OK_SHIFT | min(fails, _FAILS_CAP) << _FAIL_SHIFT | (cover & 3) << _COVER_SHIFT
            | age << _AGE_SHIFT | last_s)


def _quiet(s: SourceState, ts: int) -> bool:
    """No finding open and not learned as shared egress: nothing to keep but the counts."""
    return s.st is None and s.sp is None and s.shared_until <= ts


def _attacking(ip_state: SourceState) -> bool:
    """An IP takes part in an attack when it failed on several accounts that never succeeded."""
    n = 0
    for e in ip_state.acc.values():
        if _ONE_FAIL <= e < _ONE_OK:
            n += 1
            if n >= 3:
                return True
    return False


def _subject(level: str, value: str, asn: int | None) -> tuple[Subject, str]:
    """The finding's subject and a short user-facing name of the source (IPs masked).

    A /24 or /64 finding puts the CIDR in ``subject.network`` and leaves ``subject.ip``
    empty: the finding is about the network, not one of its addresses."""
    if level == "ip":
        return Subject(ip=value, asn=asn), f"IP {mask_ip(value)}"
    if level == "net":
        return Subject(network=value, asn=asn), f"network {value}"
    return Subject(asn=int(value)), f"AS{value}"
