"""On-call, pure: the rotation text (:mod:`.rotation`), the shifts it generates (:mod:`.shifts`) and
the escalation plan of an incident (:mod:`.escalation`).

No I/O (beyond reading the system's time zone database through :mod:`zoneinfo`) and no clock:
every instant is an explicit, timezone-aware :class:`datetime.datetime`, and what the functions
return is in UTC. The services that store rotations, shifts and pages build on these.
"""
