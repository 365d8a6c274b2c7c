"""Contract tests: the real FreeSWITCH traces against our codec and our simulator."""
