"""The app factory: wires the bounded contexts' routers, error handlers and event subscribers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

import govshare
from access import native as access_native
from govshare import admin, apidocs, web, wiring
from govshare.headers import SecurityHeaders
from govshare.migrate import upgrade
from kernel import idempotency, secrets
from kernel.problems import install_handlers
from kernel.settings import Mode, get_settings
from metrics.prometheus import RequestMetrics
from quality import validate as quality_validate

log = logging.getLogger("govshare")

API_PREFIX = "/api/v1"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    try:  # production (the default) refuses to start without a configured master secret
        source = secrets.check(settings)
    except secrets.SecretsUnavailable as exc:
        raise RuntimeError(f"govshare will not start: {exc}") from None
    if settings.mode is Mode.development:
        log.warning("development mode (master secret from %s): not for real data", source)
    upgrade()
    # Build/load the native HMAC now (cached per process), not in the first delivery, and
    # import Great Expectations before any thread can race another to it.
    access_native.load()
    quality_validate.preload()
    # Background work is not done here: requests enqueue jobs (kernel/jobs.py) in their own
    # transactions, and `govshare worker` processes run them (govshare/worker.py). Only this
    # host's search index is kept by the web process itself.
    wiring.start(settings)
    try:
        yield
    finally:
        wiring.stop()


def _document_openapi(app: FastAPI) -> None:
    import catalog.api

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            catalog.api.document_metadata(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app() -> FastAPI:
    import catalog.api
    import catalog.source_api

    app = FastAPI(
        title="govshare",
        version=govshare.__version__,
        summary="Government data-sharing catalog, quality and access governance",
        lifespan=lifespan,
        # Our own /docs and /redoc: vendored assets under our CSP (govshare.apidocs).
        docs_url=None, redoc_url=None,
    )
    install_handlers(app)
    app.add_middleware(RequestMetrics)  # Prometheus request counts and latencies
    app.add_middleware(SecurityHeaders)  # CSP, nosniff, no-store… (docs/security.md)
    wiring.subscribe_events()
    app.include_router(admin.router, prefix=API_PREFIX)
    app.include_router(catalog.api.router, prefix=API_PREFIX)
    app.include_router(catalog.source_api.router, prefix=API_PREFIX)
    for router in wiring.context_routers():
        app.include_router(router, prefix=API_PREFIX)
    for router in wiring.root_routers():
        app.include_router(router)
    web.install(app)  # the web UI's pages at the site root and /static (docs/web.md)
    apidocs.install(app)  # /docs and /redoc, offline

    idempotency.check_routes(app)
    _document_openapi(app)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        # The pseudonym path shows here so that a slow fallback is never silent (access.native).
        path = access_native.status()
        out = {"status": "ok", "version": govshare.__version__, "pseudonym_path": path.path}
        return out | ({"pseudonym_path_detail": path.detail} if path.detail else {})

    return app
