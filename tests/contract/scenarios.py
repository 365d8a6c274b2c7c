"""The call-center scenarios of ``shared/freeswitch/README.md``, expressed with ``api sim ...``.

In the real captures SIPp played the citizen and the agent phones; here the
simulator's scripted callers and phones do (``shared/API.md``):

* ``api sim phone EXT [answer_after_ms=N|never|reject]`` registers an agent phone;
* ``api sim call DEST CALLER [dtmf=DIGITS] [dtmf_delay_ms=N] [hangup_after_s=N]``.

Set-up steps are sent on the replayed connection before the real command
whose index they name: agent phones before the ``event plain`` subscription
(index 1; in the real captures they had registered before the controller
connected, so no ``sofia::register`` is expected), the citizen's call after it
(index 2).

Where the SIPp behaviour cannot be expressed, the closest form is chosen and
:attr:`Scenario.assumptions` says so (it is printed with every failure).
"""

from __future__ import annotations

from dataclasses import dataclass

from .compare import EventRef, Race, Timing
from .replay import ConnectionPlan, SetupStep

#: Simulated seconds per real second during the replay.
TIME_SCALE = 20.0

CALLER = "13800138000"
HOTLINE = "12345"
#: The park_timer capture's lab number (the simulator's dialplan has it: park_timeout=10).
LAB = "12399"
#: Simulated seconds a simulator event may lag its ideal moment (25 ms real at 20x).
SLOP = 0.5

_PARK = EventRef("CHANNEL_PARK")
_HANGUP = EventRef("CHANNEL_HANGUP")
_DTMF = EventRef("DTMF")
_MUSIC_DONE = EventRef("CHANNEL_EXECUTE_COMPLETE", app="playback")

PARK_TIMER_TIMING = (
    Timing("A", _PARK, _HANGUP, 9.0, 10.0 + SLOP, "A: released 10 s after the park"),
    Timing("A", _HANGUP, None, 0.0, SLOP, "A: the timer fires on a whole epoch second"),
    Timing("A", _DTMF, _MUSIC_DONE, 0.0, SLOP, "A: `*` stops the music at once"),
    Timing("B", _PARK, _HANGUP, 10.0, 60.0, "B: the music kept B past the deadline"),
    Timing("B", _MUSIC_DONE, _HANGUP, 0.0, SLOP, "B: released as soon as the music ends"),
    Timing("C", _PARK, _HANGUP, 9.0, 10.0 + SLOP, "C: released 10 s after the park"),
    Timing("C", _HANGUP, None, 0.0, SLOP, "C: the timer fires on a whole epoch second"),
    Timing("C", _MUSIC_DONE, _HANGUP, 3.0, 10.0, "C: not at the uuid_break, at the deadline"),
)


_CREATE = EventRef("CHANNEL_CREATE")

OUTBOUND_TIMING = (
    Timing(
        "C",
        _CREATE,
        _HANGUP,
        5.0,
        6.0 + SLOP,
        "C: NO_ANSWER when 6 whole epoch seconds have passed since the originate's second",
    ),
    Timing("C", _HANGUP, None, 0.0, SLOP, "C: the originate timeout fires on a whole second"),
)

#: The citizens SIPp played for ``outbound_dispositions`` (README k), by number.
OUTBOUND_CITIZENS = (
    # Rings 1 s, answers, presses 4 (2.66 s after the answer: after the 300 ms prompt).
    "13800138001 answer answer_after_ms=1000 dtmf=4 dtmf_delay_ms=2660",
    "13800138002 busy",
    "13800138003 no_answer",
    "13800138004 reject",
    "13800138005 not_found",
    # Answers after 1 s and hangs up 4 s later, during the 8 s prompt.
    "13800138006 answer answer_after_ms=1000 hangup_after_s=4",
)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One README scenario: its connections, in order, and what differs from the capture."""

    name: str
    connections: tuple[ConnectionPlan, ...]
    assumptions: str = ""


def _phones(*specs: str) -> tuple[SetupStep, ...]:
    return tuple(SetupStep(1, f"api sim phone {spec}") for spec in specs)


#: The lab dialplan of the later captures (consult_transfer, eavesdrop_modes): the hotline
#: extension with ``park_timeout=60:NORMAL_TEMPORARY_FAILURE`` and ``local_stream://moh``.
LAB_DIALPLAN = (
    SetupStep(1, "api sim set hotline_park_timeout 60:NORMAL_TEMPORARY_FAILURE"),
    SetupStep(1, "api sim set hotline_hold_music local_stream://moh"),
)


def _kill_race(leg: str, index: int) -> Race:
    """The peer's HANGUP_COMPLETE (``index`` in ``leg``) after ``uuid_kill`` of the caller."""
    return Race(
        leg,
        index,
        ("Channel-Call-UUID", "variable_call_uuid"),
        "`uuid_kill <A>` of the bridge originator: here A's UNBRIDGE (its bridge thread "
        "resets the peer's call_uuid) came before the peer's HANGUP_COMPLETE, in "
        "three_way_on_bridged_agent (the same kill) after it (call_uuid still A). The "
        "simulator keeps the order of the older captures.",
    )


def _call(*options: str) -> SetupStep:
    return SetupStep(2, " ".join(["api sim call", HOTLINE, CALLER, *options]))


SCENARIOS: dict[str, Scenario] = {
    "hotline_ivr_agent": Scenario(
        "hotline_ivr_agent",
        (
            ConnectionPlan(
                "hotline_ivr_agent",
                setup=(
                    *_phones("1001 answer_after_ms=1000", "1002 answer_after_ms=1000"),
                    _call(),
                    # The caller's digits, when the real ones came: `1` in the first
                    # play_and_get_digits, `5` in the survey's (after the prompt stopped).
                    SetupStep(5, "api sim dtmf {A} 1", at_event=("A", "DTMF", 0)),
                    SetupStep(17, "api sim dtmf {A} 5", at_event=("A", "DTMF", 1)),
                ),
            ),
        ),
        assumptions=(
            "SIPp sent `1` 1.6 s after the ACK and `5` 10 s after the unhold (then every 3 s "
            "until BYE). `sim call ... dtmf=` has one fixed interval, which cannot put `1` in "
            "the first play_and_get_digits and `5` in the survey's with the controller's real "
            "pauses, so each digit is sent with `api sim dtmf <A> D` (listed by `sim help`) "
            "once leg A has sent the events it had sent before that DTMF in the capture. "
            "The hold re-INVITEs have no sim equivalent (no ESL event depends on them)."
        ),
    ),
    "agent_no_answer": Scenario(
        "agent_no_answer",
        (
            ConnectionPlan(
                "agent_no_answer",
                setup=(
                    *_phones("1003 answer_after_ms=never", "1001 answer_after_ms=1000"),
                    _call("hangup_after_s=12"),
                ),
            ),
        ),
        assumptions="SIPp's BYE 12 s after the ACK is `hangup_after_s=12`.",
    ),
    "caller_abandons_in_queue": Scenario(
        "caller_abandons_in_queue",
        (
            ConnectionPlan(
                "caller_abandons_in_queue",
                setup=(_call("hangup_after_s=5"),),
            ),
        ),
        assumptions="SIPp's BYE 5 s after the ACK is `hangup_after_s=5`.",
    ),
    "three_way_and_transfer": Scenario(
        "three_way_and_transfer",
        (
            ConnectionPlan(
                "three_way_and_transfer",
                setup=(
                    *_phones("1001 answer_after_ms=1000", "1002 answer_after_ms=1000"),
                    _call(),
                ),
            ),
        ),
        assumptions="The caller never hangs up (the controller kills it), as SIPp did.",
    ),
    "registrations": Scenario(
        "registrations",
        (
            ConnectionPlan(
                "registrations",
                setup=(
                    # After the first (empty) `sofia status`, the three phones register.
                    SetupStep(3, "api sim phone 1001"),
                    SetupStep(3, "api sim phone 1002"),
                    SetupStep(3, "api sim phone 1003"),
                    # Their 8 s life ends: un-REGISTER.
                    SetupStep(8, "api sim unregister 1001"),
                    SetupStep(8, "api sim unregister 1002"),
                    SetupStep(8, "api sim unregister 1003"),
                    # 1003 registers with Expires: 10, is killed, and its registration expires.
                    SetupStep(9, "api sim phone 1003 expires=10"),
                    SetupStep(10, "api sim expire 1003", after_gap=True),
                ),
                skip_replies=(
                    (
                        5,
                        "`show registrations` ran 2 ms after 1003's sofia::register and listed "
                        "only 1001 and 1002 (`2 total.`), while `sofia status` just before "
                        "listed all three: sofia writes the core registrations table "
                        "asynchronously. A capture race, not a behaviour to copy.",
                    ),
                ),
            ),
        ),
        assumptions=(
            "SIPp phones with an 8 s life are `api sim phone EXT` then `api sim unregister "
            "EXT`; the phone registered with `Expires: 10` and SIGKILLed is `api sim phone "
            "1003 expires=10` then `api sim expire 1003` (both listed by `sim help`), sent "
            "right before the `sofia status` that followed the real sofia::expire (80 s after the "
            "kill). The real pauses "
            "are kept, scaled, so the `sofia status` 1 s after the expire is 1/20 s later."
        ),
    ),
    "unbridge_hangup_after_bridge_false": Scenario(
        "unbridge_hangup_after_bridge_false",
        (
            ConnectionPlan(
                "unbridge_hangup_after_bridge_false",
                setup=(*_phones("1001 answer_after_ms=1000"), _call()),
            ),
        ),
        assumptions="Beyond the brief's list. The caller waits for the far end, as SIPp did.",
    ),
    "three_way_on_bridged_agent": Scenario(
        "three_way_on_bridged_agent",
        (
            ConnectionPlan(
                "three_way_on_bridged_agent",
                setup=(*_phones("1001 answer_after_ms=1000"), _call()),
            ),
        ),
        assumptions="Beyond the brief's list. The controller kills the caller, as in the capture.",
    ),
    "consult_transfer": Scenario(
        "consult_transfer",
        (
            ConnectionPlan(
                "consult_transfer",
                setup=(
                    *LAB_DIALPLAN,
                    *_phones("1001 answer_after_ms=1000", "1002 answer_after_ms=1000"),
                    _call(),
                ),
                races=(_kill_race("C", 14),),
            ),
        ),
        assumptions=(
            "The caller never hangs up (the controller kills it), as SIPp did. The lab "
            "dialplan set park_timeout=60:NORMAL_TEMPORARY_FAILURE and hold_music="
            "local_stream://moh: `api sim set hotline_park_timeout` / `hotline_hold_music`."
        ),
    ),
    "eavesdrop_modes": Scenario(
        "eavesdrop_modes",
        (
            ConnectionPlan(
                "eavesdrop_modes",
                setup=(
                    *LAB_DIALPLAN,
                    *_phones("1001 answer_after_ms=1000", "1002 answer_after_ms=1000"),
                    _call(),
                ),
                races=(_kill_race("B", 9),),
            ),
        ),
        assumptions=(
            "The caller never hangs up (the controller kills it), as SIPp did; the lab "
            "dialplan as in consult_transfer. The supervisor's digits are the controller's "
            "own `uuid_recv_dtmf`, replayed as captured."
        ),
    ),
    "park_timer": Scenario(
        "park_timer",
        (
            ConnectionPlan(
                "park_timer",
                setup=(
                    SetupStep(2, f"api sim call {LAB} {CALLER}"),
                    SetupStep(4, f"api sim call {LAB} {CALLER}", at=0.47),
                    SetupStep(7, f"api sim call {LAB} {CALLER}", at=0.82),
                    SetupStep(9, "api sim dtmf {A} *", at=3.32),
                    SetupStep(9, "api sim dtmf {B} *", at=3.68),
                ),
                timing=PARK_TIMER_TIMING,
            ),
        ),
        assumptions=(
            "The lab dialplan (park_timeout=10:NORMAL_TEMPORARY_FAILURE, hold_music="
            "local_stream://moh) is the simulator's extension 12399. SIPp's three citizens "
            "are `api sim call 12399 ...` sent when the real INVITEs came (+0.1, +0.47, "
            "+0.82 s, scaled), their `*` are `api sim dtmf <leg> *` at +3.32 and +3.68 s. "
            "Timing rules (switch seconds, each also checked on the capture): "
            + "; ".join(t.why for t in PARK_TIMER_TIMING)
            + "."
        ),
    ),
    "outbound_dispositions": Scenario(
        "outbound_dispositions",
        (
            ConnectionPlan(
                "outbound_dispositions",
                setup=tuple(SetupStep(1, f"api sim citizen {spec}") for spec in OUTBOUND_CITIZENS),
                timing=OUTBOUND_TIMING,
            ),
        ),
        assumptions=(
            "SIPp's UAS answering for the gateway `carrier` (the simulator's default "
            "`gateways`) is one `api sim citizen NUMBER ...` per number, sent before the "
            "subscription: "
            + "; ".join(OUTBOUND_CITIZENS)
            + ". Timing rules (switch seconds, each also checked on the capture): "
            + "; ".join(t.why for t in OUTBOUND_TIMING)
            + "."
        ),
    ),
    "controller_restart": Scenario(
        "controller_restart",
        (
            ConnectionPlan(
                "controller_restart_conn1",
                setup=(*_phones("1001 answer_after_ms=1000"), _call()),
                drop_without_exit=True,
                end_delay=2.0,
            ),
            ConnectionPlan("controller_restart_conn2", connect_delay=2.0),
        ),
        assumptions=(
            "Connection 1 is aborted without `exit` after the bridge (2 s, scaled, after the "
            "last event); connection 2 connects 2 s (scaled) later and uses connection 1's legs. "
            "The real pauses (1 s between the `show channels` that still lists the destroyed "
            "channels and the empty one) are kept, scaled."
        ),
    ),
}
