"""Tests and benchmarks run in development mode unless told otherwise (production is the
default: docs/security.md)."""

import os

os.environ.setdefault("GOVSHARE_MODE", "development")
