"""The unified catalog: resources, their data items and their data, and search over them.

Public face: ``catalog.models``, ``catalog.service``, ``catalog.api`` (router),
``catalog.warehouse`` (read access to data versions for the other contexts).
This package imports nothing from ``access`` or ``quality``.
"""
