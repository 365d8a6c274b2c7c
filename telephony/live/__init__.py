"""Live events for ``WS /v1/events``: the hub (:mod:`.hub`) and the feed of engine changes (:mod:`.feed`)."""
