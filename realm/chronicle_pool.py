"""The chronicle's adbapi pools: connections that fail quietly, failures
carried back as results, and threads that a database which hangs cannot
keep the process alive with.

The pool's threads are daemons.  A stop that waited its fill for a hung
database (`realm.chronicle`) lets the pool go (`Pool.let_go`) instead of
closing it, which would join a thread that may never come back.
"""

from __future__ import annotations

import threading
from typing import Any

from twisted.enterprise import adbapi


class Failed:
    """An exception from a pool thread, carried back as a result (adbapi
    would roll back and log it on our behalf)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class PoolConnection:
    """One pool thread's database connection, as adbapi's `connectionFactory`.

    adbapi's own wrapper, when its connection dies, logs "Rollback failed"
    at error level and keeps the dead connection with its thread unless
    `cp_reconnect` is on (and then logs).  For the chronicle a lost
    database is an expected failure that the caller reports; this wrapper
    uses only the pool's public `connect()`/`disconnect()`: it connects on
    first use, forgets a connection that failed, and never logs.
    """

    def __init__(self, pool: adbapi.ConnectionPool) -> None:
        self.pool = pool
        self.raw: Any = None

    @property
    def lost(self) -> bool:
        return self.raw is None

    def reconnect(self) -> None:
        self.drop()
        self.raw = self.pool.connect()

    def drop(self) -> None:
        raw, self.raw = self.raw, None
        if raw is not None:
            self.pool.disconnect(raw)

    def cursor(self) -> Any:
        if self.raw is None:
            self.raw = self.pool.connect()
        return self.raw.cursor()

    def commit(self) -> None:
        if self.raw is not None:
            self.raw.commit()

    def rollback(self) -> None:
        if self.raw is not None:
            try:
                self.raw.rollback()
            except Exception:  # a dead connection: the next use connects afresh
                self.drop()

    def close(self) -> None:
        """adbapi asks each call; the pool keeps the connection for its thread."""

    def __getattr__(self, name: str) -> Any:
        if self.raw is None:
            raise AttributeError(name)
        return getattr(self.raw, name)


class _Daemon(threading.Thread):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, daemon=True, **kwargs)


class Pool(adbapi.ConnectionPool):
    """An adbapi pool of `PoolConnection`s, whose threads are daemons."""

    connectionFactory = PoolConnection  # type: ignore[assignment]  # the same interface

    def __init__(self, *args: Any, cp_reactor: Any = None, **kwargs: Any) -> None:
        if cp_reactor is None:
            from twisted.internet import reactor as cp_reactor
        self._triggers = cp_reactor
        super().__init__(*args, cp_reactor=cp_reactor, **kwargs)

    def start(self) -> None:  # at once, in __init__, when the reactor runs
        self.threadpool.threadFactory = _Daemon
        super().start()

    def let_go(self) -> None:
        """Give the pool up without waiting for its threads, as `close()`
        would: one may wait on a hung database for ever.  They are
        daemons, so the process can still end."""
        if self.shutdownID is not None:  # the reactor's stop would join them
            self._triggers.removeSystemEventTrigger(self.shutdownID)
            self.shutdownID = None
