"""Heron ingest service."""
