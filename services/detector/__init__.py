"""Heron detector service."""
