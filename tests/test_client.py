"""The client protocol and its drivers, in memory: StringTransport and iosim.

No sockets and no wall clock: bots think on a `task.Clock`, and the last
tests pair real clients with the real server through `twisted.test.iosim`.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import pytest_twisted
from test_bot import replies
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.test import iosim

from realm import cli, lore
from realm.bot import Bot, NamePool, Temper
from realm.bots import Band, BotDriver, names
from realm.certificates import untrusted
from realm.cli import Options
from realm.client import LEAVE_GRACE, SILENT_WAIT, Ending, RealmClient, Unreachable
from realm.looks import visible
from realm.lord import LordDriver
from realm.protocol import RealmFactory
from realm.server import RealmServer, Settings

GONE = Failure(ConnectionDone())


TAKEN = "*** Error: The name {} is taken in the realm 'westeros'; choose another."


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
               reports: list[str] | None = None,
               **temper: int) -> tuple[BotDriver, RealmClient, TCPTransport]:
    report = (lambda text: None) if reports is None else reports.append
    driver = BotDriver(Bot(random.Random(3), Temper(**temper)), clock, think, pool, report)
    client = RealmClient(driver, name, realm)
    transport = TCPTransport()
    client.makeConnection(transport)
    return driver, client, transport


class Shown:
    """A Lord's screen in memory: what it was shown, and a password to type."""

    def __init__(self, secret: Deferred[str | None] | None = None) -> None:
        self.lines: list[str] = []
        self.secret = secret
        self.prompts: list[str] = []

    def show(self, line: str) -> None:
        self.lines.append(line)

    def ask_secret(self, prompt: str) -> Deferred[str | None] | None:
        self.prompts.append(prompt)
        return self.secret

    def close(self) -> Deferred[None]:
        return succeed(None)


def lord_client(clock: task.Clock, password: str | None = None,
                screen: Shown | None = None
                ) -> tuple[LordDriver, RealmClient, TCPTransport, list[str]]:
    lord = LordDriver(clock)
    shown = screen or Shown()
    client = RealmClient(lord, "Lord", None, password)
    transport = TCPTransport()
    client.makeConnection(transport)
    lord.attach(shown)
    return lord, client, transport, shown.lines


def ending(player: BotDriver | LordDriver) -> Ending:
    assert player.done.called
    result = player.done.result
    assert isinstance(result, Ending)
    return result


# -- joining -----------------------------------------------------------------

def test_sends_its_name_at_once_without_nagle(clock: task.Clock) -> None:
    _, _, transport = bot_client(clock, realm="north")
    assert sent(transport) == ["Arya@north"]
    assert transport.no_delay


def test_a_taken_name_is_drawn_again(clock: task.Clock) -> None:
    pool = NamePool(random.Random(1), ("Bran", "Sansa"))
    driver, client, transport = bot_client(clock, pool=pool)
    for _ in range(2):
        feed(client, TAKEN.format(sent(transport)[-1]))
    assert sent(transport)[0] == "Arya"
    assert sorted(sent(transport)[1:]) == ["Bran", "Sansa"]
    last = sent(transport)[-1]
    feed(client, f"*** {last} has entered the realm (2/5)")
    assert client.phase == "playing" and driver.name == last


def test_another_refusal_is_not_a_taken_name(clock: task.Clock) -> None:
    pool = NamePool(random.Random(1), ("Bran",))
    driver, client, transport = bot_client(clock, pool=pool)
    # "taken" in its words, but the realm is full: drawing again cannot help.
    feed(client, "*** Error: The realm 'taken' is full (5/5); try another with NAME@REALM.")
    assert sent(transport) == ["Arya"] and transport.disconnecting
    client.connectionLost(GONE)
    assert ending(driver).failed and "is full" in ending(driver).why


def test_a_taken_given_name_ends_the_bot(clock: task.Clock) -> None:
    driver, client, transport = bot_client(clock)
    feed(client, TAKEN.format("Arya"))
    assert transport.disconnecting
    client.connectionLost(GONE)
    assert ending(driver).failed and "taken" in ending(driver).why


def test_no_name_left_ends_the_bot(clock: task.Clock) -> None:
    driver, client, transport = bot_client(clock, pool=NamePool(random.Random(1), ()))
    feed(client, TAKEN.format("Arya"))
    assert transport.disconnecting


def test_arrival_of_others_is_not_ours(clock: task.Clock) -> None:
    _, client, _ = bot_client(clock, name="grey-worm")
    feed(client, "*** Hail, traveller!", "*** Arya has entered the realm (1/5)")
    assert client.phase == "joining"
    feed(client, "*** Grey-worm has entered the realm (2/5)")
    assert client.phase == "playing"


def test_a_bot_knows_itself_by_the_name_the_server_stored(clock: task.Clock) -> None:
    reports: list[str] = []
    driver, client, _ = bot_client(clock, name="grey-WORM", reports=reports)
    feed(client, "*** Grey-worm has entered the realm (2/5)")
    assert client.name == driver.name == "Grey-worm"
    feed(client, "*** You have been dismissed by the Lord. Farewell.")
    client.connectionLost(GONE)
    assert ending(driver) == Ending("dismissed")
    assert reports == ["[Grey-worm] joined the realm"]


def test_names_for_bots() -> None:
    given = names(None, "Hodor")
    assert [next(given) for _ in range(3)] == ["Hodor", "Hodor2", "Hodor3"]
    drawn = names(NamePool(random.Random(0)), None)
    four = [next(drawn) for _ in range(4)]
    assert len(set(four)) == 4 and set(four) <= set(lore.NAMES)  # type: ignore[operator]


@pytest.mark.parametrize(("argv", "message"), [
    ([], "exactly one"), (["--lord", "--bot"], "exactly one"),
    (["--lord", "--count", "2"], "^--count: for bots"), (["--lord", "--keep"], "^--keep: for"),
    (["--lord", "--name", "Arya"], "^--name: for bots"),
    (["--lord", "--think", "2", "--seed", "1"], "^--think and --seed: for bots \\(--bot\\); the"),
    (["--bot", "--count", "0"], "--count must be at least 1, not 0"),
    (["--bot", "--loyalty", "0"], "loyalty"),
    (["--bot", "--think", "-1"], "--think must be a number of seconds, not -1"),
    (["--lord", "--password-file", "/nonexistent"], "--password-file")])
def test_bad_options(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message) as e:
        Options().parseOptions(argv)
    assert ("--count" in str(e.value)) + ("--think" in str(e.value)) <= 1  # one at a time


def test_the_lord_may_be_named_lord() -> None:
    """The contract's synopsis gives every client `[--name NAME]`."""
    options = Options()
    options.parseOptions(["--lord", "--name", "lord"])
    assert options["lord"]


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


# -- what the server sends is shown, never obeyed --------------------------------

@pytest.mark.parametrize(("raw", "shown"), [
    ("\x1b]52;c;aGk=\x07", "^[]52;c;aGk=^G"),   # OSC 52: write the clipboard
    ("\x1b]0;pwned\x07", "^[]0;pwned^G"),        # the window's title
    ("\x1b[2J\x1b[H", "^[[2J^[[H"),              # clear the screen
    ("\x1b]8;;http://x\x1b\\link", "^[]8;;http://x^[\\link"),  # a hyperlink
    ("a\tb\x7f\x9b1m\u202e", "a\tb^?\\x9b1m\\u202e"),   # tab kept; DEL, C1 CSI, RLO
    ("Ser Jöran 🐉", "Ser Jöran 🐉")])
def test_control_characters_are_made_visible(raw: str, shown: str) -> None:
    assert visible(raw) == shown


def test_the_client_hands_on_lines_made_visible(clock: task.Clock) -> None:
    lord, client, _, shown = lord_client(clock)
    client.dataReceived(b"*** Lord has entered the realm (1/5)\r\nArya: \x1b]52;c;aGk=\x07hi\r\n")
    assert shown[-1] == "Arya: ^[]52;c;aGk=^Ghi"


# -- bots --------------------------------------------------------------------

def test_bot_answers_each_lord_line_once_after_thinking(clock: task.Clock) -> None:
    driver, client, transport = bot_client(clock, think=1.0)
    feed(client, "*** Arya has entered the realm (1/5)")
    transport.clear()
    feed(client, "Lord: we eat", "Bran: I eat too", "*** Bran has left the realm (1/5)")
    assert transport.value() == b""
    clock.advance(2.0)
    [reply] = sent(transport)
    assert reply in replies(lore.APPROVAL, "eat")
    clock.advance(10)
    assert len(sent(transport)) == 1


def test_bot_replies_keep_their_order(clock: task.Clock) -> None:
    driver, client, transport = bot_client(clock, think=1.0)
    feed(client, "*** Arya has entered the realm (1/5)")
    transport.clear()
    feed(client, "Lord: eat", "Lord: ride", "Lord: sail", "Lord: pray")
    clock.pump([0.1] * 20)
    words = [line.split("?")[0].split("!")[0].split(",")[0] for line in sent(transport)]
    assert words == ["Eat", "Ride", "Sail", "Pray"]


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
    assert ending(driver) == Ending("deserted")


def test_a_dismissed_bot_ends_cleanly(clock: task.Clock) -> None:
    driver, client, _ = bot_client(clock)
    feed(client, "*** Arya has entered the realm (1/5)",
         "*** You have been dismissed by the Lord. Farewell.")
    client.connectionLost(GONE)
    assert ending(driver) == Ending("dismissed")


@pytest.mark.parametrize("line", ["*** Bran has been dismissed by the Lord (3/5)",
                                  "*** Arya, the Lord has dismissed thee."])  # not the wire's
def test_another_dismissal_then_a_lost_connection_is_a_failure(clock: task.Clock,
                                                               line: str) -> None:
    driver, client, _ = bot_client(clock)
    feed(client, "*** Arya has entered the realm (1/5)", line)
    client.connectionLost(GONE)
    assert ending(driver) == Ending("Arya: the connection to the realm was lost", failed=True)


def test_the_lords_leaving_ends_a_bot_cleanly(clock: task.Clock) -> None:
    driver, client, _ = bot_client(clock, think=1.0)
    feed(client, "*** Arya has entered the realm (1/5)", "Lord: eat",
         "*** The Lord has left the realm. The game is over.")
    client.connectionLost(GONE)
    assert ending(driver) == Ending("the Lord has left")
    assert not clock.getDelayedCalls()


def test_a_server_shutting_down_ends_a_bot_cleanly(clock: task.Clock) -> None:
    driver, client, _ = bot_client(clock)
    feed(client, "*** Arya has entered the realm (1/5)",
         "*** The server is shutting down. Farewell!")
    client.connectionLost(GONE)
    assert ending(driver) == Ending("the server has closed")


def test_a_stopped_bot_leaves_and_is_cut_off_after_a_grace(clock: task.Clock) -> None:
    driver, client, transport = bot_client(clock)
    feed(client, "*** Arya has entered the realm (1/5)")
    transport.clear()
    driver.leave("stopped")
    assert sent(transport) == ["--leave"]
    clock.advance(LEAVE_GRACE)
    assert transport.disconnecting


def test_a_bot_lost_before_joining_fails(clock: task.Clock) -> None:
    driver, client, _ = bot_client(clock)
    client.connectionLost(GONE)
    assert ending(driver).failed and "before joining" in ending(driver).why


def test_a_bot_asked_for_a_password_gives_up(clock: task.Clock) -> None:
    driver, client, transport = bot_client(clock)
    feed(client, "*** This realm's Lord must prove it: send the Lord's password.")
    assert transport.disconnecting


# -- TLS ---------------------------------------------------------------------

def tls_failure() -> Failure:
    from OpenSSL.SSL import Error

    return Failure(Error([("SSL routines", "", "certificate verify failed")]))


def test_an_untrusted_certificate_is_named_with_the_way_to_trust_it() -> None:
    told = untrusted(tls_failure(), "tls:127.0.0.1:2346")
    assert told is not None
    assert "certificate is not trusted (certificate verify failed)" in told
    assert "--connect tls:127.0.0.1:2346:trustRoots=FOLDER" in told
    assert untrusted(GONE, "tls:127.0.0.1:2346") is None
    wrong = untrusted(tls_failure(), "tls:127.0.0.1:2346:trustRoots=strangers")
    assert wrong is not None and "trustRoots= does not hold it or its issuer" in wrong


@pytest.mark.parametrize("typed", [[], ["hi"]])
def test_an_untrusted_certificate_fails_the_lord_even_after_input_ended(
        clock: task.Clock, typed: list[str]) -> None:
    lord, client, _, _ = lord_client(clock)
    for text in typed:
        lord.say(text)
    lord.leave()  # stdin was already at its end
    client.connectionLost(tls_failure())
    assert ending(lord).failed and "certificate is not trusted" in ending(lord).why


def test_an_untrusted_certificate_fails_a_bot_in_one_line_for_all(clock: task.Clock) -> None:
    whys = set()
    for name in ["Arya", "Bran"]:
        driver, client, _ = bot_client(clock, name=name)
        client.connectionLost(tls_failure())
        whys.add(ending(driver).why)
    [why] = whys
    assert "certificate is not trusted" in why


# -- the Lord ----------------------------------------------------------------

def test_lord_holds_lines_until_joined(clock: task.Clock) -> None:
    lord, client, transport, shown = lord_client(clock)
    lord.say("eat")
    assert sent(transport) == ["Lord"]
    feed(client, "*** Hail, traveller! This is realm, a Game of Thrones.",
         "*** What is your name? Send NAME or NAME@REALM (Lord to rule the realm).",
         "*** Lord has entered the realm (1/5)")
    assert sent(transport) == ["Lord", "eat"]
    # The request for a name is the client's to answer: not shown.
    assert shown == ["*** Hail, traveller! This is realm, a Game of Thrones.",
                     "*** Lord has entered the realm (1/5)"]


def test_lord_answers_the_password_request(clock: task.Clock) -> None:
    lord, client, transport, shown = lord_client(clock, password="s3cret")
    lord.say("hello")
    feed(client, "*** This realm's Lord must prove it: send the Lord's password.")
    feed(client, "*** Lord has entered the realm (1/5)")
    assert sent(transport) == ["Lord", "s3cret", "hello"]
    assert shown == ["*** Lord has entered the realm (1/5)"]


def test_lord_without_a_password_says_how_to_give_one(clock: task.Clock) -> None:
    lord, client, transport, _ = lord_client(clock)  # a screen that cannot ask
    feed(client, "*** This realm's Lord must prove it: send the Lord's password.")
    assert sent(transport) == ["Lord"] and transport.disconnecting
    client.connectionLost(GONE)
    assert ending(lord).failed and "REALM_PASSWORD" in ending(lord).why
    assert not ending(lord).shown


ASK = "*** This realm's Lord must prove it: send the Lord's password."
WRONG = "*** Error: Wrong password; you are not the Lord. Send a name to try again."


def test_a_terminal_asks_for_the_password_and_again_after_a_wrong_one(
        clock: task.Clock) -> None:
    typed: Deferred[str | None] = Deferred()
    screen = Shown(typed)
    lord, client, transport, shown = lord_client(clock, screen=screen)
    lord.say("hello")
    feed(client, ASK)
    assert screen.prompts and sent(transport) == ["Lord"]
    typed.callback("wrong")
    assert sent(transport) == ["Lord", "wrong"]
    screen.secret = again = Deferred()
    feed(client, WRONG, ASK)
    assert sent(transport) == ["Lord", "wrong", "Lord"]
    again.callback("s3cret")
    feed(client, "*** Lord has entered the realm (1/5)")
    assert sent(transport) == ["Lord", "wrong", "Lord", "s3cret", "hello"]
    assert ASK not in shown


def test_giving_up_at_the_password_prompt_ends_the_lord(clock: task.Clock) -> None:
    typed: Deferred[str | None] = Deferred()
    lord, client, transport, _ = lord_client(clock, screen=Shown(typed))
    feed(client, ASK)
    typed.callback(None)  # Ctrl-D, Ctrl-C
    assert sent(transport) == ["Lord"] and transport.disconnecting
    client.connectionLost(GONE)
    assert ending(lord).failed


def test_a_password_asked_before_the_screen_is_there(clock: task.Clock) -> None:
    lord = LordDriver(clock)
    client = RealmClient(lord, "Lord")
    transport = TCPTransport()
    client.makeConnection(transport)
    feed(client, ASK)
    typed: Deferred[str | None] = Deferred()
    lord.attach(Shown(typed))
    typed.callback("s3cret")
    assert sent(transport) == ["Lord", "s3cret"]


@pytest.mark.parametrize("typed", [[], ["hi", "--leave"]])
def test_a_second_lord_is_refused(clock: task.Clock, typed: list[str]) -> None:
    lord, client, transport, shown = lord_client(clock)
    for text in typed:  # end of input before the refusal: still a failure
        lord.say(text)
    feed(client, "*** Error: The realm 'westeros' already has a Lord; join under "
         "another name, or another realm.")
    assert transport.disconnecting
    client.connectionLost(GONE)
    assert ending(lord).failed and ending(lord).shown  # the error is on screen
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
    assert not ending(lord).failed
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


def test_a_server_that_says_nothing_is_given_up(clock: task.Clock) -> None:
    """realm greets a connection at once: one that stays silent is hung,
    or no realm, and the player is told instead of waiting forever."""
    bot, client, transport = bot_client(clock)
    clock.advance(SILENT_WAIT)
    assert transport.disconnecting
    client.connectionLost(GONE)
    assert ending(bot).failed
    assert ending(bot).why.endswith(f"it said nothing in {SILENT_WAIT:g} s")


def test_a_line_no_realm_would_send_ends_the_game_saying_so(clock: task.Clock) -> None:
    lord, client, transport, _ = lord_client(clock)
    feed(client, "*** Lord has entered the realm (1/5)")
    client.dataReceived(b"x" * (RealmClient.MAX_LENGTH + 1))
    assert transport.disconnecting
    client.connectionLost(GONE)
    assert ending(lord) == Ending("the server sent a line over 64 KiB, which no realm does",
                                  failed=True)


def test_a_lord_timed_out_for_silence_did_not_leave(clock: task.Clock) -> None:
    """The server's own line says why (on the screen already): exit 1, not
    the 0 of a Lord who left, though the realm says the Lord has left."""
    lord, client, _, shown = lord_client(clock)
    feed(client, "*** Lord has entered the realm (1/5)",
         "*** Error: You have been silent too long. Farewell.",
         "*** The Lord has left the realm. The game is over.")
    client.connectionLost(GONE)
    assert ending(lord) == Ending("You have been silent too long. Farewell.", failed=True,
                                  shown=True)
    assert "*** Error: You have been silent too long. Farewell." in shown


def test_a_server_that_greets_is_waited_for(clock: task.Clock) -> None:
    lord, client, transport, _ = lord_client(clock)
    feed(client, "*** Hail, traveller! This is realm, a Game of Thrones.")
    clock.advance(SILENT_WAIT * 3)  # the join itself may take its time (a cluster)
    assert not transport.disconnecting and not lord.done.called


def test_lord_losing_the_connection_exits_nonzero(clock: task.Clock) -> None:
    lord, client, _, _ = lord_client(clock)
    feed(client, "*** Lord has entered the realm (1/5)")
    client.connectionLost(GONE)
    assert ending(lord) == Ending("The connection to the realm was lost.", failed=True)


def test_a_hang_up_before_joining_fails_even_after_input_ended(clock: task.Clock) -> None:
    lord, client, _, _ = lord_client(clock)
    lord.leave()  # a script's stdin, already at its end
    client.connectionLost(GONE)
    assert ending(lord).failed and not ending(lord).shown
    assert "lost before joining" in ending(lord).why


def test_ctrl_c_before_joining_hangs_up_at_once(clock: task.Clock) -> None:
    """The server has not answered the name yet (a slow cluster, a server
    that only greets): Ctrl-C does not wait for it."""
    lord, client, transport, _ = lord_client(clock)
    lord.say("we ride at dawn")  # held for after the join: dropped
    lord.stop()
    assert transport.disconnecting and sent(transport) == ["Lord"]
    client.connectionLost(GONE)
    assert ending(lord) == Ending("Left before joining the realm.", failed=True)


def test_input_that_ended_waits_for_the_join_then_gives_up(clock: task.Clock) -> None:
    lord, client, transport, _ = lord_client(clock)
    lord.leave()
    clock.advance(LEAVE_GRACE - 0.1)
    assert not transport.disconnecting  # the join may still come
    lord.stop()  # a second thought: Ctrl-C
    assert transport.disconnecting
    client.connectionLost(GONE)
    assert ending(lord) == Ending("Left before joining the realm.", failed=True)
    lord, client, transport, _ = lord_client(clock)
    lord.leave()
    clock.advance(LEAVE_GRACE)  # the grace is over before the join came
    client.connectionLost(GONE)
    assert ending(lord) == Ending("Left before joining the realm.", failed=True)


def test_a_bot_stopped_before_joining_goes_at_once(clock: task.Clock) -> None:
    driver, client, transport = bot_client(clock)
    driver.leave("stopped")
    assert transport.disconnecting
    client.connectionLost(GONE)
    assert ending(driver) == Ending("stopped")


def test_the_server_closing_is_not_the_lords_leaving(clock: task.Clock) -> None:
    lord, client, _, _ = lord_client(clock)
    feed(client, "*** Lord has entered the realm (1/5)",
         "*** The server is shutting down. Farewell!")
    client.connectionLost(GONE)
    assert ending(lord).failed and "lost: the server has closed" in ending(lord).why


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


def watched_lord(clock: task.Clock) -> tuple[LordDriver, list[str]]:
    """A Lord whose screen keeps every line it is shown."""
    lord = LordDriver(clock)
    screen = Shown()
    lord.attach(screen)
    return lord, screen.lines


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
    assert not any("What is your name?" in line for line in seen)
    assert sum(line.startswith("*** [New Event]") for line in seen) == 1
    listener = Bot(random.Random())
    [listener.hear(line) for line in seen]
    lord.say("1")
    realm.settle()
    answers = [line.partition(": ")[2] for line in seen if not line.startswith("***")]
    assert len(answers) == 4
    delight = replies(lore.DELIGHT, listener.options[0])
    assert set(answers) <= delight
    assert sum(line.startswith("*** [New Event]") for line in seen) == 2
    victim = bots[0].name
    lord.say(f"--dismiss {victim}")
    realm.settle()
    assert ending(bots[0]) == Ending("dismissed")
    assert any(line.startswith(f"*** You have dismissed {victim}") for line in seen)
    lord.leave()
    realm.settle()
    assert ending(lord) == Ending("the Lord has left")
    assert all(ending(bot) == Ending("the Lord has left") for bot in bots[1:])


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
    assert ending(fickle) == Ending("deserted")
    assert any(line.startswith("Bran: ") and line[6:] in lore.DESERTION for line in seen)
    assert "*** Bran has left the realm (2/3)" in seen
    assert not loyal.done.called
    lord.say("--leave")
    realm.settle()
    assert not ending(lord).failed and not ending(loyal).failed


def test_bots_know_their_stored_names_through_the_real_server(clock: task.Clock) -> None:
    realm = Realm(clock, size=2)
    reports: list[str] = []
    bot = BotDriver(Bot(random.Random(1)), clock, 0.0, report=reports.append)
    realm.join(RealmClient(bot, "grey-WORM"))
    lord, seen = watched_lord(clock)
    realm.join(RealmClient(lord, "Lord"))
    realm.settle()
    lord.say("--dismiss GREY-worm")
    realm.settle()
    assert bot.name == "Grey-worm" and ending(bot) == Ending("dismissed")
    assert reports == ["[Grey-worm] joined the realm"]


# -- a band of bots ------------------------------------------------------------

def band(realm: Realm, clock: task.Clock, keep: bool, reports: list[str],
         failures: list[str], pool: tuple[str, ...] = lore.NAMES) -> Band:
    async def connect(make: Callable[[], RealmClient]) -> None:
        realm.join(make())

    return Band(connect, clock, lambda i: Bot(random.Random(i)), think=0.5,
                pool=NamePool(random.Random(4), pool), keep=keep,
                report=reports.append, tell=failures.append)


def who(lord: LordDriver, seen: list[str], realm: Realm) -> str:
    lord.say("--who")
    realm.settle(1)
    return [line for line in seen if line.startswith("*** In the realm")][-1]


def test_a_kept_band_fills_a_seat_a_bot_left(clock: task.Clock) -> None:
    realm = Realm(clock, event_wait=5)
    reports: list[str] = []
    failures: list[str] = []
    bots = band(realm, clock, True, reports, failures)
    finished = bots.start(4)
    lord, seen = watched_lord(clock)
    realm.join(RealmClient(lord, "Lord"))
    realm.settle()
    assert "(5/5)" in who(lord, seen, realm)
    victim = bots.bots[0].name
    lord.say(f"--dismiss {victim}")
    realm.settle()
    newcomer = bots.bots[-1].name
    assert victim not in [bot.name for bot in bots.bots]  # let go: a band lives long
    assert f"[{newcomer}] takes the seat {victim} left" in reports
    assert f"*** {newcomer} has entered the realm (5/5)" in seen
    assert "(5/5)" in who(lord, seen, realm) and victim not in who(lord, seen, realm)
    lord.leave()
    realm.settle()
    assert finished.called and finished.result == [] and failures == []
    assert bots.seated == 5 and bots.bots == []  # no one came after the Lord had left


def test_a_band_without_keep_leaves_the_seat_empty(clock: task.Clock) -> None:
    realm = Realm(clock, event_wait=5)
    reports: list[str] = []
    bots = band(realm, clock, False, reports, [])
    bots.start(4)
    lord, seen = watched_lord(clock)
    realm.join(RealmClient(lord, "Lord"))
    realm.settle()
    lord.say(f"--dismiss {bots.bots[0].name}")
    realm.settle()
    assert (bots.seated, len(bots.bots)) == (4, 3) and "(4/5)" in who(lord, seen, realm)


def test_a_kept_band_out_of_names_draws_those_gone_again(clock: task.Clock) -> None:
    realm = Realm(clock, size=2)
    failures: list[str] = []
    bots = band(realm, clock, True, [], failures, pool=("Arya",))
    finished = bots.start(1)
    lord, seen = watched_lord(clock)
    realm.join(RealmClient(lord, "Lord"))
    realm.settle()
    for _ in range(2):
        lord.say("--dismiss Arya")
        realm.settle()
    assert seen.count("*** Arya has entered the realm (2/2)") == 2
    assert not finished.called and failures == []
    lord.leave()
    realm.settle()
    assert finished.called and failures == []


def test_too_many_bots_for_the_names(clock: task.Clock) -> None:
    realm = Realm(clock, size=5)
    failures: list[str] = []
    finished = band(realm, clock, False, [], failures, pool=("Arya",)).start(2)
    realm.settle()
    assert failures == ["there are not enough names for so many bots"]
    assert not finished.called


def test_a_stopped_band_ends_every_bot(clock: task.Clock) -> None:
    realm = Realm(clock)
    bots = band(realm, clock, True, [], [])
    finished = bots.start(2)
    realm.settle()
    gone = bots.stop()
    realm.settle(LEAVE_GRACE + 1)
    assert gone.called and finished.called and finished.result == []
    assert bots.seated == 2 and bots.bots == []


def test_a_band_that_cannot_connect_fails_once(clock: task.Clock) -> None:
    async def connect(make: Callable[[], RealmClient]) -> None:
        raise Unreachable("cannot reach the realm at tcp:nowhere:1")

    failures: list[str] = []
    bots = Band(connect, clock, lambda i: Bot(random.Random(i)),
                pool=NamePool(random.Random(4)), tell=failures.append)
    finished = bots.start(3)
    assert finished.called and finished.result == failures
    assert set(failures) == {"cannot reach the realm at tcp:nowhere:1"}


@contextmanager
def unanswered() -> Iterator[int]:
    """A loopback port that never answers a new connection: its listener's
    queue is full, so the kernel drops the handshake's first packet."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        queued = [socket.socket() for _ in range(3)]
        try:
            for s in queued:
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
            yield port
        finally:
            for s in queued:
                s.close()


class Stopping:
    """The reactor, but its shutdown triggers kept for the test to fire (as
    Ctrl-C or SIGTERM would)."""

    def __init__(self) -> None:
        self.triggers: dict[int, Callable[[], object]] = {}

    def __getattr__(self, name: str) -> object:
        return getattr(reactor, name)

    def addSystemEventTrigger(self, phase: str, event: str, f: Callable[[], object]) -> int:
        assert (phase, event) == ("before", "shutdown")
        self.triggers[len(self.triggers)] = f
        return len(self.triggers) - 1

    def removeSystemEventTrigger(self, trigger: int) -> None:
        del self.triggers[trigger]


@pytest_twisted.ensureDeferred
async def test_stopping_while_connecting_is_one_line() -> None:
    """Ctrl-C before the server answered: one line, not Twisted's failure."""
    stopping = Stopping()
    with unanswered() as port:
        where = f"tcp:127.0.0.1:{port}"
        attempt = Deferred.fromCoroutine(
            cli.connect(stopping, where, lambda: RealmClient(None, "Arya")))  # type: ignore[arg-type]
        (stop,) = stopping.triggers.values()
        stop()
        with pytest.raises(Unreachable) as stopped:
            await attempt
    assert str(stopped.value) == f"stopped before reaching the realm at {where}"
    assert not stopping.triggers  # a later Ctrl-C is the game's to handle


@pytest_twisted.ensureDeferred
async def test_a_server_that_never_answers_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The contract's one line for a server that cannot be reached, also
    when nothing answers at all (a firewall that drops): not a traceback."""
    monkeypatch.setattr(cli, "CONNECT_TIMEOUT", 0.3)
    with unanswered() as port:
        where = f"tcp:127.0.0.1:{port}"
        with pytest.raises(Unreachable) as refused:
            await cli.connect(reactor, where, lambda: RealmClient(None, "Arya"))  # type: ignore[arg-type]
    assert str(refused.value) == f"cannot reach the realm at {where}: no answer in 0.3 s"
