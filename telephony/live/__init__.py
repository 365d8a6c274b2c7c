"""Live events for ``WS /v1/events``.

The hub (:mod:`.hub`: numbers, replay ring, bounded subscribers, scopes) and the
feed that turns the engine's writes and agents' changes into events (:mod:`.feed`).
"""
