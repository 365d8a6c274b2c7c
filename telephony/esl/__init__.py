"""The Event Socket: wire format (sans-IO), command builders, and the transport over two wires.

Nothing outside this package knows about gevent or greenswitch; the rest of
the control plane uses :mod:`telephony.esl.messages` types, the builders in
:mod:`telephony.esl.commands`, and the asyncio interface of the transport.
"""
