"""`twistd realm`'s options: defaults, repeatable --listen, usage errors."""

from __future__ import annotations

import pytest
from twisted.python import usage

from realm.tap import Options, settings_from


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


def test_defaults() -> None:
    options = parse()
    assert options["listen"] == ["tcp:2345"]
    settings = settings_from(options)
    assert settings.size == 5
    assert settings.default_realm == "westeros"
    assert settings.event_wait == 30.0
    assert settings.max_rate == 20
    assert settings.max_per_address == 64
    assert settings.max_realms == 10000
    assert settings.login_timeout == 60
    assert settings.idle_timeout == 900


def test_listen_is_repeatable_and_replaces_the_default() -> None:
    options = parse("--listen", "tcp:0:interface=127.0.0.1", "--listen=unix:/tmp/r.sock")
    assert options["listen"] == ["tcp:0:interface=127.0.0.1", "unix:/tmp/r.sock"]


def test_a_second_parse_does_not_share_the_list() -> None:
    parse("--listen", "tcp:1")
    assert parse()["listen"] == ["tcp:2345"]


def test_values() -> None:
    settings = settings_from(parse("--size", "2", "--realm", "Winterfell",
                                   "--event-wait", "0.25", "--max-rate", "0",
                                   "--max-per-address", "0", "--max-realms", "3",
                                   "--login-timeout", "1.5", "--idle-timeout", "0"))
    assert settings.size == 2
    assert settings.default_realm == "winterfell"
    assert settings.event_wait == 0.25
    assert settings.max_rate == 0 and settings.max_per_address == 0
    assert settings.max_realms == 3
    assert settings.login_timeout == 1.5 and settings.idle_timeout == 0


def test_web_is_repeatable() -> None:
    options = parse("--web", "tcp:0:interface=127.0.0.1", "--web", "tcp:0")
    assert options["web"] == ["tcp:0:interface=127.0.0.1", "tcp:0"]
    assert parse()["web"] == []


def test_auth_gives_a_checker() -> None:
    options = parse("--auth", "memory:lord:secret")
    assert len(options["credCheckers"]) == 1


@pytest.mark.parametrize("argv", [
    ["--size", "1"],
    ["--size", "0"],
    ["--size", "-3"],
    ["--size", "2.5"],
    ["--size", "five"],
    ["--event-wait", "0"],
    ["--event-wait", "-1"],
    ["--event-wait", "nan"],
    ["--event-wait", "soon"],
    ["--max-rate", "-1"],
    ["--max-per-address", "x"],
    ["--max-realms", "-1"],
    ["--login-timeout", "-5"],
    ["--idle-timeout", "nan"],
    ["--idle-timeout", "inf"],
    ["--login-timeout", "inf"],
    ["--event-wait", "inf"],
    ["--max-rate", "inf"],
    ["--drain-timeout", "inf"],
    ["--realm", "no such realm"],
    ["--realm", "1st"],
    ["--realm", ""],
    ["--listen", "bogus:1"],
    ["--listen", "tcp:notaport"],
    ["--listen", "tcp"],
    ["--listen", "tcp:1:nonsense=2"],
    ["--web", "bogus:1"],
    ["--web", "tcp:notaport"],
    ["--auth", "nosuchchecker:x"],
    ["--no-such-option"],
    ["extra-argument"],
])
def test_bad_values_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(usage.UsageError):
        parse(*argv)


def test_the_operators_console_is_kept_private() -> None:
    assert parse("--admin", "unix:/run/realm/admin.sock")["admin"] == [
        "unix:/run/realm/admin.sock:mode=600"]  # Twisted's own default is 666
    assert parse("--admin", "unix:a.sock:mode=660")["admin"] == ["unix:a.sock:mode=660"]
    assert parse("--admin", "unix:mode=660:address=a.sock")["admin"] == [
        "unix:mode=660:address=a.sock"]
    assert parse("--admin", "haproxy:unix:a.sock")["admin"] == ["haproxy:unix:a.sock:mode=600"]
    for given in ("tcp:9999", "tcp:9999:interface=", "haproxy:tcp:9999"):  # else every one
        assert parse("--admin", given)["admin"] == [f"{given}:interface=127.0.0.1"]
    assert parse("--admin", "tcp6:9999")["admin"] == [r"tcp6:9999:interface=\:\:1"]
    assert parse("--admin", "TCP6:9999")["admin"] == [r"TCP6:9999:interface=\:\:1"]
    assert parse("--admin", "tcp:9999:10.0.0.7")["admin"] == ["tcp:9999:10.0.0.7"]
    assert parse("--admin", "tcp:9999:interface=0.0.0.0")["admin"] == [
        "tcp:9999:interface=0.0.0.0"]  # asked for
