"""Heron prober service."""
