"""Telnet commands, removed from a client's byte stream before lines are split.

PuTTY, `telnet` in telnet mode and MUD clients send option negotiation
on connect and may send commands at any time: `IAC` (255) and a command
byte, with an option byte after `WILL`/`WONT`/`DO`/`DONT`, or a
subnegotiation `IAC SB ... IAC SE`.  `TelnetFilter.feed` returns the
text around them, as if they had never been sent (a command may be cut
across packets), and the answers owed: realm offers no telnet option and
refuses each one asked for (`DO x` -> `WONT x`, `WILL x` -> `DONT x`),
once per option, so a client that speaks telnet first gets telnet back
and a client that does not never sees a telnet byte.  `IAC IAC` is a data
byte 255, and so is an `IAC` before a byte that is no command (below
236): both bytes stay in the text, which then fails the UTF-8 check, and
a line end after it still ends the line.  Once a client has spoken
telnet, `CR NUL` (telnet's bare carriage return) is read as `CR`.
"""

from __future__ import annotations

IAC, SB, SE = 255, 250, 240
FIRST_COMMAND = 236  # EOF (RFC 1184); every command byte is from here to 255
WILL, WONT, DO, DONT = 251, 252, 253, 254
_REFUSE = {WILL: DONT, DO: WONT}
_IAC = b"\xff"

# States between packets.
DATA, COMMAND, OPTION, SUB, SUB_IAC = range(5)


class TelnetFilter:
    """One connection's telnet state: what is half received, what was answered."""

    __slots__ = ("state", "spoken", "_verb", "_answered")

    def __init__(self) -> None:
        self.state = DATA
        self.spoken = False  # the client has sent a telnet command
        self._verb = 0
        self._answered: set[tuple[int, int]] = set()

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """(the text of `data` without telnet commands, the answers to send)."""
        if self.state == DATA and _IAC not in data:
            if self.spoken and b"\r\x00" in data:
                data = data.replace(b"\r\x00", b"\r")
            return data, b""
        self.spoken = True
        text: list[bytes] = []
        answers: list[bytes] = []
        at, end = 0, len(data)
        while at < end:
            state = self.state
            if state == DATA:
                found = data.find(_IAC, at)
                if found < 0:
                    text.append(data[at:])
                    break
                text.append(data[at:found])
                self.state = COMMAND
                at = found + 1
            elif state == SUB:
                found = data.find(_IAC, at)
                if found < 0:
                    break  # the rest is subnegotiation
                self.state = SUB_IAC
                at = found + 1
            else:
                byte = data[at]
                at += 1
                self._step(state, byte, text, answers)
        joined = b"".join(text)
        if b"\r\x00" in joined:
            joined = joined.replace(b"\r\x00", b"\r")
        return joined, b"".join(answers)

    def _step(self, state: int, byte: int, text: list[bytes], answers: list[bytes]) -> None:
        if state == COMMAND:
            if byte == IAC:
                text.append(_IAC)  # an escaped data byte 255
                self.state = DATA
            elif byte < FIRST_COMMAND:  # a stray 255 in the text, not a command
                text.append(bytes((IAC, byte)))
                self.state = DATA
            elif byte in (WILL, WONT, DO, DONT):
                self._verb = byte
                self.state = OPTION
            elif byte == SB:
                self.state = SUB
            else:
                self.state = DATA  # NOP, GA, AYT...: nothing to do
        elif state == OPTION:
            self.state = DATA
            refusal = _REFUSE.get(self._verb)
            if refusal is not None and (self._verb, byte) not in self._answered:
                self._answered.add((self._verb, byte))
                answers.append(bytes((IAC, refusal, byte)))
        elif state == SUB_IAC:
            self.state = DATA if byte == SE else SUB
