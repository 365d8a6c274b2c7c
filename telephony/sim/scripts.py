"""Scripted citizens (``sim call``) and agent phones (``sim phone``).

A *phone* registers an extension (CUSTOM ``sofia::register``) and answers originated
calls after ``answer_after_ms`` of ringing, never (NO_ANSWER at ``originate_timeout``)
or rejects them (CALL_REJECTED). ``sim unregister`` sends ``sofia::unregister``;
``sim expire`` the ``sofia::expire`` that a phone that vanished causes.

A *caller* places a SIP call to a destination: the dialplan parks it; once answered it
sends its digits (RFC 2833 DTMF, one every ``dtmf_delay_ms``, first one
``dtmf_delay_ms`` after the answer) and hangs up (BYE: ``recv_bye``)
``hangup_after_s`` seconds after the answer. A caller whose call is not answered within
``hangup_after_s`` hangs up while ringing (ORIGINATOR_CANCEL, ``recv_cancel``).
Without ``hangup_after_s`` it waits for the far end.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from telephony.sim.captured import SOFIA_HEADERS
from telephony.sim.channel import Channel
from telephony.sim.headers import render
from telephony.sim.switch import Switch


@dataclass(slots=True)
class Phone:
    """A registered agent phone."""

    ext: str
    port: int
    answer_after_ms: int | None  # None: never answers
    reject: bool
    call_id: str
    expires: int = 3600
    registered_at: float = 0.0
    expired_at: float | None = None


#: A scripted citizen's answer to an outbound call -> (Hangup-Cause, SIP disposition) for
#: the refusals (mod_sofia sofia_glue_sip_cause_to_freeswitch: 486, 603, 404), or None.
CITIZEN_REFUSALS: dict[str, tuple[str, str] | None] = {
    "answer": None,
    "no_answer": None,
    "busy": ("USER_BUSY", "recv_refuse"),
    "reject": ("CALL_REJECTED", "recv_refuse"),
    "not_found": ("UNALLOCATED_NUMBER", "recv_refuse"),
}


@dataclass(slots=True)
class Citizen:
    """A citizen's phone reached through a gateway (``sofia/gateway/GW/NUMBER``)."""

    number: str
    behaviour: str = "answer"  # a key of CITIZEN_REFUSALS
    answer_after_ms: int = 1000
    dtmf: str = ""
    dtmf_delay_ms: int = 1000
    hangup_after_s: float | None = None


class Scripts:
    """The registry of simulated phones, and the factory of simulated callers."""

    def __init__(self, switch: Switch) -> None:
        self.switch = switch
        self.phones: dict[str, Phone] = {}
        #: Scripted citizens by number (``sim citizen``); others answer after 1 s.
        self.citizens: dict[str, Citizen] = {}
        #: Expired registrations ``sofia status`` still lists for a moment (as FreeSWITCH does).
        self.expired: dict[str, Phone] = {}
        self.calls_placed = 0

    # ------------------------------------------------------------------ phones

    def register(
        self, ext: str, behaviour: str = "answer_after_ms=1000", expires: int = 3600
    ) -> Phone:
        answer_after: int | None = 1000
        reject = False
        key, _, value = behaviour.partition("=")
        spec = value if key == "answer_after_ms" else behaviour
        if spec == "never":
            answer_after = None
        elif spec == "reject":
            reject = True
        elif spec:
            answer_after = int(spec)
        port = 5080 + int(ext[-2:]) if ext[-2:].isdigit() else 5080
        phone = Phone(
            ext=ext,
            port=port,
            answer_after_ms=answer_after,
            reject=reject,
            call_id=f"{random.randint(1, 99)}-{random.randint(10000, 99999)}@127.0.0.1",
            expires=expires,
            registered_at=self.switch.clock.now(),
        )
        self.phones[ext] = phone
        self._sofia("sofia::register", phone, str(expires))
        return phone

    def unregister(self, ext: str) -> bool:
        phone = self.phones.pop(ext, None)
        if phone is None:
            return False
        self._sofia("sofia::unregister", phone, "0")
        return True

    def expire(self, ext: str) -> bool:
        phone = self.phones.pop(ext, None)
        if phone is None:
            return False
        self._sofia("sofia::expire", phone, str(int(phone.registered_at) + phone.expires))
        phone.expired_at = self.switch.clock.now()
        self.expired[ext] = phone
        linger_ms = float(self.switch.settings["expire_linger_ms"])
        linger = self.switch.clock.real_seconds(linger_ms / 1000)
        asyncio.get_running_loop().call_later(linger, self._forget, phone)
        return True

    def _forget(self, phone: Phone) -> None:
        if self.expired.get(phone.ext) is phone:
            del self.expired[phone.ext]

    def listed(self) -> list[Phone]:
        """Phones ``sofia status ... reg`` lists: registered, and just expired."""
        return list(self.phones.values()) + list(self.expired.values())

    def in_database(self) -> list[Phone]:
        """Phones ``show registrations`` lists: its database is written a moment later."""
        now = self.switch.clock.now()
        lag = float(self.switch.settings["linger_ms"]) / 1000
        return [p for p in self.phones.values() if now - p.registered_at >= lag]

    def _sofia(self, subclass: str, phone: Phone, expires: str) -> None:
        tokens = {
            "ext": phone.ext,
            "port": str(phone.port),
            "call_id": phone.call_id,
            "expires": expires,
        }
        items = [(k, render(v, tokens, lambda _n: "0")) for k, v in SOFIA_HEADERS[subclass]]
        self.switch.fire("CUSTOM", subclass=subclass, extra=items)

    # ----------------------------------------------------------------- callers

    def call(
        self,
        dest: str,
        caller: str,
        *,
        dtmf: str = "",
        dtmf_delay_ms: int = 1000,
        hangup_after_s: float | None = None,
        caller_name: str | None = None,
    ) -> Channel:
        sw = self.switch
        ch = sw.new_inbound(dest, caller, caller_name=caller_name)
        self.calls_placed += 1
        sw.set_callstate(ch, "RINGING")
        sw.set_state(ch, "CS_ROUTING")
        sw.set_state(ch, "CS_EXECUTE")
        ch.move("route")
        assert sw.run_dialplan is not None
        sw.spawn(sw.run_dialplan(sw, ch), name=f"dialplan-{ch.uuid}")
        if dtmf or hangup_after_s is not None:
            sw.spawn(
                self._citizen(ch, dtmf, dtmf_delay_ms, hangup_after_s), name=f"caller-{ch.uuid}"
            )
        return ch

    async def calls_at_rate(
        self,
        count: int,
        rate: float,
        dest: str,
        caller_prefix: str,
        *,
        dtmf: str = "",
        dtmf_delay_ms: int = 1000,
        hangup_after_s: float | None = None,
    ) -> None:
        """Place ``count`` calls, ``rate`` per simulated second, on a fixed schedule."""
        clock = self.switch.clock
        start = clock.now()
        for n in range(count):
            due = start + n / rate
            if due > clock.now():
                await clock.sleep(due - clock.now())
            self.call(
                dest,
                f"{caller_prefix}{n:06d}",
                dtmf=dtmf,
                dtmf_delay_ms=dtmf_delay_ms,
                hangup_after_s=hangup_after_s,
            )

    def script_citizen(self, number: str, words: list[str], opts: dict[str, str]) -> Citizen:
        """``sim citizen NUMBER [answer|busy|no_answer|reject|not_found] [answer_after_ms=N]
        [dtmf=DIGITS] [dtmf_delay_ms=N] [hangup_after_s=N]``; ValueError when malformed."""
        behaviour = words[0] if words else "answer"
        if behaviour not in CITIZEN_REFUSALS:
            raise ValueError(f"unknown citizen behaviour {behaviour!r}")
        after = opts.get("hangup_after_s")
        citizen = Citizen(
            number,
            behaviour,
            answer_after_ms=int(opts.get("answer_after_ms", "1000")),
            dtmf=opts.get("dtmf", ""),
            dtmf_delay_ms=int(opts.get("dtmf_delay_ms", "1000")),
            hangup_after_s=float(after) if after is not None else None,
        )
        self.citizens[number] = citizen
        return citizen

    def citizen(self, number: str) -> Citizen:
        """The script for ``number`` (unscripted: answers after 1 s)."""
        return self.citizens.get(number) or Citizen(number)

    def answered_citizen(self, ch: Channel, citizen: Citizen) -> None:
        """The citizen answered: its keys and its hang-up follow (as a ``sim call`` caller's)."""
        self.switch.spawn(
            self._citizen(ch, citizen.dtmf, citizen.dtmf_delay_ms, citizen.hangup_after_s),
            name=f"citizen-{ch.uuid}",
        )

    async def _citizen(
        self, ch: Channel, dtmf: str, delay_ms: int, hangup_after_s: float | None
    ) -> None:
        sw = self.switch
        clock = sw.clock
        loop_wait = hangup_after_s
        if not await _wait_event(sw, ch, loop_wait):
            if ch.is_up:
                sw.hangup(ch, "ORIGINATOR_CANCEL", "recv_cancel")
            return
        answered_at = clock.now()
        for digit in dtmf:
            await clock.sleep(delay_ms / 1000)
            if not ch.is_up:
                return
            sw.dtmf(ch, digit)
        if hangup_after_s is not None:
            await clock.sleep(hangup_after_s - (clock.now() - answered_at))
            if ch.is_up:
                sw.hangup(ch, "NORMAL_CLEARING", "recv_bye")


async def _wait_event(sw: Switch, ch: Channel, seconds: float | None) -> bool:
    """Wait for the answer (or the hangup); False on timeout or hangup."""
    import asyncio

    waiters = {
        asyncio.ensure_future(ch.answered_evt.wait()),
        asyncio.ensure_future(ch.hungup.wait()),
    }
    try:
        timeout = None if seconds is None else sw.clock.real_seconds(seconds)
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    return ch.answered_evt.is_set() and ch.is_up
