"""Wrong Lord passwords: how long an address, and the Lord's account as a
whole, must wait before its next password is even checked.

The rule (realm.guard.Backoff): an address may send `MAX_GUESSES` wrong
passwords freely, then waits 1 s, 2, 4 ... up to 5 minutes before each
next one is checked; the Lord's account as a whole the same after ten
times as many from anywhere, up to a minute.  A right password clears
both.

`Guesses` counts in this process.  With `--cluster`, `SharedGuesses`
counts in Redis too, by Redis's clock, so that an address guessing on
every process of the service waits as if there were one: while Redis
answers its count is the one that holds; when Redis cannot be reached,
the process's own (what it saw itself) does.  Keys:

    realm:guess:ADDRESS   hash {n, until}: the address's wrong passwords,
                          and when (ms) its wait ends; expires once the
                          wait is long past (`cap` after it ends)
    realm:guess:          the same for the Lord's account as a whole
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.python.failure import Failure

from realm.guard import Backoff
from realm.redis import NOW, PREFIX

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from realm.redis import RedisLink

#: Wrong passwords an address may send before it must wait.
MAX_GUESSES = 3
#: (free failures, first wait, longest wait): per address, and for the account.
ADDRESS_RULE = (MAX_GUESSES, 1.0, 300.0)
ACCOUNT_RULE = (10 * MAX_GUESSES, 0.5, 60.0)
ACCOUNT = ""  # the key of the Lord's account as a whole
T = TypeVar("T")


def key(address: str) -> str:
    return f"{PREFIX}guess:{address}"


class Guesses:
    """Wrong passwords counted in this process."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._address = Backoff(*ADDRESS_RULE)
        self._account = Backoff(*ACCOUNT_RULE)
        #: Each address's passwords in the order they came, the first being checked.
        self._turns: dict[str, deque[Deferred[None]]] = {}
        self._starting: set[str] = set()  # addresses whose turns `_next` is starting

    def in_turn(self, address: str, check: Callable[[], Deferred[T]]) -> Deferred[T | None]:
        """`check()` once every earlier password from `address` has been
        answered, and what it answers.  Checked side by side, sixty passwords
        sent at once on sixty connections would all be held the same wait,
        and checked together when it ends.  Cancelled while it waits its
        turn (its connection gone), it leaves the line and answers None."""
        turns = self._turns.setdefault(address, deque())
        turn: Deferred[None] = Deferred(lambda d: self._done(address, d))
        turns.append(turn)

        def done(result: T | Failure) -> T | Failure | None:
            self._done(address, turn)
            if isinstance(result, Failure) and result.check(CancelledError):
                return None
            return result

        answer = turn.addCallback(lambda _: check()).addBoth(done)
        self._next(address)
        return answer  # type: ignore[return-value]

    def waiting(self, address: str) -> int:
        """How many of `address`'s passwords are in line (the first being checked)."""
        return len(self._turns.get(address, ()))

    def _done(self, address: str, turn: Deferred[None]) -> None:
        """`turn` is answered (or cancelled): the next one's turn comes."""
        turns = self._turns.get(address)
        if turns is None or turn not in turns:
            return
        turns.remove(turn)
        if not turns:
            del self._turns[address]
        self._next(address)

    def _next(self, address: str) -> None:
        """Start the first turn of `address`'s line, if it has not started.
        One answered at once (a checker in memory) starts the next here, in
        this loop, not inside its own callbacks: a long line of those would
        nest as deep as it is long."""
        if address in self._starting:
            return  # the loop below, further up the stack, goes on
        self._starting.add(address)
        try:
            while (turns := self._turns.get(address)) and not turns[0].called:
                turns[0].callback(None)
        finally:
            self._starting.discard(address)

    def wait(self, address: str) -> Deferred[float]:
        """Seconds `address` must wait before its next password is checked."""
        return succeed(self._wait_here(address))

    def wrong(self, address: str) -> Deferred[float]:
        """Count a wrong password from `address`; how long it must now wait."""
        return succeed(self._wrong_here(address))

    def right(self, address: str) -> None:
        self._address.succeeded(address)
        self._account.succeeded(ACCOUNT)

    def _wait_here(self, address: str) -> float:
        now = self.clock.seconds()
        return max(self._address.wait(address, now), self._account.wait(ACCOUNT, now))

    def _wrong_here(self, address: str) -> float:
        now = self.clock.seconds()
        return max(self._address.failed(address, now), self._account.failed(ACCOUNT, now))


# KEYS: the address's key, the account's; answers the longer wait, in ms.
WAIT = NOW + """
local wait = 0
for _, k in ipairs(KEYS) do
  local ends = tonumber(redis.call('HGET', k, 'until') or 0)
  wait = math.max(wait, ends - now)
end
return wait
"""

# KEYS as WAIT; ARGV: free, base ms, cap ms for the address, then for the
# account.  Counts one failure in each; answers the longer wait, in ms.
WRONG = NOW + """
local wait = 0
for i, k in ipairs(KEYS) do
  local free, base, cap = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local n = redis.call('HINCRBY', k, 'n', 1)
  local this = 0
  if n >= free then this = math.min(cap, base * 2 ^ (n - free)) end
  this = math.floor(this)
  redis.call('HSET', k, 'until', now + this)
  redis.call('PEXPIRE', k, this + cap)
  wait = math.max(wait, this)
end
return wait
"""


def in_ms(rule: tuple[int, float, float]) -> list[Any]:
    """A rule as `WRONG` takes it: free failures, first and longest wait in ms."""
    free, base, cap = rule
    return [free, int(base * 1000), int(cap * 1000)]


class SharedGuesses(Guesses):
    """Wrong passwords counted in Redis for every process, and here."""

    def __init__(self, clock: IReactorTime, redis: RedisLink) -> None:
        super().__init__(clock)
        self.redis = redis

    def wait(self, address: str) -> Deferred[float]:
        shared = self.redis.script(WAIT, [key(address), key(ACCOUNT)], [])
        return self._or(shared, lambda: self._wait_here(address))

    def wrong(self, address: str) -> Deferred[float]:
        here = self._wrong_here(address)  # counted here whatever Redis says
        shared = self.redis.script(
            WRONG, [key(address), key(ACCOUNT)], [*in_ms(ADDRESS_RULE), *in_ms(ACCOUNT_RULE)])
        return self._or(shared, lambda: here)

    def right(self, address: str) -> None:
        super().right(address)
        self.redis.call("DEL", key(address), key(ACCOUNT)).addErrback(lambda _: None)

    @staticmethod
    def _or(shared: Deferred[Any], here: Callable[[], float]) -> Deferred[float]:
        """The service's wait, in seconds; this process's own when Redis
        cannot answer."""
        return shared.addCallbacks(lambda ms: int(ms) / 1000, lambda _: here())
