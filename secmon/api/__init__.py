"""The console and HTTP API for support agents and security analysts (``secmon api serve``).

One FastAPI app (:func:`secmon.api.app.create_app`) serves the JSON API under ``/api/v1``,
the server-rendered console (Jinja2, no external assets), the public "this wasn't me"
page and the OpenAPI spec.  It reads the action layer through
:func:`secmon.alerts.wiring.build_console` and the ``finding`` table; it never touches
detector internals.
"""
