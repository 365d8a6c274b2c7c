"""IVR: the flow language (schema), loading and checking flow files, hot reload, the interpreter."""
