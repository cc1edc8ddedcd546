"""OIDC bearer tokens: a JWT from the identity provider, checked offline.

The network is closed to the API process, so the provider's signing keys come from config
(a JWKS file ops refresh, or the JWKS inline).  A token is accepted when its signature
verifies with the key its ``kid`` names, under an allowed *asymmetric* algorithm (never
``none`` or HMAC: a JWKS public key must not double as an HMAC secret), and its ``iss``,
``aud``, ``exp`` (with a small leeway) and ``sub`` are right.  Roles come from a configured
claim, mapped to secmon roles; a token with no mapped role is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from secmon.api.settings import ROLES, OidcSettings, load_jwks


class OidcError(Exception):
    """A bearer JWT that is not acceptable (the message is safe to log; it has no token)."""


@dataclass(frozen=True)
class OidcIdentity:
    subject: str
    name: str
    roles: frozenset[str]
    expires_ms: int


class OidcVerifier:
    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self.keys: dict[str, Any] = {}
        for jwk in load_jwks(settings)["keys"]:
            key = jwt.PyJWK.from_dict(jwk)
            self.keys[jwk.get("kid", "")] = key

    def verify(self, token: str, now_ms: int) -> OidcIdentity:
        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise OidcError("not a JWT") from None
        alg = header.get("alg")
        if alg not in s.algorithms:
            raise OidcError(f"algorithm {alg!r} is not accepted")
        kid = header.get("kid", "")
        key = self.keys.get(kid) if kid or len(self.keys) != 1 else next(iter(self.keys.values()))
        if key is None:
            raise OidcError("unknown signing key")
        try:
            claims = jwt.decode(
                token, key=key, algorithms=[alg], audience=s.audience, issuer=s.issuer, leeway=s.leeway_s,
                # Time is an input: exp/nbf are checked below against the injected clock.
                options={"require": ["exp", "iss", "aud", "sub"], "verify_exp": False, "verify_nbf": False,
                         "verify_iat": False},
            )  # fmt: skip
        except jwt.InvalidTokenError as exc:
            raise OidcError(f"invalid token: {type(exc).__name__}") from None
        leeway = s.leeway_s * 1000
        try:
            exp_ms = int(claims["exp"]) * 1000
            nbf_ms = int(claims.get("nbf", 0)) * 1000
        except (TypeError, ValueError):
            raise OidcError("invalid token: exp/nbf are not numbers") from None
        if exp_ms + leeway <= now_ms:
            raise OidcError("token expired")
        if nbf_ms - leeway > now_ms:
            raise OidcError("token not yet valid")
        roles = self._roles(claims)
        if not roles:
            raise OidcError("no secmon role in the token")
        name = claims.get(s.name_claim)
        subject = str(claims["sub"])
        return OidcIdentity(subject, str(name) if isinstance(name, str) and name else subject, roles, exp_ms)

    def _roles(self, claims: dict[str, Any]) -> frozenset[str]:
        value: Any = claims
        for part in self.settings.role_claim.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values = [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)] if isinstance(
            value, list) else []  # fmt: skip
        mapping: dict[str, str] = dict(self.settings.role_map) or {r: r for r in ROLES}
        return frozenset(mapping[v] for v in values if v in mapping)
