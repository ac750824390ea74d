"""The kernel: what every context needs and nothing else (settings, database, identity and
policy, problems, events, idempotency, security middleware pieces, the start-up hook).

Imports no context and not the composition root (tests/test_layering.py).
"""
