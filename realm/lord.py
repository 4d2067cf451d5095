"""The Lord's driver: a `realm.client.RealmClient` fed by a keyboard.

`LordDriver` is what the front ends of `realm.console` talk to (`say` a
line, `leave` at the end of input, `stop` at Ctrl-C), and it shows the
server's lines on their `Screen`:

- Lines typed before the join are held and sent after it: the name (and
  a password) must go first.  End of input before the join leaves right
  after it; Ctrl-C (or SIGINT, SIGTERM) before the join hangs up at once.
- The greeting's request for a name and the request for the password are
  not shown: the client answers them.  Without `--password-file` or
  `REALM_PASSWORD`, a screen that can (a terminal) asks for the password
  with the echo hidden, and asks again after a wrong one; one that cannot
  (pipes) ends with one line saying how to give it.
- `done` fires with the `Ending`: well when the Lord left after joining,
  a failure otherwise (a refusal, a lost connection, an untrusted
  certificate, also when the input had already ended).
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from realm import wire
from realm.client import Ending, Player

#: Refusals after which a Lord who typed the password may type it again.
RETRY = ("wrong_password",)
ASK = "The Lord's password (not shown): "
AGAIN = "The Lord's password again (not shown): "
NO_PASSWORD = ("The server asks for the Lord's password: give it with "
               "--password-file or REALM_PASSWORD.")
#: What the Lord's screen does not show: the client answers it.
UNSHOWN = (wire.ASK_NAME.matches, wire.ASK_PASSWORD.matches)


class Screen(Protocol):
    """What the Lord prints to, and where a password may be typed."""

    def show(self, line: str) -> None: ...

    def ask_secret(self, prompt: str) -> Deferred[str | None] | None:
        """Ask for a secret with the echo hidden (None once given up), or
        None at once when this screen cannot."""

    def close(self) -> Deferred[None]:
        """Flush what is shown and let go of the terminal or pipe."""


class LordDriver(Player):
    """The Lord: lines from a keyboard, the server's lines to a `Screen`."""

    def __init__(self, clock: IReactorTime, where: str = "") -> None:
        super().__init__(clock, where)
        self.screen: Screen | None = None
        self.held: list[str] = []
        self._early: list[str] = []
        self._asking: Deferred[str | None] | None = None
        self.prompted = False

    def attach(self, screen: Screen) -> None:
        """Show lines on `screen` from now on, starting with those so far."""
        self.screen = screen
        for line in self._early:
            screen.show(line)
        self._early = []
        if self._asking is not None:
            self._ask()

    def heard(self, line: str) -> None:
        self.note(line)
        if any(unshown(line) for unshown in UNSHOWN):
            return
        if self.screen is None:
            self._early.append(line)
        else:
            self.screen.show(line)

    def joined(self, name: str) -> None:
        held, self.held = self.held, []
        for text in held:
            self.send(text)
        super().joined(name)

    def refused(self, line: str, key: str) -> str | None:
        if self.prompted and key in RETRY and not self.leaving:
            return wire.LORD  # ask for the password again
        self.fail(line, shown=True)
        return None

    def secret(self) -> Deferred[str | None] | None:
        self._asking = Deferred()
        if self.screen is not None:
            return self._ask()
        return self._asking  # asked once a screen is attached

    def _ask(self) -> Deferred[str | None] | None:
        assert self._asking is not None and self.screen is not None
        asking, self._asking = self._asking, None
        # Again after a wrong one: not a name, whatever the server's refusal says.
        answer = self.screen.ask_secret(AGAIN if self.prompted else ASK)
        if answer is None:
            self.fail(NO_PASSWORD)
            asking.callback(None)
            return None
        self.prompted = True

        def given(secret: str | None) -> None:
            if secret is None:
                self.fail("No password was given.")
            asking.callback(secret)

        answer.addCallback(given)
        return asking

    def say(self, text: str) -> None:
        """A line the Lord typed."""
        if self.leaving:
            return
        if text.strip() == wire.LEAVE:
            self.leave()
        elif self.is_joined:
            self.send(text)
        else:
            self.held.append(text)

    def leave(self, why: str = "left", at_once: bool = False) -> None:
        """End of input or `--leave`: say goodbye, with a grace.  Before the
        join it waits for the join, so the lines typed so far go first."""
        super().leave(why, at_once)

    def stop(self) -> None:
        """Ctrl-C, SIGINT, SIGTERM: leave, and before the join hang up at once."""
        self.leave(at_once=True)

    def ending_for(self, reason: Failure) -> Ending:
        ending = super().ending_for(reason)
        if not ending.failed and not self.leaving and ending.why != "the Lord has left":
            # The server ended the game (shutting down...): not the Lord's leaving.
            return Ending(f"The connection to the realm was lost: {ending.why}.",
                          failed=True)
        if ending.failed:
            return Ending(ending.why[0].upper() + ending.why[1:] + ".", failed=True)
        return ending
