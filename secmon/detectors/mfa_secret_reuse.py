"""``mfa_secret_reuse``: the same TOTP secret enrolled on several accounts.

Cross-account, so a source-scope detector: each account task computes a keyed fingerprint
of the enrolled secret (HMAC-SHA256 with ``hash_key``) in :meth:`MfaSecretReuse.source_keys`
and forwards the enrolment under the key ``totp:<fingerprint>``; the secret itself never
leaves the account task (``SourceRecord`` has no field for it and none is needed: equal
secrets give equal keys, so one source task sees every account that enrolled it).

Why a keyed hash: a plain SHA-256 of a short secret could be brute-forced from the
repartition topic or the state store; an HMAC needs the key as well.  The default key is a
fixed development key — production must set its own (e.g. ``hash_key: ${SECMON_MFA_HASH_KEY}``
in the config file: ``secmon.config`` reads it from the environment and masks it in output).

One finding per fingerprint (``account_id`` null, the accounts in the explanation), re-issued
when its severity rises or the number of accounts has doubled.
"""

from __future__ import annotations

from collections.abc import Iterable

from secmon.config import Secret
from secmon.contract import Event, MfaEnrolled
from secmon.detectors.base import Context, Detector, DetectorConfig, KeyState, Scope, SourceRecord
from secmon.detectors.common import DAY_MS, SEVERITY_NAMES, push_recent
from secmon.detectors.mfa_checks import otpauth_fingerprint

#: Development default only: production must set its own key (``${SECMON_MFA_HASH_KEY}``).
DEV_HASH_KEY = "secmon-dev-mfa-fingerprint-key-not-for-production"


class MfaSecretReuseConfig(DetectorConfig, frozen=True, kw_only=True):
    #: HMAC-SHA256 key for secret fingerprints.  The default is a fixed dev key: production
    #: MUST set its own, e.g. ``hash_key: ${SECMON_MFA_HASH_KEY}``.
    hash_key: Secret = Secret(DEV_HASH_KEY)
    #: Distinct accounts with the same secret that make a finding.
    min_accounts: int = 2
    #: Accounts at which the finding becomes critical (a farm of accounts, or a leaked seed).
    critical_accounts: int = 5
    #: Accounts listed per fingerprint (the count goes on beyond).
    max_accounts: int = 20
    #: Enrolments are rare and reuse can be weeks apart: keep fingerprints for 90 days.
    state_ttl_ms: int = 90 * DAY_MS

    def __post_init__(self) -> None:
        if not self.hash_key:
            raise ValueError("hash_key must not be empty")
        if self.min_accounts < 2:
            raise ValueError("min_accounts must be at least 2")


class ReuseState(KeyState, array_like=True):
    accounts: list[str] = []  # accounts that enrolled this secret (cap max_accounts)
    ids: list[str] = []  # their enrolment event ids, parallel
    n: int = 0  # distinct accounts (beyond the cap: counted, not listed)
    first: int = 0
    rev: int = -1
    sev: int = 0
    at_n: int = 0  # accounts at the last revision
    ips: list[str] = []  # distinct enrolment IPs seen (cap 5)


class MfaSecretReuse(Detector[MfaSecretReuseConfig, ReuseState]):
    name = "mfa_secret_reuse"
    kinds = ("mfa_secret_reuse",)
    event_types = frozenset({"mfa.enrolled"})
    scope = Scope.SOURCE
    Config = MfaSecretReuseConfig
    State = ReuseState

    @classmethod
    def source_keys(cls, event: Event, config: DetectorConfig) -> Iterable[str]:
        """``totp:<keyed fingerprint>`` for a TOTP enrolment with a URI; never the secret."""
        if type(event) is not MfaEnrolled:
            return ()
        p = event.payload
        if p.method != "totp" or not p.otpauth_uri:
            return ()
        assert isinstance(config, MfaSecretReuseConfig)
        fp = otpauth_fingerprint(p.otpauth_uri, config.hash_key.reveal().encode())
        return (f"totp:{fp}",) if fp else ()

    def on_event(self, r: SourceRecord, ctx: Context) -> None:
        if not r.key.startswith("totp:"):
            return
        c = self.config
        st = self.state.get(r.key)
        if st is None:
            st = ReuseState(first=r.ts)
        if r.account_id in st.accounts:
            self.state.put(r.key, st, r.ts)
            return
        st.n += 1
        if len(st.accounts) < c.max_accounts:
            st.accounts.append(r.account_id)
            st.ids.append(r.event_id)
        if r.ip and r.ip not in st.ips:
            push_recent(st.ips, r.ip, 5)
        if st.n >= c.min_accounts:
            rank = 4 if st.n >= c.critical_accounts else 3
            if st.rev < 0 or rank > st.sev or st.n >= 2 * st.at_n:
                st.rev += 1
                st.sev, st.at_n = max(rank, st.sev), st.n
                self._emit(st, r, ctx)
        self.state.put(r.key, st, r.ts)

    def _emit(self, st: ReuseState, r: SourceRecord, ctx: Context) -> None:
        fingerprint = r.key[5:]
        ctx.emit(
            kind="mfa_secret_reuse",
            severity=SEVERITY_NAMES[st.sev],
            dedup_key=f"{fingerprint}|{st.ids[0]}",
            account_id=None,
            first_seen_ms=st.first,
            last_seen_ms=r.ts,
            evidence=list(st.ids),
            summary=(
                f"The same TOTP secret was enrolled on {st.n} accounts: anyone holding it can "
                "generate codes for all of them."
            ),
            explanation={
                "accounts": list(st.accounts),
                "distinct_accounts": st.n,
                "min_accounts": self.config.min_accounts,
                "critical_accounts": self.config.critical_accounts,
                "distinct_enrolment_ips": len(st.ips),
                "secret_fingerprint": fingerprint[:16],
            },
            revision=st.rev,
        )
