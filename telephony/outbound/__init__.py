"""Outbound calls from the hotline's number: callbacks of missed calls and follow-up surveys.

* :mod:`~telephony.outbound.model` - the task and attempt state machines, the
  dispositions and the callback rules (data, per hotline);
* :mod:`~telephony.outbound.missed` - missed calls found in the CDRs, merged per
  citizen into callback tasks;
* :mod:`~telephony.outbound.store` - tasks, attempts and campaigns in PostgreSQL;
* :mod:`~telephony.outbound.dialer` - the dialer: pacing by trunk channels and free
  agents, attempts, retries, restart recovery, pause during a database outage;
* :mod:`~telephony.outbound.campaigns` - follow-up campaigns (numbers, CSV) and coverage;
* :mod:`~telephony.outbound.ports` - what the dialer needs from the engine and the IVR.
"""
