"""``secmon audit-mfa FILE...``: the MFA posture checks over an export, as a summary table.

Accepts JSON Lines of contract events (``account.snapshot``, ``mfa.enrolled`` with an
``otpauth_uri``; other event types are skipped) and simple lines
``{"account_id": ..., "otpauth_uri": ...}`` or ``{"account_id": ..., "balance_usd": ...,
"mfa_methods": [...]}``.  The posture of an account is judged on its latest snapshot.

The checks are the detectors' own (:mod:`secmon.detectors.mfa_checks`, thresholds from the
``mfa_posture``, ``mfa_weak_secret`` and ``mfa_secret_reuse`` sections of ``--config``), so
the audit and the live service cannot disagree.  Secrets are measured and dropped: the
table and ``--out`` hold only issue names, lengths and keyed fingerprints.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from secmon.config import load_config
from secmon.contract import AccountSnapshot, BadRecord, EventDecoder, MfaEnrolled, money
from secmon.detectors.common import SEVERITY_NAMES
from secmon.detectors.mfa_checks import (
    ISSUE_SEVERITY,
    ISSUE_TEXT,
    Posture,
    SecretReport,
    analyse_otpauth,
    assess_posture,
)
from secmon.detectors.mfa_posture import MfaPosture, MfaPostureConfig
from secmon.detectors.mfa_secret_reuse import MfaSecretReuse, MfaSecretReuseConfig
from secmon.detectors.mfa_weak_secret import MfaWeakSecret, MfaWeakSecretConfig


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("audit-mfa", help="check MFA posture and TOTP secrets in an export (JSON Lines)")
    p.add_argument("files", nargs="+", help="JSON Lines: snapshots, mfa.enrolled events or {account_id, otpauth_uri}")
    p.add_argument("--config", help="YAML config (thresholds of the MFA detectors)")
    p.add_argument("--out", help="write one JSON line per account with an issue (no secrets)")
    p.add_argument("--fail-on-issues", action="store_true", help="exit 1 when any account has an issue")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


class _Line(msgspec.Struct):
    """The fields a simple (non-contract) export line may have."""

    account_id: str | None = None
    event_type: str | None = None
    otpauth_uri: str | None = None
    balance_usd: str | float | int | None = None
    mfa_methods: list[str] | None = None
    occurred_at: str | None = None


@dataclass
class AccountAudit:
    posture_at: str = ""
    balance_usd: float | None = None
    methods: list[str] = field(default_factory=list)
    posture: Posture | None = None
    secrets: list[SecretReport] = field(default_factory=list)


@dataclass
class Audit:
    """The audit of one export; ``add_line`` is fed one raw line at a time."""

    posture_config: MfaPostureConfig
    secret_config: MfaWeakSecretConfig
    reuse_config: MfaSecretReuseConfig
    accounts: dict[str, AccountAudit] = field(default_factory=dict)
    fingerprints: dict[str, set[str]] = field(default_factory=dict)
    lines: int = 0
    unreadable: int = 0
    skipped: int = 0
    snapshots: int = 0
    uris: int = 0

    def __post_init__(self) -> None:
        self._decoder = EventDecoder()
        self._line = msgspec.json.Decoder(_Line)
        self._key = self.reuse_config.hash_key.reveal().encode()

    def add_line(self, raw: bytes) -> None:
        if not raw.strip():
            return
        self.lines += 1
        try:
            line = self._line.decode(raw)
        except msgspec.DecodeError:
            self.unreadable += 1
            return
        if line.event_type is not None:
            self._add_event(raw, line.event_type)
        elif line.account_id and line.otpauth_uri:
            self._add_uri(line.account_id, line.otpauth_uri)
        elif line.account_id and line.balance_usd is not None and line.mfa_methods is not None:
            try:
                balance = float(line.balance_usd)
            except ValueError:
                self.unreadable += 1
                return
            self._add_snapshot(line.account_id, line.occurred_at or "", balance, line.mfa_methods)
        else:
            self.unreadable += 1

    def _add_event(self, raw: bytes, event_type: str) -> None:
        if event_type not in ("account.snapshot", "mfa.enrolled"):
            self.skipped += 1
            return
        try:
            event = self._decoder.decode(raw)
        except BadRecord:
            self.unreadable += 1
            return
        if isinstance(event, AccountSnapshot):
            p = event.payload
            self._add_snapshot(event.account_id, event.occurred_at.isoformat(), money(p.balance_usd),
                               list(p.mfa_methods))
        elif isinstance(event, MfaEnrolled) and event.payload.method == "totp" and event.payload.otpauth_uri:
            self._add_uri(event.account_id, event.payload.otpauth_uri)
        else:
            self.skipped += 1

    def _add_snapshot(self, account: str, at: str, balance: float, methods: list[str]) -> None:
        self.snapshots += 1
        a = self.accounts.setdefault(account, AccountAudit())
        if a.posture_at and at and at < a.posture_at:
            return  # an older snapshot than the one we have
        c = self.posture_config
        a.posture_at, a.balance_usd, a.methods = at, balance, methods
        a.posture = assess_posture(balance, methods, min_balance_usd=c.min_balance_usd,
                                   severity_tiers_usd=c.severity_tiers_usd,
                                   weak_methods=frozenset(c.weak_methods))

    def _add_uri(self, account: str, uri: str) -> None:
        self.uris += 1
        c = self.secret_config
        report = analyse_otpauth(uri, key=self._key, min_secret_bits=c.min_secret_bits,
                                 very_short_bits=c.very_short_bits, min_digits=c.min_digits,
                                 max_period_s=c.max_period_s, allowed_algorithms=c.allowed_algorithms)
        self.accounts.setdefault(account, AccountAudit()).secrets.append(report)
        if report.fingerprint:
            self.fingerprints.setdefault(report.fingerprint, set()).add(account)

    # -- results -------------------------------------------------------------------------
    def reused(self) -> dict[str, int]:
        """Account → how many accounts share one of its secrets (only shared ones)."""
        out: dict[str, int] = {}
        for accounts in self.fingerprints.values():
            if len(accounts) >= self.reuse_config.min_accounts:
                for a in accounts:
                    out[a] = max(out.get(a, 0), len(accounts))
        return out

    def table(self) -> list[tuple[str, dict[str, int]]]:
        """Rows of (check, {severity: accounts}) in a fixed order."""
        rows: dict[str, dict[str, int]] = {}

        def add(check: str, severity: str) -> None:
            row = rows.setdefault(check, {})
            row[severity] = row.get(severity, 0) + 1

        for a in self.accounts.values():
            if a.posture is not None:
                add(f"posture: {a.posture.state}", a.posture.severity)
            for issue in sorted({i for report in a.secrets for i in report.issues}):
                add(f"totp: {issue}", ISSUE_SEVERITY[issue])
        for n in self.reused().values():
            add("totp: secret_reused", "critical" if n >= self.reuse_config.critical_accounts else "high")
        order = ["posture: no_2fa", "posture: weak_only", *(f"totp: {i}" for i in ISSUE_TEXT), "totp: secret_reused"]
        return [(check, rows[check]) for check in order if check in rows]

    def flagged(self) -> Iterator[dict[str, Any]]:
        """One record per account with an issue (no secrets: issue names and fingerprints)."""
        reused = self.reused()
        c = self.secret_config
        for account in sorted(self.accounts):
            a = self.accounts[account]
            weak = [r for r in a.secrets if r.issues]
            if a.posture is None and not weak and account not in reused:
                continue
            record: dict[str, Any] = {"account_id": account}
            if a.posture is not None:
                record["posture"] = {"severity": a.posture.severity,
                                     **a.posture.explanation(self.posture_config.min_balance_usd,
                                                             self.posture_config.severity_tiers_usd)}
            if weak:
                record["totp"] = [{"severity": r.severity,
                                   **r.explanation(c.min_secret_bits, c.max_period_s, c.min_digits)}
                                  for r in weak]
            if account in reused:
                record["secret_shared_with_accounts"] = reused[account]
            yield record


def _read(paths: list[Path], bar: Any) -> Iterator[bytes]:
    for path in paths:
        with path.open("rb") as fh:
            for raw in fh:
                if bar is not None:
                    bar.update(len(raw))
                yield raw


def _progress(paths: list[Path], progress: bool | None) -> Any:
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    total = sum(p.stat().st_size for p in paths)
    return tqdm(total=total, unit="B", unit_scale=True, desc="audit-mfa", file=sys.stderr)


def audit_files(paths: list[Path], config_path: str | None = None, progress: bool | None = False) -> Audit:
    """Run the audit over files with the MFA detectors' configured thresholds."""
    from secmon.config import convert

    section = load_config(config_path).detectors
    audit = Audit(
        posture_config=convert(section.get(MfaPosture.name) or {}, MfaPostureConfig, f"detectors.{MfaPosture.name}"),
        secret_config=convert(section.get(MfaWeakSecret.name) or {}, MfaWeakSecretConfig,
                              f"detectors.{MfaWeakSecret.name}"),
        reuse_config=convert(section.get(MfaSecretReuse.name) or {}, MfaSecretReuseConfig,
                             f"detectors.{MfaSecretReuse.name}"),
    )
    bar = _progress(paths, progress)
    try:
        for raw in _read(paths, bar):
            audit.add_line(raw)
    finally:
        if bar is not None:
            bar.close()
    return audit


def print_table(audit: Audit, out: IO[str]) -> None:
    severities = [s for s in SEVERITY_NAMES if s != "info"][::-1]
    print(
        f"{audit.lines:,} lines: {len(audit.accounts):,} accounts, {audit.snapshots:,} snapshots, "
        f"{audit.uris:,} TOTP URIs ({audit.unreadable:,} unreadable, {audit.skipped:,} other events)",
        file=out,
    )
    header = f"{'check':34s} {'accounts':>9s} " + " ".join(f"{s:>8s}" for s in severities)
    print(header, file=out)
    print("-" * len(header), file=out)
    rows = audit.table()
    for check, by_sev in rows:
        total = sum(by_sev.values())
        cells = " ".join(f"{by_sev.get(s, 0):>8,}" for s in severities)
        print(f"{check:34s} {total:>9,} {cells}", file=out)
    if not rows:
        print("no issues found", file=out)


def run(args: argparse.Namespace) -> int:
    paths = [Path(f) for f in args.files]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file")
    audit = audit_files(paths, args.config, False if args.no_progress else None)
    print_table(audit, sys.stdout)
    flagged = 0
    if args.out:
        with open(args.out, "wb") as fh:
            for record in audit.flagged():
                fh.write(msgspec.json.encode(record) + b"\n")
                flagged += 1
    else:
        flagged = sum(1 for _ in audit.flagged())
    return 1 if args.fail_on_issues and flagged else 0
