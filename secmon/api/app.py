"""The app factory: ``create_app(config)`` builds the API + console from a :class:`Config`.

It wires, and does nothing else: the action layer's console (cases, "this wasn't me"), the
finding reader, tokens and sessions, the caller verifier with its secret store, and the
routers.  Time is injected (``clock``) so tests control it; the engine may be passed in so
the app and the test share one store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine

from secmon.alerts import wiring
from secmon.alerts.cases import CaseNotFound, InvalidArgument, InvalidTransition
from secmon.api.auth import Authenticator
from secmon.api.context import ApiContext, ApiMetrics
from secmon.api.deps import ApiError
from secmon.api.findings import FindingQuery
from secmon.api.pages import make_environment, render
from secmon.api.ratelimit import SlidingWindow
from secmon.api.routes import admin, cases, console, findings, not_me, verify
from secmon.api.routes import docs as docs_routes
from secmon.api.secrets import FileSecretStore, SecretStore
from secmon.api.security import SecurityHeaders
from secmon.api.settings import ApiSettings, parse
from secmon.api.tokens import TokenStore
from secmon.api.verify import CallerVerifier
from secmon.clock import wall_ms
from secmon.config import Config
from secmon.metrics import Metrics
from secmon.store.db import open_database

STATIC = Path(__file__).with_name("static")
API_DESCRIPTION = """\
The secmon console API: support cases (queue by SLA, timeline, take/comment/status), the
security findings feed (filter, revisions, live Server-Sent Events), caller verification
by authenticator code, and API token administration.

Authenticate with `Authorization: Bearer <token>`: an API token (`smk_…`, from
`secmon api token create`) or an OIDC access token.  Roles: `support_agent` (cases, caller
verification; account ids and IPs masked), `security_analyst` (findings, audit, cases
read/comment/priority), `admin` (everything, tokens).
"""


def build_secret_store(settings: ApiSettings) -> SecretStore | None:
    store = settings.verification.secret_store
    return FileSecretStore(store.path) if store.type == "file" else None


def create_app(
    config: Config,
    *,
    engine: Engine | None = None,
    clock: Callable[[], int] = wall_ms,
    metrics: Metrics | None = None,
    secret_store: SecretStore | None = None,
) -> FastAPI:
    settings = parse(config.api)
    metrics = metrics or Metrics()
    engine = engine if engine is not None else open_database(config.store.url.reveal())
    layer = wiring.build_action_layer(config, engine, metrics, clock=clock)
    tokens = TokenStore(engine)
    store = secret_store if secret_store is not None else build_secret_store(settings)
    ctx = ApiContext(
        settings=settings, engine=engine, console=wiring.Console(layer.case_service, layer.not_me),
        findings=FindingQuery(engine), tokens=tokens, auth=Authenticator(engine, settings, tokens, clock),
        verifier=CallerVerifier(engine, store, settings.verification), clock=clock, metrics=metrics,
        api_metrics=ApiMetrics(metrics),
        not_me_limit=SlidingWindow(settings.not_me_rate_limit.requests, settings.not_me_rate_limit.per_ms),
        login_limit=SlidingWindow(settings.login_rate_limit.requests, settings.login_rate_limit.per_ms),
    )  # fmt: skip
    app = FastAPI(title="secmon console API", version="1", description=API_DESCRIPTION, docs_url=None,
                  redoc_url=None, openapi_url="/openapi.json")  # fmt: skip
    app.state.ctx = ctx
    app.state.templates = make_environment()
    _errors(app)
    app.state.routers = (cases.router, findings.router, verify.router, admin.router, not_me.router, console.router,
                         docs_routes.router)  # fmt: skip
    for r in app.state.routers:
        app.include_router(r)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        return Response("ok\n", media_type="text/plain")

    if settings.metrics:

        @app.get("/metrics", include_in_schema=False)
        def prometheus() -> Response:
            return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(SecurityHeaders, metrics=ctx.api_metrics)
    return app


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/")


def _errors(app: FastAPI) -> None:
    def error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    def api_error(request: Request, exc: ApiError) -> Response:
        return error(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(CaseNotFound)
    def not_found(request: Request, exc: CaseNotFound) -> Response:
        return error(404, "not_found", str(exc))

    @app.exception_handler(InvalidTransition)
    def transition(request: Request, exc: InvalidTransition) -> Response:
        return error(409, "invalid_transition", str(exc))

    @app.exception_handler(InvalidArgument)
    def argument(request: Request, exc: InvalidArgument) -> Response:
        return error(400, "invalid_argument", str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> Response:
        if _wants_html(request):
            return render(request, "error.html", status=422, message="error.argument")
        return await request_validation_exception_handler(request, exc)

    @app.exception_handler(console.LoginRequired)
    def login_required(request: Request, exc: console.LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.exception_handler(console.PageForbidden)
    def forbidden(request: Request, exc: console.PageForbidden) -> Response:
        return render(request, "error.html", status=403, message="error.forbidden")
