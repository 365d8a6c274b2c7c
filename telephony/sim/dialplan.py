"""The simulator's dialplan: the hotline "park and control" extension, plus 9998.

Context ``public`` (where SIP calls land) first runs the stock prefix
(``set outside_call=true``, ``export RFC2822_DATE=...``), as the captured switch did,
then the extension:

* 12345 and the merged hotlines 12315 12328 12329 12319 12393 12348: ``set hotline=<dest>``,
  ``set park_timeout=60``, ``set hold_music=tone_stream://%(400,200,425);loops=-1``, ``park``.
  ``api sim set hotline_park_timeout 60:NORMAL_TEMPORARY_FAILURE`` and ``api sim set
  hotline_hold_music local_stream://moh`` give the lab dialplan of the later captures
  (``consult_transfer``, ``eavesdrop_modes``).
* 12399, the lab number of the ``park_timer`` capture: ``set hotline=12399``,
  ``set park_timeout=10:NORMAL_TEMPORARY_FAILURE``, ``set hold_music=local_stream://moh``,
  ``park`` (the hotline extension with a 10 s park timer).
* 9998 (any context): ``answer``, ``park``.

Anything else has no route: the call is hung up with NO_ROUTE_DESTINATION. When the
dialplan runs out without parking, the channel hangs up ("executed the last dialplan
instruction").
"""

from __future__ import annotations

import time

from telephony.sim.apps import export_app, set_var_app
from telephony.sim.channel import Channel
from telephony.sim.switch import Switch, new_uuid

HOTLINES = ("12345", "12315", "12328", "12329", "12319", "12393", "12348")
HOLD_MUSIC = "tone_stream://%(400,200,425);loops=-1"
#: The park_timer capture's lab extension: (dest, park_timeout, hold_music).
LAB = ("12399", "10:NORMAL_TEMPORARY_FAILURE", "local_stream://moh")


def lookup(
    context: str, dest: str, now: float, settings: dict[str, str] | None = None
) -> list[tuple[str, str]] | None:
    """The applications for ``dest`` in ``context``; None when nothing matches.

    ``settings`` (the switch's ``sim set`` values) may override the hotlines'
    ``hotline_park_timeout`` and ``hotline_hold_music``.
    """
    if dest == "9998":
        return [("answer", ""), ("park", "")]
    if dest in HOTLINES or dest == LAB[0]:
        given = settings or {}
        timeout, music = (
            (given.get("hotline_park_timeout", "60"), given.get("hotline_hold_music", HOLD_MUSIC))
            if dest in HOTLINES
            else LAB[1:]
        )
        apps: list[tuple[str, str]] = []
        if context == "public":
            date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(now))
            apps += [("set", "outside_call=true"), ("export", f"RFC2822_DATE={date}")]
        return [
            *apps,
            ("set", f"hotline={dest}"),
            ("set", f"park_timeout={timeout}"),
            ("set", f"hold_music={music}"),
            ("park", ""),
        ]
    return None


async def run_dialplan(sw: Switch, ch: Channel) -> None:
    """Run ``ch``'s extension; dialplan apps are instantaneous up to ``park``."""
    apps = lookup(ch.profile.context, ch.profile.dest, sw.clock.now(), sw.settings)
    if apps is None:
        sw.hangup(ch, "NO_ROUTE_DESTINATION", "send_refuse")
        return
    if ch.profile.dest in HOTLINES or ch.profile.dest == LAB[0]:
        ch.set_var("DP_MATCH", f"ARRAY::{ch.profile.dest}|:{ch.profile.dest}")
    for app, arg in apps:
        if not ch.is_up:
            return
        if app == "park":
            sw.enter_park(ch, new_uuid())
            return
        app_uuid = new_uuid()
        sw.execute_event(ch, app, arg, app_uuid)
        if app == "set":
            set_var_app(sw, ch, arg)
        elif app == "export":
            export_app(sw, ch, arg)
        elif app == "answer" and ch.direction == "inbound":
            sw.answer_inbound(ch)
        sw.complete_event(ch, app, arg, app_uuid, "_none_")
    sw.hangup(ch, "NORMAL_CLEARING", "send_bye")
