"""End to end: the installed `twistd -n realm` and `realm-client`, as processes.

One server serves the module; each test plays in its own realm.  The Lord
is driven through a pipe (plain lines, no prompt, no colour); at a
terminal, see test_tty.py.  Some tests put a fake server (a raw loopback
socket) or a TLS server with an untrusted certificate in front of it.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shlex
import signal
import socket
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from realm_procs import (
    Peer,
    Proc,
    command,
    fake_server,
    make_certificate,
    realm_server,
    running,
)
from test_bot import replies

from realm import lore
from realm.bot import NamePool


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with realm_server("--event-wait", "2") as (_, endpoint):
        yield endpoint


def bots(endpoint: str, realm: str, *options: str) -> tuple[str, ...]:
    """`realm-client --bot`, answering at once, for `running`."""
    return (command("realm-client"), "--bot", "--connect", endpoint, "--realm", realm,
            "--think", "0", *options)


def lord(endpoint: str, realm: str | None, *options: str) -> tuple[str, ...]:
    """`realm-client --lord`, for `running` (`realm` None: the server's own)."""
    where = ("--realm", realm) if realm else ()
    return (command("realm-client"), "--lord", "--connect", endpoint, *where, *options)


def members(lord: Proc) -> list[str]:
    """The members but the Lord, as `--who` tells the Lord."""
    lord.send("--who")
    names = lord.expect("*** In the realm ").rpartition(": ")[2].split(", ")
    return [name for name in names if name != "Lord"]


def test_a_full_game(server: str) -> None:
    with running(*bots(server, "game", "--count", "4")) as band:
        band.expect("joined the realm")
        with running(*lord(server, "game")) as me:
            me.expect("Welcome to the Game of Thrones")
            event = me.expect("*** [New Event] ")
            assert re.search(r"1 \w+ or 2 \w+\?$", event)
            option = re.search(r"1 (\w+) or", event).group(1)  # type: ignore[union-attr]
            names = members(me)
            assert len(names) == 4
            me.send("1")
            answers = [me.expect(lambda line: not line.startswith("***")) for _ in range(4)]
            delight = replies(lore.DELIGHT, option)
            assert {a.partition(": ")[2] for a in answers} <= delight
            assert {a.partition(": ")[0] for a in answers} == set(names)
            me.expect("*** [New Event] ")
            me.send("we shall eat")
            for _ in range(4):
                me.expect(lambda line: line.split(": ", 1)[-1].startswith("Eat"))
            me.close_stdin()
            me.expect("The Lord has left the realm")
            assert me.wait() == 0
            assert me.err == []
        assert band.wait() == 0, band.describe()
        assert sum("is gone: the Lord has left" in line for line in band.out) == 4


def test_piped_input_that_ends_without_a_line_end_sends_its_last_line(server: str) -> None:
    arya = Peer.connect(server)
    arya.send(b"arya@tail\n")
    arya.expect("Arya has entered the realm")
    with running(*lord(server, "tail")) as me:
        me.expect("Lord has entered the realm")
        assert me.popen.stdin is not None
        me.popen.stdin.write("first\nlast, with no line end")
        me.close_stdin()
        assert me.wait() == 0
    assert arya.expect("Lord: ") == "Lord: first"
    assert arya.expect("Lord: ") == "Lord: last, with no line end"
    arya.close()


def test_a_dismissal(server: str) -> None:
    with running(*bots(server, "court", "--count", "4")) as band, \
            running(*lord(server, "court")) as me:
        me.expect("Welcome to the Game of Thrones")
        victim = members(me)[0]
        me.send(f"--dismiss {victim.lower()}")
        me.expect(f"You have dismissed {victim}, 4/5 left on your team.")
        band.expect(f"[{victim}] is gone: dismissed")
        assert band.popen.poll() is None  # the other three play on
        me.send("--who")
        who = me.expect("In the realm")
        assert victim not in who
        me.send("--leave")
        assert me.wait() == 0
        assert band.wait() == 0, band.describe()


def test_a_bot_that_deserts(server: str) -> None:
    with running(*bots(server, "doubt", "--count", "3")) as loyal, \
            running(*bots(server, "doubt", "--name", "Reek", "--loyalty", "1")) as fickle, \
            running(*lord(server, "doubt")) as me:
        me.expect("Welcome to the Game of Thrones")
        me.send("let us all dance")
        # Reek's own chat line: an event may name Reek too ("A raven from Reek: ...").
        farewell = me.expect(lambda line: line.startswith("Reek: "))
        assert farewell.removeprefix("Reek: ") in lore.DESERTION
        me.expect("*** Reek has left the realm")
        assert fickle.wait() == 0, fickle.describe()
        assert "[Reek] is gone: deserted" in fickle.out
        me.send("--who")
        assert "(4/5)" in me.expect("In the realm")
        me.close_stdin()
        assert me.wait() == 0
        assert loyal.wait() == 0


def test_the_lord_leaving_ends_every_bot(server: str) -> None:
    with running(*bots(server, "exit", "--count", "2")) as band:
        band.expect("joined the realm")
        band.expect("joined the realm")
        with running(*lord(server, "exit")) as me:
            me.expect("*** Lord has entered the realm (3/5)")
            me.send("hello, anyone?")
            me.expect(lambda line: not line.startswith("***"))  # a bot answers
            me.popen.send_signal(signal.SIGINT)  # Ctrl-C in a pipe: leave, exit 0
            me.expect("The Lord has left the realm")
            assert me.wait() == 0
        assert band.wait() == 0


def test_a_taken_name_is_drawn_again(server: str) -> None:
    first = NamePool(random.Random(1)).draw()  # what `--seed 1` draws first
    assert first is not None
    stored = first[0].upper() + first[1:].lower()  # as the server stores it
    with running(*lord(server, "crowd")) as me, \
            running(*bots(server, "crowd", "--name", first)) as taker:
        taker.expect(f"[{stored}] joined")
        with running(*bots(server, "crowd", "--seed", "1")) as other:
            other.expect(f"[{first}] is taken; trying ")
            other.expect("joined the realm")
            me.close_stdin()
            assert other.wait() == 0
        assert me.wait() == 0


def test_the_lord_is_told_when_the_connection_is_lost() -> None:
    with realm_server() as (own, endpoint), running(*lord(endpoint, "lost")) as me:
        me.expect("Lord has entered the realm")
        own.popen.terminate()
        assert me.wait() == 1
        assert len(me.err) == 1 and "lost" in me.err[0]


@pytest.mark.parametrize("who", [["--lord"], ["--bot", "--count", "3"]])
def test_an_unreachable_server(who: list[str]) -> None:
    with socket.socket() as s:  # bound, not listening: the kernel refuses connections
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with running(command("realm-client"), *who, "--connect",
                     f"tcp:127.0.0.1:{port}") as c:
            assert c.wait(15) == 1  # it gives up, and says so, instead of trying on
    assert len(c.err) == 1 and "cannot reach the realm" in c.err[0]
    assert c.out == []


def test_the_lords_password(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    with realm_server("--auth", "memory:lord:s3cret") as (_, endpoint):
        with running(*lord(endpoint, "a", "--password-file", str(secret))) as me:
            me.expect("*** Lord has entered the realm (1/5)")
            me.close_stdin()
            assert me.wait() == 0
        with running(*lord(endpoint, "b"), env={"REALM_PASSWORD": "s3cret"}) as me:
            me.expect("*** Lord has entered the realm (1/5)")
            me.close_stdin()
            assert me.wait() == 0
        with running(*lord(endpoint, "c"), env={"REALM_PASSWORD": "wrong"}) as me:
            me.expect("*** Error: Wrong password")
            me.close_stdin()
            assert me.wait() == 1
        with running(*lord(endpoint, "d"), env={"REALM_PASSWORD": ""}) as me:
            me.close_stdin()
            assert me.wait() == 1
            assert "REALM_PASSWORD" in me.err[-1]


# -- names as the server stores them ----------------------------------------------

def test_a_bot_knows_itself_by_the_name_the_server_stored(server: str) -> None:
    with running(*bots(server, "case", "--name", "grey-WORM")) as worm, \
            running(*lord(server, "case")) as me:
        worm.expect("[Grey-worm] joined the realm")
        me.send("--dismiss GREY-WORM")
        me.expect("You have dismissed Grey-worm")
        assert worm.wait() == 0, worm.describe()
        assert "[Grey-worm] is gone: dismissed" in worm.out
        me.close_stdin()
        assert me.wait() == 0


# -- a band that keeps its seats -----------------------------------------------------

def test_kept_bots_fill_a_seat_left_empty(server: str) -> None:
    with running(*bots(server, "seats", "--count", "4", "--keep")) as band, \
            running(*lord(server, "seats")) as me:
        me.expect("Welcome to the Game of Thrones")
        victim = members(me)[0]
        me.send(f"--dismiss {victim}")
        me.expect(f"You have dismissed {victim}, 4/5 left on your team.")
        newcomer = band.expect_re(rf"\[(\S+)\] takes the seat {victim} left").group(1)
        me.expect(f"*** {newcomer} has entered the realm (5/5)")
        now = members(me)
        assert len(now) == 4 and victim not in now and newcomer in now
        me.close_stdin()
        assert me.wait() == 0
        assert band.wait() == 0, band.describe()
        assert sum("is gone: the Lord has left" in line for line in band.out) == 4


# -- lost, refused, untrusted: one line and a non-zero exit ---------------------------

@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    pem, roots = make_certificate(tmp_path_factory.mktemp("tls"))
    with realm_server(listen=f"ssl:0:privateKey={pem}:interface=127.0.0.1",
                      scheme="tls") as (_, endpoint):
        yield endpoint, roots


@pytest.mark.parametrize("stdin_ended", [True, False])
def test_an_untrusted_certificate_is_named_for_the_lord(
        tls_server: tuple[str, Path], stdin_ended: bool) -> None:
    endpoint, _ = tls_server
    with running(*lord(endpoint, "tls")) as me:
        if stdin_ended:
            me.close_stdin()
        assert me.wait() == 1
    [told] = me.err
    assert "certificate is not trusted (it is self-signed, and not among the " \
           "certificates trusted)" in told, told
    assert f"--connect {endpoint}:trustRoots=FOLDER" in told
    assert me.out == []


def test_an_untrusted_certificate_is_named_once_for_bots(
        tls_server: tuple[str, Path]) -> None:
    endpoint, _ = tls_server
    with running(*bots(endpoint, "tls", "--count", "3")) as band:
        assert band.wait() == 1
    [told] = band.err
    assert "certificate is not trusted" in told and "trustRoots=FOLDER" in told


def test_an_ssl_endpoint_checks_the_certificate_too(tls_server: tuple[str, Path]) -> None:
    """Twisted's `ssl:` client would check nothing: realm-client checks."""
    endpoint, roots = tls_server
    where = endpoint.replace("tls:", "ssl:", 1)
    with running(*lord(where, "tls")) as me:
        assert me.wait() == 1
    [told] = me.err
    assert "certificate is not trusted (it is self-signed" in told, told
    with running(*lord(f"{where}:caCertsDir={roots}", "tls3")) as me:
        me.expect("*** Lord has entered the realm (1/5)")
        me.close_stdin()
        assert me.wait() == 0


@pytest.mark.parametrize("who", [["--lord"], ["--bot", "--count", "2"]])
def test_a_trust_folder_that_cannot_be_read_is_one_line(tmp_path: Path, who: list[str]) -> None:
    where = f"tls:127.0.0.1:1:trustRoots={tmp_path / 'nowhere'}"
    with running(command("realm-client"), *who, "--connect", where) as c:
        c.close_stdin()
        assert c.wait() == 1
    assert c.err == [f"realm-client: bad --connect {where!r}: cannot read "
                     f"{tmp_path / 'nowhere'}: No such file or directory"]


@pytest.mark.parametrize(("kind", "told"), [
    ("expired", "(it expired on 2020-01-02): the server needs a certificate that is valid now"),
    ("other host", "(it is not a certificate for 127.0.0.1): connect with a host name it "
                   "holds (it holds other.example)")])
def test_a_certificate_trusted_but_unfit_says_why(tmp_path: Path, kind: str, told: str) -> None:
    pem, roots = make_certificate(tmp_path, expired=kind == "expired",
                                  names=("other.example",) if kind == "other host" else None)
    with realm_server(listen=f"ssl:0:privateKey={pem}:interface=127.0.0.1",
                      scheme="tls") as (_, endpoint), \
            running(*lord(f"{endpoint}:trustRoots={roots}", "unfit")) as me:
        me.close_stdin()
        assert me.wait() == 1
    assert me.err == [f"realm-client: the server's certificate is not trusted {told}"]


@pytest.mark.parametrize(("trusted", "who"), [
    (False, ["--lord"]), (True, ["--lord"]), (True, ["--bot", "--count", "2"])])
def test_a_certificate_that_names_no_host_is_one_line(tmp_path: Path, trusted: bool,
                                                       who: list[str]) -> None:
    """Twisted logs a traceback for a certificate without a subjectAltName
    and, trusted, lets it through with no name checked: realm-client
    refuses it, in one line."""
    pem, roots = make_certificate(tmp_path, alt=False)
    with realm_server(listen=f"ssl:0:privateKey={pem}:interface=127.0.0.1",
                      scheme="tls") as (_, endpoint):
        where = endpoint.replace("127.0.0.1", "localhost")
        where += f":trustRoots={roots}" if trusted else ""
        with running(command("realm-client"), *who, "--connect", where,
                     "--realm", "nameless") as me:
            me.close_stdin()
            assert me.wait() == 1
    assert me.err == ["realm-client: the server's certificate is not trusted (it names no host: "
                      "it has no subjectAltName): the server needs a certificate that names "
                      "localhost"], me.describe()
    assert not any("entered the realm" in line for line in me.out), me.out


def test_a_trusted_certificate_lets_the_lord_in(tls_server: tuple[str, Path]) -> None:
    endpoint, roots = tls_server
    with running(*lord(f"{endpoint}:trustRoots={roots}", "tls2")) as me:
        me.expect("*** Lord has entered the realm (1/5)")
        me.close_stdin()
        assert me.wait() == 0
    assert me.err == []


def test_a_hang_up_before_joining_is_told_with_stdin_at_its_end() -> None:
    with fake_server() as fake, running(*lord(fake.endpoint, "gone")) as me:
        me.close_stdin()  # a script: its input has ended at once
        peer = fake.accept()
        assert peer.line() == "Lord@gone"
        peer.close()
        assert me.wait() == 1
    [told] = me.err
    assert "lost before joining" in told
    assert me.out == []


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_stopped_before_joining_says_so(how: signal.Signals) -> None:
    """The server has the name and has not answered yet: Ctrl-C leaves now."""
    with fake_server() as fake, running(*lord(fake.endpoint, "slow")) as me:
        peer = fake.accept()
        assert peer.line() == "Lord@slow"
        me.popen.send_signal(how)
        assert me.wait() == 1
        assert peer.sock.recv(100) == b""  # it hung up
    assert me.err == ["realm-client: Left before joining the realm."]


# -- a server's escape sequences are shown, never obeyed -------------------------------

HOSTILE = (b"Arya: \x1b]52;c;aGk=\x07 \x1b]0;pwned\x07 \x1b[2J \x1b]8;;http://x\x1b\\link"
           b"\x1b]8;;\x1b\\ \x07\r\n")
SHOWN = "Arya: ^[]52;c;aGk=^G ^[]0;pwned^G ^[[2J ^[]8;;http://x^[\\link^[]8;;^[\\ ^G"


def test_a_piped_lord_shows_escape_sequences_written_out() -> None:
    with fake_server() as fake, running(*lord(fake.endpoint, None)) as me:
        peer = fake.accept()
        assert peer.line() == "Lord"
        peer.send(b"*** Hail\x1b[2J!\r\n*** Lord has entered the realm (1/5)\r\n" + HOSTILE)
        assert me.expect("Arya: ") == SHOWN
        me.close_stdin()
        assert peer.line() == "--leave"
        peer.send(b"*** The Lord has left the realm. The game is over.\r\n")
        peer.close()
        assert me.wait() == 0
    assert me.out[0] == "*** Hail^[[2J!"
    assert not any(c in line for line in me.out + me.err for c in "\x1b\x07")


def test_bots_report_escape_sequences_written_out() -> None:
    with fake_server() as fake, running(*bots(fake.endpoint, "x", "--name", "Arya")) as bot:
        peer = fake.accept()
        assert peer.line() == "Arya@x"
        peer.send(b"*** Error: \x1b]52;c;aGk=\x07Begone\x07\r\n")
        assert bot.wait() == 1
    assert bot.err == ["realm-client: Arya: ^[]52;c;aGk=^GBegone^G"]
    assert not any(c in line for line in bot.out + bot.err for c in "\x1b\x07")


# -- the command line --------------------------------------------------------------------

def test_version_is_realms_own() -> None:
    with running(command("realm-client"), "--version") as c:
        assert c.wait() == 0
    assert c.out == [f"realm-client (realm) {version('realm')}"]


@pytest.mark.parametrize(("argv", "told"), [
    (["--bot", "--count", "0"], "--count must be at least 1, not 0"),
    (["--bot", "--think", "-1"], "--think must be a number of seconds, not -1"),
    (["--bot", "--think", "nan"], "--think must be a number of seconds, not nan"),
    (["--bot", "--name", " LORD "], "a bot cannot be the Lord: run realm-client --lord"),
    (["--lord", "--password", "hunter2"], "a password is never taken on the command line, "
     "where others can read it: use --password-file or REALM_PASSWORD")])
def test_each_bad_option_its_own_message(argv: list[str], told: str) -> None:
    with running(command("realm-client"), *argv) as c:
        assert c.wait() == 2
    assert c.err[0] == f"realm-client: {told}"
    assert "hunter2" not in "\n".join(c.err + c.out)


def test_a_piped_line_too_long_is_the_servers_to_refuse(server: str) -> None:
    """A pasted or generated line longer than any line may be: the server
    says so, as at a terminal, and the game goes on."""
    with running(*lord(server, "longline")) as me:
        me.expect("*** Lord has entered the realm (1/5)")
        me.send("x" * 20000)
        me.expect("*** Error: Line too long; the limit is 1024 bytes. It was not sent.")
        me.send("--who")
        me.expect("*** In the realm 'longline' (1/5): Lord")
        me.close_stdin()
        assert me.wait() == 0


@pytest.mark.parametrize("who", [["--lord"], ["--bot", "--count", "2"]])
def test_a_port_that_cannot_be_is_one_line(who: list[str]) -> None:
    with running(command("realm-client"), *who, "--connect", "tcp:127.0.0.1:70000") as c:
        assert c.wait() == 1
    assert c.err == ["realm-client: bad --connect 'tcp:127.0.0.1:70000': connect_ex(): "
                     "port must be 0-65535."]


def test_the_lord_with_stdin_closed_joins_and_leaves(server: str) -> None:
    """As with input at its end: `realm-client --lord ... <&-`."""
    done = subprocess.run([*lord(server, "nostdin")], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30,
                          preexec_fn=lambda: os.close(0))
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and "*** Farewell, Lord." in done.stdout


def test_the_lord_with_stdout_closed_plays_and_leaves(server: str) -> None:
    """`realm-client --lord ... >&-`: what it shows goes nowhere (the
    reactor's own files must not take the number of stdout), the Lord's
    lines still reach the realm, and the Lord leaves at the end of input."""
    arya = Peer.connect(server)
    try:
        arya.send(b"Arya@nostdout\r\n")
        arya.expect("Arya has entered the realm")
        done = subprocess.run([*lord(server, "nostdout")], input="all hail\n",
                              stderr=subprocess.PIPE, text=True, timeout=30,
                              preexec_fn=lambda: os.close(1))
        arya.expect("Lord: all hail")
        arya.expect("The Lord has left the realm")
    finally:
        arya.close()
    assert (done.returncode, done.stderr) == (0, "")


def test_bots_whose_output_nobody_reads_still_end(server: str) -> None:
    """`realm-client --bot ... | head -1`: once the reader is gone, a bot's
    news goes nowhere, and the bots end with their game (no traceback)."""
    piped = " ".join(shlex.quote(arg) for arg in bots(server, "unread", "--count", "2"))
    with running(*lord(server, "unread")) as me, \
            running("bash", "-c", f"set -o pipefail; {piped} | head -1",
                    new_session=True) as band:
        try:
            band.expect("joined the realm")  # all that head lets through
            me.expect("(3/5)")
            me.close_stdin()  # the Lord leaves: the game is over for the bots
            assert me.wait() == 0
            assert band.wait() == 0
        finally:  # bots that hang hold the pipes open: end them, the pipeline's group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(band.pid, signal.SIGKILL)
    assert not [line for line in band.err if "Traceback" in line or "Error" in line], band.err
