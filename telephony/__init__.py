"""Control plane for 12345 government-service hotlines on FreeSWITCH."""

__version__ = "0.1.0"
