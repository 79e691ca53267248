"""Importing this module registers every declared kind with ``kinds.KINDS`` (one import each)."""

from __future__ import annotations

from heron_detector import (
    kind_heartbeat,  # noqa: F401  (registers the heartbeat kind)
    kind_heroku,  # noqa: F401  (registers the heroku kind)
    kind_probe,  # noqa: F401  (registers the probe kind)
    kind_trigger,  # noqa: F401  (registers the trigger kind)
)
