"""The chronicle through the installed `twistd realm`: a reign whose
`[Reign Ended]` line was sent survives a `kill -9` right after it, and a
restarted server shows it; a stop writes every realm's reign, and does
not wait for ever on a database that hangs; a chronicle that cannot be
opened stops the start with one line."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from realm_procs import WAIT, Peer, Proc, command, running

from realm import wire
from realm.chronicle import WRITE_WAIT, parse_url

OTHERS = ("Arya", "Bran")
pytest_plugins = ["databases"]


def listening(server: Proc) -> str:
    return "tcp:127.0.0.1:" + server.expect_re(r"starting on (\d+)").group(1)


def test_a_reign_told_as_ended_survives_kill_9(tmp_path: Path) -> None:
    chronicle = f"sqlite:{tmp_path / 'realm.sqlite'}"
    with running(command("twistd"), "-n", "--pidfile=", "realm",
                 "--listen", "tcp:0:interface=127.0.0.1", "--size", "3",
                 "--reign-length", "1", "--chronicle", chronicle, cwd=str(tmp_path)) as server:
        endpoint = listening(server)
        others = [Peer.connect(endpoint) for _ in OTHERS]
        for peer, name in zip(others, OTHERS, strict=True):
            peer.send(f"{name}@kings\n".encode())
        lord = Peer.connect(endpoint)
        lord.send(b"Lord@kings\n")
        lord.expect("[New Event]")
        lord.send(b"1\n")
        for peer in others:
            peer.expect("Lord: 1")
            peer.send(b"aye\n")
        report = lord.expect("[Realm]")
        ended = lord.expect("[Reign Ended]")
        os.kill(server.pid, signal.SIGKILL)  # right after the line: nothing may be lost
        assert server.wait() == -signal.SIGKILL
    fields = wire.REIGN_OVER.match(ended)
    assert fields is not None and fields["events"] == "1"
    assert wire.read_report(report) is not None
    with running(command("twistd"), "-n", "--pidfile=", "realm",
                 "--listen", "tcp:0:interface=127.0.0.1",
                 "--chronicle", chronicle, cwd=str(tmp_path)) as again:
        endpoint = listening(again)
        reader = Peer.connect(endpoint)
        reader.send(b"Sam@kings\n--chronicle\n")
        reader.expect("The best reigns in the chronicle:")
        row = wire.CHRONICLE_ROW.match(reader.line())
        assert row is not None
        assert (row["realm"], row["outcome"], row["events"], row["score"]) == (
            "kings", fields["outcome"], "1", fields["score"])


def test_a_graceful_stop_records_the_reign_of_every_realm(tmp_path: Path) -> None:
    """SIGTERM while each realm's Lord is alone in it: every reign in play
    is abandoned at once, and each is recorded before the chronicle closes
    (the first is written, the others wait for its group)."""
    path = tmp_path / "realm.sqlite"
    realms = ("kings", "north", "dorne")
    with running(command("twistd"), "-n", "--pidfile=", "realm",
                 "--listen", "tcp:0:interface=127.0.0.1", "--size", "2",
                 "--chronicle", f"sqlite:{path}", cwd=str(tmp_path)) as server:
        endpoint = listening(server)
        lords = []
        for realm in realms:
            arya, lord = Peer.connect(endpoint), Peer.connect(endpoint)
            arya.send(f"Arya@{realm}\n".encode())
            arya.expect("Arya has entered")
            lord.send(f"Lord@{realm}\n".encode())
            lord.expect("[New Event]")  # the reign has begun
            arya.close()
            lord.expect("Arya has left the realm")
            lords.append(lord)
        server.popen.send_signal(signal.SIGTERM)
        for lord in lords:
            lord.expect("The server is shutting down")
        assert server.wait() == 0
    assert not [line for line in server.out if "could not record" in line], server.out
    with sqlite3.connect(path) as db:
        assert sorted(db.execute("SELECT realm, outcome FROM reigns").fetchall()) == sorted(
            (realm, "abandoned") for realm in realms)


def test_a_stop_gives_up_on_a_chronicle_that_hangs(tmp_path: Path, postgres_url: str) -> None:
    """SIGTERM while PostgreSQL holds the last reign's write for ever (a
    lock no one lets go, as a paused server or a dead link would): the
    stop says what it waits for, gives up after `WRITE_WAIT`, and exits."""
    import psycopg

    where = parse_url(postgres_url).where()
    with running(command("twistd"), "-n", "--pidfile=", "realm",
                 "--listen", "tcp:0:interface=127.0.0.1", "--size", "2",
                 "--chronicle", postgres_url, cwd=str(tmp_path)) as server:
        endpoint = listening(server)
        arya, lord = Peer.connect(endpoint), Peer.connect(endpoint)
        arya.send(b"Arya@kings\n")
        arya.expect("Arya has entered")
        lord.send(b"Lord@kings\n")
        lord.expect("[New Event]")  # a reign in play, to be written at the stop
        with psycopg.connect(postgres_url) as holder:  # the lock lasts as its transaction
            holder.execute("LOCK TABLE reigns IN ACCESS EXCLUSIVE MODE")
            server.popen.send_signal(signal.SIGTERM)
            lord.expect("The server is shutting down")
            server.expect(f"Waiting for the chronicle {where} to write the last reigns "
                          f"(at most {WRITE_WAIT:g} s)")
            assert server.wait() == 0
            holder.rollback()
    assert server.expect(f"Stopping without the chronicle: cannot finish writing to the "
                         f"chronicle {where}: no answer in {WRITE_WAIT:g} s")


def test_a_chronicle_that_cannot_be_opened_stops_the_start(tmp_path: Path) -> None:
    twistd = str(Path(sys.executable).with_name("twistd"))
    where = tmp_path / "no-such-folder" / "realm.sqlite"
    result = subprocess.run(
        [twistd, "-n", "--pidfile=", "realm", "--listen", "tcp:0:interface=127.0.0.1",
         "--chronicle", f"sqlite:{where}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=WAIT)
    assert result.returncode != 0
    (line,) = result.stderr.splitlines()
    assert line.startswith("realm: cannot open the chronicle sqlite:") and str(where) in line
    assert "Traceback" not in result.stdout + result.stderr
