"""The HTTP API: FastAPI routers, authentication by bearer token, roles and areas.

Build it with :func:`telephony.api.app.create_app`.
"""
