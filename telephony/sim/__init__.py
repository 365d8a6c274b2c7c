"""The FreeSWITCH simulator: a test double that speaks the real Event Socket protocol.

Modules:

* :mod:`~telephony.sim.server` — the asyncio TCP server, one :class:`Connection` per
  client (auth, subscriptions, filters, command dispatch) and :class:`Simulator`.
* :mod:`~telephony.sim.switch` — channels, the session state machine, bridging,
  hangup, originate and transfer; fires events.
* :mod:`~telephony.sim.apps` — dialplan applications (answer, playback, read, ...).
* :mod:`~telephony.sim.api` — ``api``/``bgapi`` commands (``uuid_*``, ``show``, ``sofia``...).
* :mod:`~telephony.sim.dialplan` — the hotline dialplan.
* :mod:`~telephony.sim.scripts` — scripted citizens and agent phones (``api sim ...``).
* :mod:`~telephony.sim.headers` — event header layout, taken from real traces.
* :mod:`~telephony.sim.captured` — channel variables captured from a real FreeSWITCH.
* :mod:`~telephony.sim.clock` — simulated time (``time_scale``).

Everything it carries is simulated; nothing in production depends on it.
"""

from telephony.sim.server import Simulator

__all__ = ["Simulator"]
