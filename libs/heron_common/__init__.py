"""Code every Heron service shares: settings, logging, bus, db, messages, clock."""
