"""Heron notifier service."""
