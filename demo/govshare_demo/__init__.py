"""The demo world: a municipal government with departments, users and resources with data.

``govshare demo`` calls ``build_world``; ``world_spec`` gives the same world's departments and
resource specifications (with their deliberate quality defects) without touching a database,
for tests and benchmarks. Modules:

* ``vocab`` — the city's places, code lists and word pools;
* ``ids`` — resident IDs, credit codes, mobiles, bank cards and VINs with check characters;
* ``pools`` — Faker-built pools and the shared resident and enterprise registers;
* ``spec`` — specifications and the defects catalogue; ``world``/``city`` — the two worlds;
* ``generate``/``generators`` — rows for each resource, defects, files;
* ``build`` — departments, users, tokens and registration.
"""

from govshare_demo.build import (
    SCALES,
    DemoResource,
    DemoSummary,
    DemoUser,
    build_world,
    world_is_empty,
    world_spec,
)
from govshare_demo.spec import Defect, DefectKind, ResourceSpec

__all__ = [
    "SCALES",
    "Defect",
    "DefectKind",
    "DemoResource",
    "DemoSummary",
    "DemoUser",
    "ResourceSpec",
    "build_world",
    "world_is_empty",
    "world_spec",
]
