"""The docs stay in step with the program: the server lines they show as
examples are lines the server sends (realm.wire reads each back), and
every player command is in both command tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from realm import wire
from realm.commands import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "docs/PROTOCOL.md", "docs/CLUSTER.md"]


def example_lines(doc: str) -> list[str]:
    """The server lines of `doc`'s indented example blocks."""
    text = (ROOT / doc).read_text("utf-8")
    return [line.strip() for line in text.splitlines() if re.match(r" {4,}\*\*\* ", line)]


def reads_back(line: str) -> bool:
    if line.endswith(" ..."):  # an example cut short
        line = line.removesuffix(" ...")
        return wire.is_event(line) or wire.read_report(line) is not None
    if wire.is_event(line):
        return wire.event_options(line) is not None
    return (wire.kind(line) is not None or wire.read_report(line) is not None
            or wire.is_reign_ended(line))


@pytest.mark.parametrize("doc", DOCS)
def test_the_example_lines_are_lines_the_server_sends(doc: str) -> None:
    assert [line for line in example_lines(doc) if not reads_back(line)] == []


def test_the_examples_show_the_lines_a_player_meets_first() -> None:
    shown = example_lines("README.md") + example_lines("docs/PROTOCOL.md")
    for kind in (wire.is_event, wire.is_reign_ended, wire.WELCOME.matches):
        assert any(kind(line) for line in shown), kind


@pytest.mark.parametrize("doc", ["README.md", "docs/PROTOCOL.md"])
def test_every_command_is_in_the_command_table(doc: str) -> None:
    """The table whose first column is `command`: a row a command, no more."""
    lines = (ROOT / doc).read_text("utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| command |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    listed = [re.match(r"\| `--([a-z]+)", row).group(1) for row in rows]  # type: ignore[union-attr]
    assert sorted(listed) == sorted(COMMANDS)
