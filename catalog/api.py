"""Catalog HTTP API (placeholder router until the catalog endpoints land)."""

from fastapi import APIRouter

router = APIRouter(tags=["catalog"])
