"""Where caller-verification TOTP secrets live — and stay.

:class:`SecretStore` is deliberately *not* "get the secret": it checks a code and answers
with the time step it matched, so a secret never leaves the store (not into a response, a
log line, an exception or the API's memory beyond the store itself).  That is the shape of
Vault's TOTP secrets engine (``totp/code/:name``) or a KMS/HSM-backed verifier, which is what
production plugs in here; :class:`FileSecretStore` is the small-deployment and test one: a
JSON or YAML file ``{account_id: base32 secret}`` readable by its owner only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import stat
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import orjson
import pyotp
import yaml


class SecretStoreError(Exception):
    """The store cannot be used (never carries a secret)."""


@runtime_checkable
class SecretStore(Protocol):
    def enrolled(self, account_id: str) -> bool:
        """Whether the account has a TOTP authenticator in this store."""
        ...

    def match_totp(self, account_id: str, code: str, *, at_s: float, valid_window: int) -> int | None:
        """The TOTP time step ``code`` is valid for (within ``valid_window`` steps of ``at_s``),
        or None.  Replay protection is the caller's: it remembers accepted time steps."""
        ...


def _valid_secret(value: object) -> bool:
    if not isinstance(value, str) or len(value) < 16:
        return False
    try:
        base64.b32decode(value.upper() + "=" * (-len(value) % 8), casefold=True)
    except (binascii.Error, ValueError):
        return False
    return True


class FileSecretStore:
    """``{account_id: base32 secret}`` in a JSON or YAML file with mode ``0600`` (or stricter).

    The file is re-read when its modification time changes, so ops can rotate a secret
    without restarting.  A group- or world-readable file is refused."""

    def __init__(self, path: str | Path, *, digits: int = 6, interval: int = 30) -> None:
        self.path = Path(path)
        self.digits = digits
        self.interval = interval
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._secrets: dict[str, str] = {}
        self._load()

    def __repr__(self) -> str:
        return f"FileSecretStore({str(self.path)!r}, accounts={len(self._secrets)})"

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise SecretStoreError(f"secret store {self.path}: {exc.strerror}") from None
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise SecretStoreError(f"secret store {self.path} must not be readable by group or others (chmod 600)")
        if st.st_mtime == self._mtime:
            return
        raw = self.path.read_bytes()
        try:
            doc = orjson.loads(raw) if self.path.suffix == ".json" else yaml.safe_load(raw)
        except (orjson.JSONDecodeError, yaml.YAMLError):
            raise SecretStoreError(f"secret store {self.path} is not valid JSON/YAML") from None
        if not isinstance(doc, dict):
            raise SecretStoreError(f"secret store {self.path}: expected a mapping of account id to secret")
        bad = sorted(str(k) for k, v in doc.items() if not _valid_secret(v))
        if bad:  # name the accounts, never the values
            raise SecretStoreError(f"secret store {self.path}: not a base32 secret of 16+ characters for {bad[:5]}")
        self._secrets = {str(k): str(v) for k, v in doc.items()}
        self._mtime = st.st_mtime

    def _secret(self, account_id: str) -> str | None:
        with self._lock:
            self._load()
            return self._secrets.get(account_id)

    def enrolled(self, account_id: str) -> bool:
        return self._secret(account_id) is not None

    def match_totp(self, account_id: str, code: str, *, at_s: float, valid_window: int) -> int | None:
        secret = self._secret(account_id)
        if secret is None or not (code.isdigit() and len(code) == self.digits):
            return None
        totp = pyotp.TOTP(secret, digits=self.digits, interval=self.interval)
        now_step = int(at_s) // self.interval
        found = None
        for step in range(now_step - valid_window, now_step + valid_window + 1):
            # Check every step (no early exit) so timing does not say which one matched.
            if hmac.compare_digest(totp.generate_otp(step), code) and found is None:
                found = step
        return found
