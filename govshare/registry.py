"""Imports every table module so ``SQLModel.metadata`` is complete (Alembic, init)."""

import access.models  # noqa: F401
import catalog.models  # noqa: F401
import govshare.notifications  # noqa: F401
import kernel.idempotency
import kernel.identity
import kernel.jobs
import kernel.sessions  # noqa: F401
import quality.models  # noqa: F401
