"""The call domain: call and leg state, the registry, the engine that drives FreeSWITCH."""
