"""Every transport test runs on both wires: the loop's own socket and greenswitch's thread.

``EslConnection``'s default wire is swapped for the test (``telephony.esl.transport.DEFAULT_IO``);
a test about one wire only (the gevent thread, the loop's reading) is marked
``@pytest.mark.wire("greenswitch")`` or ``("loop")``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from telephony.esl import transport

_TRANSPORT_MODULES = {"test_transport.py", "test_liveness_and_bounds.py"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.path.name not in _TRANSPORT_MODULES:
        return
    only = metafunc.definition.get_closest_marker("wire")
    wires = list(only.args) if only is not None else ["loop", "greenswitch"]
    metafunc.parametrize("esl_io", wires, indirect=True)


@pytest.fixture(autouse=True)
def esl_io(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The wire of this test run (the default one where the module is not parametrized)."""
    wire = getattr(request, "param", transport.DEFAULT_IO)
    monkeypatch.setattr(transport, "DEFAULT_IO", wire)
    yield wire
