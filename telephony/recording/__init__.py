"""Recording: folders the switch can write (:mod:`.folders`), proof that it does (:mod:`.probe`)."""
