"""The client protocol and its drivers, in memory: StringTransport and iosim.

No sockets and no wall clock: bots think on a `task.Clock`, and the last
tests pair real clients with the real server through `twisted.test.iosim`.
"""

from __future__ import annotations

import random

import pytest
from twisted.conch.insults.helper import TerminalBuffer
from twisted.conch.insults.insults import ClientProtocol, ServerProtocol
from twisted.internet import task
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim

from realm import lore
from realm.bot import Bot, NamePool, Temper
from realm.cli import Options, bot_names
from realm.client import BotDriver, RealmClient
from realm.console import (
    LEAVE_GRACE,
    Lord,
    LordPipe,
    LordTerminal,
    colour_wanted,
    kind,
    render,
)
from realm.protocol import RealmFactory
from realm.server import RealmServer, Settings

GONE = Failure(ConnectionDone())


class TCPTransport(StringTransport):
    """A StringTransport that remembers TCP_NODELAY."""

    no_delay = False

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.no_delay = enabled


def sent(transport: StringTransport) -> list[str]:
    return transport.value().decode().splitlines()


def feed(client: RealmClient, *lines: str) -> None:
    for line in lines:
        client.dataReceived(line.encode() + b"\r\n")


def bot_client(clock: task.Clock, name: str = "Arya", think: float = 0.0,
               pool: NamePool | None = None, realm: str | None = None,
               **temper: int) -> tuple[BotDriver, RealmClient, TCPTransport]:
    driver = BotDriver(Bot(random.Random(3), Temper(**temper)), clock, think, pool)
    client = RealmClient(driver, name, realm)
    transport = TCPTransport()
    client.makeConnection(transport)
    return driver, client, transport


def lord_client(clock: task.Clock, password: str | None = None
                ) -> tuple[Lord, RealmClient, TCPTransport, list[str]]:
    lord = Lord(clock)
    shown: list[str] = []

    class Screen:
        def show(self, line: str) -> None:
            shown.append(line)

        def close(self) -> Deferred[None]:
            return succeed(None)

    client = RealmClient(lord, "Lord", None, password)
    transport = TCPTransport()
    client.makeConnection(transport)
    lord.attach(Screen())
    return lord, client, transport, shown


# -- joining -----------------------------------------------------------------

def test_sends_its_name_at_once_without_nagle(clock: task.Clock) -> None:
    _, _, transport = bot_client(clock, realm="north")
    assert sent(transport) == ["Arya@north"]
    assert transport.no_delay


def test_a_taken_name_is_drawn_again(clock: task.Clock) -> None:
    pool = NamePool(random.Random(1), ("Bran", "Sansa"))
    driver, client, transport = bot_client(clock, pool=pool)
    for _ in range(2):
        feed(client, "*** Error: The name is taken in the realm 'westeros'; choose another.")
    assert sent(transport)[0] == "Arya"
    assert sorted(sent(transport)[1:]) == ["Bran", "Sansa"]
    last = sent(transport)[-1]
    feed(client, f"*** {last} has entered the realm (2/5)")
    assert client.phase == "playing" and driver.name == last


def test_a_taken_given_name_ends_the_bot(clock: task.Clock) -> None:
    driver, client, transport = bot_client(clock)
    feed(client, "*** Error: The name Arya is taken in the realm 'westeros'; choose another.")
    assert transport.disconnecting
    client.connectionLost(GONE)
    assert "taken" in str(driver.done.result)


def test_no_name_left_ends_the_bot(clock: task.Clock) -> None:
    driver, client, transport = bot_client(clock, pool=NamePool(random.Random(1), ()))
    feed(client, "*** Error: The name Arya is taken in the realm 'westeros'; choose another.")
    assert transport.disconnecting


def test_arrival_of_others_is_not_ours(clock: task.Clock) -> None:
    _, client, _ = bot_client(clock, name="grey-worm")
    feed(client, "*** Hail, traveller!", "*** Arya has entered the realm (1/5)")
    assert client.phase == "joining"
    feed(client, "*** Grey-worm has entered the realm (2/5)")
    assert client.phase == "playing"


def test_bot_names() -> None:
    config = Options()
    config.parseOptions(["--bot", "--name", "Hodor", "--count", "3"])
    assert bot_names(config, None) == ["Hodor", "Hodor2", "Hodor3"]
    config = Options()
    config.parseOptions(["--bot", "--count", "4"])
    names = bot_names(config, NamePool(random.Random(0)))
    assert len(set(names)) == 4 and set(names) <= set(lore.NAMES)


@pytest.mark.parametrize("argv", [[], ["--lord", "--bot"], ["--lord", "--count", "2"],
                                  ["--bot", "--count", "0"], ["--bot", "--loyalty", "0"],
                                  ["--bot", "--think", "-1"],
                                  ["--lord", "--password-file", "/nonexistent"]])
def test_bad_options(argv: list[str]) -> None:
    from twisted.python.usage import UsageError

    with pytest.raises(UsageError):
        Options().parseOptions(argv)


def test_password_from_file_or_environment(tmp_path: object, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    import pathlib

    secret = pathlib.Path(str(tmp_path)) / "pw"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("REALM_PASSWORD", "fromenv")
    config = Options()
    config.parseOptions(["--lord", "--password-file", str(secret)])
    assert config["password"] == "s3cret"
    config = Options()
    config.parseOptions(["--lord"])
    assert config["password"] == "fromenv"


# -- bots --------------------------------------------------------------------

def test_bot_answers_each_lord_line_once_after_thinking(clock: task.Clock) -> None:
    driver, client, transport = bot_client(clock, think=1.0)
    feed(client, "*** Arya has entered the realm (1/5)")
    transport.clear()
    feed(client, "Lord: we eat", "Bran: I eat too", "*** Bran has left the realm (1/5)")
    assert transport.value() == b""
    clock.advance(2.0)
    [reply] = sent(transport)
    assert reply in {t.format(word="eat") for t in lore.APPROVAL}
    clock.advance(10)
    assert len(sent(transport)) == 1


def test_bot_replies_keep_their_order(clock: task.Clock) -> None:
    driver, client, transport = bot_client(clock, think=1.0)
    feed(client, "*** Arya has entered the realm (1/5)")
    transport.clear()
    feed(client, "Lord: eat", "Lord: ride", "Lord: sail", "Lord: pray")
    clock.pump([0.1] * 20)
    words = [line.split("?")[0].split("!")[0].split(",")[0] for line in sent(transport)]
    assert words == ["eat", "ride", "sail", "pray"]


def test_a_bot_that_deserts_leaves_cleanly(clock: task.Clock) -> None:
    driver, client, transport = bot_client(clock, loyalty=1)
    feed(client, "*** Arya has entered the realm (1/5)")
    transport.clear()
    feed(client, "Lord: dance")
    farewell, leave = sent(transport)
    assert farewell in lore.DESERTION and leave == "--leave"
    feed(client, "Lord: dance", "*** Farewell, Arya.")
    assert len(sent(transport)) == 2
    client.connectionLost(GONE)
    assert driver.done.result is None and driver.ending == "deserted"


@pytest.mark.parametrize("told", ["*** You have been dismissed by the Lord. Farewell.",
                                  "*** Arya, the Lord has dismissed thee."])
def test_a_dismissed_bot_ends_cleanly(clock: task.Clock, told: str) -> None:
    driver, client, _ = bot_client(clock)
    feed(client, "*** Arya has entered the realm (1/5)", told)
    client.connectionLost(GONE)
    assert driver.done.result is None


def test_another_dismissal_then_a_lost_connection_is_a_failure(clock: task.Clock) -> None:
    driver, client, _ = bot_client(clock)
    feed(client, "*** Arya has entered the realm (1/5)",
         "*** Bran has been dismissed by the Lord (3/5)")
    client.connectionLost(GONE)
    assert "lost" in str(driver.done.result)


def test_the_lords_leaving_ends_a_bot_cleanly(clock: task.Clock) -> None:
    driver, client, _ = bot_client(clock, think=1.0)
    feed(client, "*** Arya has entered the realm (1/5)", "Lord: eat",
         "*** The Lord has left the realm. The game is over.")
    client.connectionLost(GONE)
    assert driver.done.result is None
    assert not clock.getDelayedCalls()


def test_a_server_shutting_down_ends_a_bot_cleanly(clock: task.Clock) -> None:
    driver, client, _ = bot_client(clock)
    feed(client, "*** Arya has entered the realm (1/5)",
         "*** The server is shutting down. Farewell!")
    client.connectionLost(GONE)
    assert driver.done.result is None


def test_a_stopped_bot_leaves_and_is_cut_off_after_a_grace(clock: task.Clock) -> None:
    driver, client, transport = bot_client(clock)
    feed(client, "*** Arya has entered the realm (1/5)")
    transport.clear()
    driver.leave("stopped")
    assert sent(transport) == ["--leave"]
    clock.advance(LEAVE_GRACE)
    assert transport.disconnecting


# -- the Lord ----------------------------------------------------------------

def test_lord_holds_lines_until_joined(clock: task.Clock) -> None:
    lord, client, transport, shown = lord_client(clock)
    lord.say("eat")
    assert sent(transport) == ["Lord"]
    feed(client, "*** Hail, traveller!", "*** Lord has entered the realm (1/5)")
    assert sent(transport) == ["Lord", "eat"]
    assert shown == ["*** Hail, traveller!", "*** Lord has entered the realm (1/5)"]


def test_lord_answers_the_password_request(clock: task.Clock) -> None:
    lord, client, transport, _ = lord_client(clock, password="s3cret")
    lord.say("hello")
    feed(client, "*** This realm's Lord must prove it: send the Lord's password.")
    feed(client, "*** Lord has entered the realm (1/5)")
    assert sent(transport) == ["Lord", "s3cret", "hello"]


def test_lord_without_a_password_says_how_to_give_one(clock: task.Clock) -> None:
    lord, client, transport, _ = lord_client(clock)
    feed(client, "*** This realm's Lord must prove it: send the Lord's password.")
    assert sent(transport) == ["Lord"] and transport.disconnecting
    client.connectionLost(GONE)
    assert lord.done.result == 1 and "REALM_PASSWORD" in lord.why


@pytest.mark.parametrize("typed", [[], ["hi", "--leave"]])
def test_a_second_lord_is_refused(clock: task.Clock, typed: list[str]) -> None:
    lord, client, transport, shown = lord_client(clock)
    for text in typed:  # end of input before the refusal: still a failure
        lord.say(text)
    feed(client, "*** Error: The realm 'westeros' already has a Lord; try another.")
    assert transport.disconnecting
    client.connectionLost(GONE)
    assert lord.done.result == 1 and lord.why == ""  # the error is on screen
    assert shown[0].startswith("*** Error: ")


@pytest.mark.parametrize("how", ["eof", "typed"])
def test_lord_leaves_with_exit_code_zero(clock: task.Clock, how: str) -> None:
    lord, client, transport, shown = lord_client(clock)
    feed(client, "*** Lord has entered the realm (1/5)")
    lord.leave() if how == "eof" else lord.say("--leave")
    lord.say("too late")
    assert sent(transport) == ["Lord", "--leave"]
    feed(client, "*** The Lord has left the realm. The game is over.")
    client.connectionLost(GONE)
    assert lord.done.result == 0
    assert shown[-1] == "*** The Lord has left the realm. The game is over."
    assert not clock.getDelayedCalls()


def test_lord_leaving_before_joining_leaves_after_joining(clock: task.Clock) -> None:
    lord, client, transport, _ = lord_client(clock)
    lord.say("eat")
    lord.leave()
    feed(client, "*** Lord has entered the realm (1/5)")
    assert sent(transport) == ["Lord", "eat", "--leave"]


def test_a_silent_server_is_cut_off_after_leaving(clock: task.Clock) -> None:
    lord, client, transport, _ = lord_client(clock)
    feed(client, "*** Lord has entered the realm (1/5)")
    lord.leave()
    clock.advance(LEAVE_GRACE)
    assert transport.disconnecting


def test_lord_losing_the_connection_exits_nonzero(clock: task.Clock) -> None:
    lord, client, _, _ = lord_client(clock)
    feed(client, "*** Lord has entered the realm (1/5)")
    client.connectionLost(GONE)
    assert lord.done.result == 1 and "lost" in lord.why


# -- what the Lord sees ------------------------------------------------------

@pytest.mark.parametrize(("line", "expected"), [
    ("*** Error: no", "error"), ("*** [New Event] x 1 a or 2 b?", "event"),
    ("*** Arya has entered the realm (1/5)", "system"), ("Arya: hi", "chat")])
def test_kinds_of_lines(line: str, expected: str) -> None:
    assert kind(line) == expected


def test_render_without_colour_is_the_line() -> None:
    for line in ["*** Error: no", "Arya: hi", "*** [New Event] x"]:
        assert render(line, colour=False) == line
        assert render(line, colour=False, own=True) == line


def test_render_colours_each_kind_and_each_member_apart() -> None:
    looks = {render(line, colour=True).split("m")[0] for line in
             ["*** Error: no", "*** [New Event] x", "*** joined"]}
    assert len(looks) == 3
    assert render("You: eat", colour=True, own=True) not in {
        render(f"{name}: eat", colour=True) for name in lore.NAMES}
    members = {render(f"{name}: hi", colour=True).split("m")[0] for name in lore.NAMES}
    assert len(members) > 4
    assert render("Arya: hi", True) == render("Arya: hi", True)
    assert all(render(x, True).endswith("\x1b[0m") for x in ["Arya: x", "*** y"])


@pytest.mark.parametrize(("env", "wanted"), [({}, True), ({"NO_COLOR": "1"}, False),
                                             ({"NO_COLOR": ""}, True),
                                             ({"TERM": "dumb"}, False)])
def test_no_color(env: dict[str, str], wanted: bool) -> None:
    assert colour_wanted(env) is wanted


def test_pipe_front_end_plain_lines_and_end_of_input(clock: task.Clock) -> None:
    lord, client, transport, _ = lord_client(clock)
    pipe = LordPipe(lord)
    out = StringTransport()
    pipe.makeConnection(out)
    lord.attach(pipe)
    feed(client, "*** Lord has entered the realm (1/5)", "Arya: hi")
    assert out.value() == b"*** Lord has entered the realm (1/5)\nArya: hi\n"
    pipe.dataReceived(b"we ride\r\n\n  \nsail\n")
    assert sent(transport) == ["Lord", "we ride", "sail"]
    pipe.readConnectionLost()
    assert sent(transport)[-1] == "--leave"
    gone = pipe.close()
    assert out.disconnecting and not gone.called  # flushing first
    pipe.connectionLost()
    assert gone.called


class Screen:
    """A terminal screen in memory: the Lord's terminal writes to it."""

    def __init__(self, lord: Lord, colour: bool = False) -> None:
        self.buffer = TerminalBuffer()
        parser = ClientProtocol(lambda: self.buffer)
        parser.makeConnection(StringTransport())
        self.raw = b""

        screen = self

        class Wire(StringTransport):
            def write(self, data: bytes) -> None:
                screen.raw += data
                parser.dataReceived(data)

        self.server = ServerProtocol(LordTerminal, lord, colour)
        self.server.makeConnection(Wire())
        self.terminal: LordTerminal = self.server.terminalProtocol  # type: ignore[assignment]

    def type(self, keys: bytes) -> None:
        self.server.dataReceived(keys)

    def rows(self) -> list[str]:
        return [row.rstrip() for row in bytes(self.buffer).decode().split("\n") if row.strip()]


def terminal(clock: task.Clock, colour: bool = False
             ) -> tuple[Screen, RealmClient, TCPTransport]:
    """A Lord on a terminal screen, joined."""
    lord, client, transport, _ = lord_client(clock)
    screen = Screen(lord, colour=colour)
    lord.attach(screen.terminal)
    feed(client, "*** Lord has entered the realm (1/5)")
    return screen, client, transport


def test_terminal_prompt_survives_incoming_lines(clock: task.Clock) -> None:
    lord, client, transport, _ = lord_client(clock)
    screen = Screen(lord)
    lord.attach(screen.terminal)
    assert screen.rows() == ["You:"]
    screen.type(b"we sh")
    feed(client, "*** Lord has entered the realm (1/5)", "Arya: hi")
    assert screen.rows() == ["*** Lord has entered the realm (1/5)", "Arya: hi", "You: we sh"]
    screen.type(b"all eat\r")
    feed(client, "Bran: eat? Proposal accepted!")
    assert screen.rows() == ["*** Lord has entered the realm (1/5)", "Arya: hi",
                             "You: we shall eat", "Bran: eat? Proposal accepted!", "You:"]
    assert sent(transport) == ["Lord", "we shall eat"]


def test_terminal_redraws_a_long_line_that_wrapped(clock: task.Clock) -> None:
    lord, client, transport, _ = lord_client(clock)
    screen = Screen(lord)
    lord.attach(screen.terminal)
    feed(client, "*** Lord has entered the realm (1/5)", "Arya: hi")
    long = "we ride " * 12  # 96 characters: two rows of 80
    screen.type(long.encode() + b"\r")
    assert screen.rows()[:2] == ["*** Lord has entered the realm (1/5)", "Arya: hi"]
    assert sent(transport)[-1] == long


def test_terminal_keeps_the_cursor_where_the_player_left_it(clock: task.Clock) -> None:
    screen, client, transport = terminal(clock)
    screen.type(b"we eat")
    screen.type(b"\x1b[D\x1b[D\x1b[D")  # left, left, left
    feed(client, "Arya: hi")
    screen.type(b"shall \r")
    assert sent(transport)[-1] == "we shall eat"


def test_terminal_takes_characters_beyond_ascii(clock: task.Clock) -> None:
    screen, client, transport = terminal(clock)
    screen.type("Ser Jöran eats crème brûlée 🐉".encode())
    screen.type(b"\x7f")  # backspace takes the whole dragon, not one byte
    screen.type(b"!\r")
    assert sent(transport)[-1] == "Ser Jöran eats crème brûlée !"


def test_terminal_colours_and_ctrl_keys(clock: task.Clock) -> None:
    lord, client, transport, _ = lord_client(clock)
    screen = Screen(lord, colour=True)
    lord.attach(screen.terminal)
    feed(client, "*** Lord has entered the realm (1/5)", "*** [New Event] x 1 a or 2 b?")
    assert b"\x1b[1;33m*** [New Event]" in screen.raw
    screen.type(b"eat\x04")  # Ctrl-D with text typed: not the end
    assert not lord.leaving
    screen.type(b"\r")
    assert b"\x1b[1;32mYou: eat" in screen.raw
    screen.type(b"\x03")  # Ctrl-C
    assert sent(transport) == ["Lord", "eat", "--leave"]


def test_terminal_ctrl_d_on_an_empty_line_leaves(clock: task.Clock) -> None:
    screen, client, transport = terminal(clock)
    screen.type(b"\x04")
    assert sent(transport)[-1] == "--leave"


# -- real clients, real server, in memory -----------------------------------

class Realm:
    """A real server and real clients, paired in memory by iosim."""

    def __init__(self, clock: task.Clock, **settings: float) -> None:
        self.clock = clock
        self.factory = RealmFactory(RealmServer(Settings(**settings), clock,  # type: ignore[arg-type]
                                                rng=random.Random(5)))
        self.pumps: list[iosim.IOPump] = []

    def join(self, client: RealmClient) -> None:
        server = self.factory.buildProtocol(None)
        self.pumps.append(iosim.connect(server, iosim.makeFakeServer(server), client,
                                        iosim.makeFakeClient(client), greet=False,
                                        clock=self.clock))

    def settle(self, seconds: float = 3.0) -> None:
        """Let `seconds` pass on the clock, moving the bytes as they come."""
        for _ in range(int(seconds * 10)):
            self.clock.advance(0.1)
            for pump in self.pumps:
                pump.pump()


def watched_lord(clock: task.Clock) -> tuple[Lord, list[str]]:
    """A Lord whose screen keeps every line it is shown."""
    lord = Lord(clock)
    seen: list[str] = []
    lord.attach(type("S", (), {"show": lambda self, line: seen.append(line),
                               "close": lambda self: succeed(None)})())
    return lord, seen


def test_a_game_with_the_real_server(clock: task.Clock) -> None:
    realm = Realm(clock, event_wait=5)
    bots = []
    pool = NamePool(random.Random(2))
    for i in range(4):
        driver = BotDriver(Bot(random.Random(i)), clock, 1.0, pool)
        name = pool.draw()
        assert name is not None
        realm.join(RealmClient(driver, name))
        bots.append(driver)
    lord, seen = watched_lord(clock)
    realm.join(RealmClient(lord, "Lord"))
    realm.settle()
    assert any("Welcome to the Game of Thrones" in line for line in seen)
    assert sum(line.startswith("*** [New Event]") for line in seen) == 1
    listener = Bot(random.Random())
    [listener.hear(line) for line in seen]
    lord.say("1")
    realm.settle()
    answers = [line.partition(": ")[2] for line in seen if not line.startswith("***")]
    assert len(answers) == 4
    delight = {t.format(word=listener.options[0]) for t in lore.DELIGHT}
    assert set(answers) <= delight
    assert sum(line.startswith("*** [New Event]") for line in seen) == 2
    victim = bots[0].name
    lord.say(f"--dismiss {victim}")
    realm.settle()
    assert bots[0].done.called and bots[0].done.result is None
    assert any(line.startswith(f"*** You have dismissed {victim}") for line in seen)
    lord.leave()
    realm.settle()
    assert lord.done.result == 0
    assert all(bot.done.called and bot.done.result is None for bot in bots)


def test_a_bot_deserts_through_the_real_server(clock: task.Clock) -> None:
    realm = Realm(clock, size=3)
    loyal = BotDriver(Bot(random.Random(1), Temper(loyalty=5)), clock, 0.5)
    fickle = BotDriver(Bot(random.Random(2), Temper(loyalty=1)), clock, 0.5)
    realm.join(RealmClient(loyal, "Arya"))
    realm.join(RealmClient(fickle, "Bran"))
    lord, seen = watched_lord(clock)
    realm.join(RealmClient(lord, "Lord"))
    realm.settle()
    lord.say("let us dance")
    realm.settle()
    assert fickle.done.called and fickle.done.result is None
    assert fickle.ending == "deserted"
    assert any(line.startswith("Bran: ") and line[6:] in lore.DESERTION for line in seen)
    assert "*** Bran has left the realm (2/3)" in seen
    assert not loyal.done.called
    lord.say("--leave")
    realm.settle()
    assert lord.done.result == 0 and loyal.done.result is None
