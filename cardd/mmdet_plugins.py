"""The name configs written before cardd's packages (2026-12-07) import in `custom_imports`.

What it registered now lives in `cardd.openmmlab.plugins`; importing this module
imports that one, so a user's config that names the old module still builds.
"""

from cardd.openmmlab import plugins  # noqa: F401
