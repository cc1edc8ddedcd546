"""The ``api`` config section: typed, validated, secrets hidden.

``secmon.config`` keeps ``api`` as a raw mapping so the core imports nothing from here;
:func:`validate` is registered in ``secmon.sections`` so ``secmon check-config`` checks it
(and prints it with secrets masked).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Literal

import msgspec
import orjson

from secmon.config import ConfigError, convert

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
ROLES = ("support_agent", "security_analyst", "admin")
Role = Literal["support_agent", "security_analyst", "admin"]


class _Base(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class OidcSettings(_Base, frozen=True):
    """Bearer JWTs from an identity provider, checked offline against a configured JWKS."""

    #: Empty: OIDC is off (API tokens only).
    issuer: str = ""
    audience: str = ""
    #: A JWKS file (the provider's ``jwks_uri`` document, fetched by ops) …
    jwks_file: str = ""
    #: … or the JWKS inline (``{"keys": [...]}``).
    jwks: dict[str, Any] = {}
    algorithms: list[str] = msgspec.field(default_factory=lambda: ["RS256", "ES256"])
    #: Claim holding the user's roles/groups (a dotted path, e.g. ``realm_access.roles``);
    #: a string or a list of strings.
    role_claim: str = "roles"
    #: Claim value → secmon role; values not listed are ignored.  Default: the role names.
    role_map: dict[str, Role] = {}
    #: Claim naming the user in the audit log.
    name_claim: str = "preferred_username"
    leeway_s: int = 30

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)


class SecretStoreSettings(_Base, frozen=True):
    """Where the caller-verification TOTP secrets live (see :mod:`secmon.api.secrets`)."""

    #: ``file``: a JSON or YAML file mapping account id → base32 secret; ``none``: verification off.
    type: Literal["file", "none"] = "none"
    path: str = ""


class VerificationSettings(_Base, frozen=True):
    #: Attempts allowed per account within ``window_ms`` (successful ones count too).
    max_attempts: int = 5
    window_ms: int = 15 * MINUTE_MS
    #: Time steps either side of now a code may come from (clock drift of the phone).
    valid_window: int = 1
    secret_store: SecretStoreSettings = SecretStoreSettings()


class RateLimit(_Base, frozen=True):
    requests: int
    per_ms: int


class ApiSettings(_Base, frozen=True):
    host: str = "127.0.0.1"
    #: 8080 matches the default ``alerts.console_url``, so links in alerts open the console.
    port: int = 8080
    #: Trust ``X-Forwarded-*`` from these proxies (uvicorn's ``forwarded_allow_ips``).
    forwarded_allow_ips: str = "127.0.0.1"
    session_ttl_ms: int = 8 * HOUR_MS
    #: ``auto``: the session cookie is ``Secure`` when the request came over https.
    cookie_secure: Literal["auto", "always", "never"] = "auto"
    oidc: OidcSettings = OidcSettings()
    verification: VerificationSettings = VerificationSettings()
    #: Public "this wasn't me" page, per client address.
    not_me_rate_limit: RateLimit = RateLimit(requests=10, per_ms=MINUTE_MS)
    #: Console log-in attempts, per client address.
    login_rate_limit: RateLimit = RateLimit(requests=10, per_ms=MINUTE_MS)
    #: The live findings stream: how often it polls the store, and how long one connection lasts.
    stream_poll_ms: int = 1_000
    stream_max_ms: int = 30 * MINUTE_MS
    #: Serve ``/metrics`` (Prometheus) on the API port.
    metrics: bool = True
    default_locale: Literal["en", "zh-CN"] = "en"


def parse(section: dict[str, Any]) -> ApiSettings:
    """The ``api`` section as :class:`ApiSettings`; raises ConfigError on anything wrong."""
    settings: ApiSettings = convert(section or {}, ApiSettings, "api")
    o = settings.oidc
    if o.enabled:
        if not o.audience:
            raise ConfigError("api.oidc.audience is required when api.oidc.issuer is set")
        if bool(o.jwks_file) == bool(o.jwks):
            raise ConfigError("api.oidc: set exactly one of jwks_file and jwks")
        load_jwks(o)
        bad = [a for a in o.algorithms if not a.startswith(("RS", "PS", "ES", "EdDSA"))]
        if bad or not o.algorithms:
            raise ConfigError(f"api.oidc.algorithms: only asymmetric algorithms are accepted, not {bad}")
    vs = settings.verification
    if vs.max_attempts < 1 or vs.window_ms < 1 or not 0 <= vs.valid_window <= 3:
        raise ConfigError("api.verification: max_attempts and window_ms must be positive, valid_window 0..3")
    if vs.secret_store.type == "file" and not vs.secret_store.path:
        raise ConfigError("api.verification.secret_store.path is required for type: file")
    for name in ("not_me_rate_limit", "login_rate_limit"):
        rl = getattr(settings, name)
        if rl.requests < 1 or rl.per_ms < 1:
            raise ConfigError(f"api.{name}: requests and per_ms must be positive")
    if settings.session_ttl_ms < MINUTE_MS or settings.stream_poll_ms < 50:
        raise ConfigError("api.session_ttl_ms must be at least a minute and stream_poll_ms at least 50")
    return settings


def load_jwks(oidc: OidcSettings) -> dict[str, Any]:
    """The configured JWKS document (inline or from its file)."""
    if oidc.jwks:
        doc: Any = oidc.jwks
    else:
        try:
            doc = orjson.loads(Path(oidc.jwks_file).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"api.oidc.jwks_file: cannot read a JWKS from {oidc.jwks_file}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list) or not doc["keys"]:
        raise ConfigError("api.oidc: the JWKS must be an object with a non-empty 'keys' list")
    return doc


def validate(section: dict[str, Any]) -> ApiSettings:
    """``secmon check-config`` hook: parse, and check the secret store file is usable."""
    settings = parse(section)
    store = settings.verification.secret_store
    if store.type == "file":
        path = Path(store.path)
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            raise ConfigError(f"api.verification.secret_store.path: {exc.strerror}: {path}") from None
        if stat.S_IMODE(mode) & 0o077:
            raise ConfigError(f"api.verification.secret_store.path: {path} must not be readable by group or others "
                              f"(chmod 600)")  # fmt: skip
    return settings
