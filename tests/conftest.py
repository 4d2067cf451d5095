"""Shared fixtures for the server's tests.

`observe_errors` (autouse) fails any test during which something was
logged through `twisted.logger` at level error or critical: a traceback
the server swallowed is a bug even when the client saw nothing wrong.
Anchor: magic-wormhole's `observe_errors`.
"""

from __future__ import annotations

import gc
import random
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from twisted.internet import task
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from realm.process import StartupFailure
from realm.server import RealmServer, Settings


def pytest_sessionstart(session: pytest.Session) -> None:
    """Ctrl-C stops the suite once the test in progress is over, its
    servers and databases stopped.  Python's KeyboardInterrupt would be
    swallowed by the reactor the tests run in (pytest-twisted's), failing
    one test and going on with the rest.

    A second Ctrl-C is Python's KeyboardInterrupt, for a test stuck
    outside the reactor.  A handler is not inherited by the servers and
    clients the tests start (SIGINT ignored would be, as in a suite
    started by `make test &`): each can still be stopped with the Ctrl-C
    the tests send it."""

    def stop(signum: int, frame: Any) -> None:
        session.shouldstop = "interrupted (Ctrl-C)"
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second: Python's own
        sys.__stderr__.write("\nCtrl-C: the tests stop once the one in progress is over "
                             "(again: at once, if it is not waiting in the reactor)\n")

    signal.signal(signal.SIGINT, stop)


class ErrorObserver:
    """Collects the error and critical events logged during one test."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        level = event.get("log_level")
        if level in (LogLevel.error, LogLevel.critical) or event.get("isError"):
            self.errors.append(event)

    def describe(self) -> str:
        lines = []
        for event in self.errors:
            lines.append(formatEvent(event))
            failure = event.get("log_failure")
            if failure is not None:
                lines.append(failure.getTraceback())
        return "\n".join(lines)


@pytest.fixture(autouse=True)
def observe_errors() -> Iterator[ErrorObserver]:
    """Fail the test if an error was logged while it ran."""
    observer = ErrorObserver()
    globalLogPublisher.addObserver(observer)
    try:
        yield observer
        gc.collect()  # let unhandled errors in garbage Deferreds be logged
    finally:
        globalLogPublisher.removeObserver(observer)
    assert not observer.errors, "errors were logged:\n" + observer.describe()


@pytest.fixture(autouse=True)
def no_kept_stderr() -> Iterator[None]:
    """A server built in the test process (tap.makeService) keeps a copy
    of stderr until it runs (realm.process.StartupFailure); one that never
    ran lets it go here, so no later test writes to a stale one."""
    yield
    StartupFailure.let_stderr_go()


@pytest.fixture
def clock() -> task.Clock:
    return task.Clock()


ServerFactory = Callable[..., RealmServer]


@pytest.fixture
def server(clock: task.Clock) -> ServerFactory:
    """Build a `RealmServer` on the test's `task.Clock`, with a seeded
    random source; keyword arguments override the `Settings`."""

    def make(seed: int = 7, checker: Any = None, **settings: Any) -> RealmServer:
        return RealmServer(Settings(**settings), clock, checker=checker,
                           rng=random.Random(seed))

    return make


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    """Every event logged through `twisted.logger` during the test."""
    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    yield seen
    globalLogPublisher.removeObserver(seen.append)
