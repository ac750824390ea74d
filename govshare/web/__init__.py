"""The web UI: server-rendered pages for every role, served by the API's own app (docs/web.md)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles


def install(app: FastAPI) -> None:
    """Mount the pages at the site root and their static files under /static."""
    from govshare.web.pages import access, common, followup, oversight, publish

    for module in (common, publish, access, followup, oversight):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(files("govshare.web") / "static")),
              name="static")
