"""Table-driven state machines: a table of (state, event) -> (state, effects) and one function.

Every machine of the domain (call, leg, agent, queue entry, callback) is a
:class:`Machine`: a mapping from ``(state, event)`` to a :class:`Rule` that
names the next state and the effects to carry out. :meth:`Machine.apply`
is the only way to move; a pair that is not in the table is an illegal
transition, raised as :class:`IllegalTransition` and logged, never silently
ignored. Every legal move is logged as ``from -> event -> to`` with the
subject's id (at debug level). Time is an argument and timers are effects, so the machines
are tested without sleeping.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

S = TypeVar("S", bound=Enum)
E = TypeVar("E", bound=Enum)
F = TypeVar("F")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rule(Generic[S, F]):
    """Where an event leads, and what must be done on the way."""

    target: S
    effects: tuple[F, ...] = ()


class IllegalTransition(Exception):
    """An event that the table does not allow in the current state."""

    def __init__(self, machine: str, subject: str, state: Enum, event: Enum) -> None:
        super().__init__(f"{machine} {subject}: {event.value} not allowed in {state.value}")
        self.state = state
        self.event = event


class Machine(Generic[S, E, F]):
    """One state machine's table, and the function that applies it."""

    def __init__(self, name: str, table: Mapping[tuple[S, E], Rule[S, F]]) -> None:
        self.name = name
        self.table = dict(table)

    def allows(self, state: S, event: E) -> bool:
        return (state, event) in self.table

    def apply(self, subject: str, state: S, event: E) -> Rule[S, F]:
        """The rule for ``event`` in ``state``; raises :class:`IllegalTransition` if none."""
        rule = self.table.get((state, event))
        if rule is None:
            log.warning(
                "illegal transition rejected",
                extra={
                    "machine": self.name,
                    "subject": subject,
                    "state": state.value,
                    "event": event.value,
                },
            )
            raise IllegalTransition(self.name, subject, state, event)
        log.debug(  # every move of every call: debug (a call's one INFO line is its end)
            "%s -> %s -> %s",
            state.value,
            event.value,
            rule.target.value,
            extra={"machine": self.name, "subject": subject},
        )
        return rule
