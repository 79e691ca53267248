"""Importing this module registers every declared kind with ``kinds.KINDS`` (one import each)."""

from __future__ import annotations
