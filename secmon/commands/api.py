"""``secmon api serve`` (the console/API process) and ``secmon api token create|list|revoke``."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time

DAY_MS = 86_400_000


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("api", help="the console and HTTP API: serve it, manage its tokens")
    what = p.add_subparsers(dest="api_command", required=True, metavar="ACTION")
    s = what.add_parser("serve", help="serve the API and console (host/port from the api config section)")
    s.add_argument("--config", help="YAML config file")
    s.add_argument("--host", help="override api.host")
    s.add_argument("--port", type=int, help="override api.port")
    s.set_defaults(func=run_serve)

    t = what.add_parser("token", help="API tokens (stored hashed; shown once)")
    ta = t.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    c = ta.add_parser("create", help="create a token and print it once")
    c.add_argument("--role", required=True, choices=["support_agent", "security_analyst", "admin"])
    c.add_argument("--name", required=True, help="who or what uses it (shown in the audit log)")
    c.add_argument("--expires-days", type=int, help="expire after this many days (default: never)")
    c.add_argument("--config", help="YAML config file (store URL)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=run_token_create)
    ls = ta.add_parser("list", help="list tokens (never their secrets)")
    ls.add_argument("--config", help="YAML config file (store URL)")
    ls.set_defaults(func=run_token_list)
    rv = ta.add_parser("revoke", help="revoke a token by id (its console sessions end too)")
    rv.add_argument("token_id")
    rv.add_argument("--config", help="YAML config file (store URL)")
    rv.set_defaults(func=run_token_revoke)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _tokens(config_path: str | None):  # type: ignore[no-untyped-def]
    from secmon.api.tokens import TokenStore
    from secmon.config import load_config
    from secmon.store.db import open_database

    config = load_config(config_path)
    return TokenStore(open_database(config.store.url.reveal()))


def run_serve(args: argparse.Namespace) -> int:
    from secmon.api.serve import serve
    from secmon.config import load_config
    from secmon.logs import setup_logging
    from secmon.sections import validate_sections

    config = load_config(args.config)
    validate_sections(config)
    setup_logging(config.logging.level, config.logging.format)
    serve(config, host=args.host, port=args.port)
    return 0


def run_token_create(args: argparse.Namespace) -> int:
    store = _tokens(args.config)
    now = _now_ms()
    expires = now + args.expires_days * DAY_MS if args.expires_days else None
    try:
        new = store.create(name=args.name, role=args.role, actor=_actor(), now_ms=now, expires_ms=expires)
    except ValueError as exc:
        print(f"secmon: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"token": new.token, "token_id": new.info.token_id, "name": new.info.name,
                          "role": new.info.role, "expires_ms": new.info.expires_ms}))  # fmt: skip
    else:
        print(f"token id: {new.info.token_id}  name: {new.info.name}  role: {new.info.role}")
        print(f"token:    {new.token}")
        print("Store it now: it is shown once and kept only as a hash.")
    return 0


def run_token_list(args: argparse.Namespace) -> int:
    for t in _tokens(args.config).list():
        state = "revoked" if t.revoked_ms else ("expired" if t.expires_ms and t.expires_ms <= _now_ms() else "active")
        print(f"{t.token_id}  {t.role:<17} {state:<8} {t.name}")
    return 0


def run_token_revoke(args: argparse.Namespace) -> int:
    if not _tokens(args.config).revoke(args.token_id, actor=_actor(), now_ms=_now_ms()):
        print(f"secmon: no token {args.token_id}", file=sys.stderr)
        return 1
    print(f"revoked {args.token_id}")
    return 0
