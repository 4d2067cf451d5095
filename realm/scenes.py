"""The reign's story as data: scenes, their options, and what each does.

The words live in `realm/data/scenes.toml` (its header describes the
format); this module reads them once, at import, checks every rule the
game relies on, and raises `SceneError` naming the place when one is
broken: an unknown holding or action, a scene with fewer than two
wordings or options, an action listed twice in one scene, an action with
no effect of its own, a sentence that would break the wire's lines.
`STORY` is the checked story; `realm.reign` plays it.

Text fields: a scene's wordings and every `says` sentence may hold
`{other}` (another member, or a courtier); the reasons a reign ends hold
no fields.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from realm import lore, wire

#: What a realm holds, in the order the `[Realm]` line lists them.  Favour
#: is the court's regard for the Lord.
HOLDINGS = ("Gold", "Food", "Men", "Favour")
#: Every holding is a whole number in LOWEST..HIGHEST.
LOWEST, HIGHEST = 0, 100
#: Text fields a scene's wordings and sentences may use.
FIELDS = ("other",)
#: The fewest wordings and options a scene may have.
MIN_TOLD = 2
MIN_OPTIONS = 2

_FORMATTER = string.Formatter()


class SceneError(ValueError):
    """The story's data breaks one of its rules; the message says where."""


@dataclass(frozen=True)
class Effect:
    """What a decision does: each holding's change, and what is said of it."""

    #: (holding, change) pairs, none zero, in `HOLDINGS` order.
    changes: tuple[tuple[str, int], ...]
    #: The sentences for the `[Realm]` line, one drawn each time.
    says: tuple[str, ...]


@dataclass(frozen=True)
class Option:
    """One fitting answer to a scene: an action and its effect there."""

    action: str  # as in lore.ACTIONS: "fight"
    offered: str  # as an event offers it (lore.ING): "fighting"
    effect: Effect


@dataclass(frozen=True)
class Scene:
    """One scene: its wordings and its fitting options (two or more)."""

    told: tuple[str, ...]
    options: tuple[Option, ...]

    def option(self, action: str) -> Option | None:
        """This scene's option for `action`, if it has one."""
        for option in self.options:
            if option.action == action:
                return option
        return None


@dataclass(frozen=True)
class Story:
    """Everything the reign tells, checked."""

    scenes: tuple[Scene, ...]
    #: Every action of `lore.ACTIONS`: its effect when named off the options.
    actions: Mapping[str, Effect]
    #: A decision that names no action.
    confusion: Effect
    #: Why a reign falls, for each holding at 0.
    fallen: Mapping[str, tuple[str, ...]]
    #: Why a reign is won, or won with a holding nearly spent, or abandoned.
    won: tuple[str, ...]
    narrowly: tuple[str, ...]
    abandoned: tuple[str, ...]


def parse(text: str, source: str = "<scenes>") -> Story:
    """Read and check a story in the format of `realm/data/scenes.toml`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        hint = (" (is an action listed twice in one scene's options?)"
                if "overwrite" in str(error) else "")
        raise SceneError(f"{source}: {error}{hint}") from None
    _keys(data, {"scene", "actions", "confusion", "fallen", "ending"}, source)
    scenes = data["scene"]
    if not isinstance(scenes, list) or not scenes:
        raise SceneError(f"{source}: no [[scene]] at all")
    ending = data["ending"]
    _keys(ending, {"won", "narrowly", "abandoned"}, f"{source}: [ending]")
    return Story(
        scenes=tuple(_scene(s, f"{source}: scene {n}") for n, s in enumerate(scenes, 1)),
        actions=_actions(data["actions"], f"{source}: [actions]"),
        confusion=_effect(data["confusion"], f"{source}: [confusion]"),
        fallen=_fallen(data["fallen"], f"{source}: [fallen]"),
        won=_sentences(ending["won"], f"{source}: [ending] won", ()),
        narrowly=_sentences(ending["narrowly"], f"{source}: [ending] narrowly", ()),
        abandoned=_sentences(ending["abandoned"], f"{source}: [ending] abandoned", ()))


def load() -> Story:
    """The game's own story, from the package's `data/scenes.toml`."""
    found = resources.files("realm.data").joinpath("scenes.toml")
    return parse(found.read_text(encoding="utf-8"), "realm/data/scenes.toml")


def _keys(data: Any, wanted: set[str], where: str) -> None:
    """`data` is a table with exactly the keys `wanted`."""
    if not isinstance(data, dict):
        raise SceneError(f"{where}: expected a table")
    unknown = sorted(set(data) - wanted)
    if unknown:
        raise SceneError(f"{where}: unknown key {unknown[0]!r} "
                         f"(expected {', '.join(sorted(wanted))})")
    missing = sorted(wanted - set(data))
    if missing:
        raise SceneError(f"{where}: {missing[0]!r} is missing")


def _scene(data: Any, where: str) -> Scene:
    _keys(data, {"told", "options"}, where)
    told = _sentences(data["told"], f"{where} told", FIELDS)
    where = f"{where} ({told[0][:40]}...)"
    if len(told) < MIN_TOLD:
        raise SceneError(f"{where}: {len(told)} wording; a scene needs at least "
                         f"{MIN_TOLD}")
    options = data["options"]
    if not isinstance(options, dict):
        raise SceneError(f"{where}: options: expected a table of actions")
    if len(options) < MIN_OPTIONS:
        raise SceneError(f"{where}: {len(options)} option; a scene needs at least "
                         f"{MIN_OPTIONS}, each a different action")
    return Scene(told, tuple(
        Option(_action(action, f"{where} options"), lore.ING[action],
               _effect(effect, f"{where} option {action!r}"))
        for action, effect in options.items()))


def _action(action: str, where: str) -> str:
    if action not in lore.ING:
        raise SceneError(f"{where}: unknown action {action!r} (actions are "
                         "lore.ACTIONS; add one there and to lore.ING)")
    return action


def _actions(data: Any, where: str) -> dict[str, Effect]:
    if not isinstance(data, dict):
        raise SceneError(f"{where}: expected a table of actions")
    effects = {_action(action, where): _effect(effect, f"{where} {action!r}")
               for action, effect in data.items()}
    missing = [action for action in lore.ACTIONS if action not in effects]
    if missing:
        raise SceneError(f"{where}: no effect for the action {missing[0]!r}; "
                         "every action of lore.ACTIONS needs its own")
    return effects


def _effect(data: Any, where: str) -> Effect:
    """`{ Holding = change, ..., says = "..." | [...] }`."""
    if not isinstance(data, dict) or "says" not in data:
        raise SceneError(f"{where}: expected {{ Holding = change, ..., says = ... }}")
    changes = {}
    for holding, change in data.items():
        if holding == "says":
            continue
        if holding not in HOLDINGS:
            raise SceneError(f"{where}: unknown holding {holding!r} (holdings are "
                             f"{', '.join(HOLDINGS)})")
        if type(change) is not int or not -HIGHEST <= change <= HIGHEST:
            raise SceneError(f"{where}: {holding} = {change!r}: a change must be a "
                             f"whole number from {-HIGHEST} to {HIGHEST}")
        if change:
            changes[holding] = change
    if not changes:
        raise SceneError(f"{where}: changes no holding; an effect must change one")
    says = data["says"]
    return Effect(tuple((h, changes[h]) for h in HOLDINGS if h in changes),
                  _sentences([says] if isinstance(says, str) else says,
                             f"{where} says", FIELDS))


def _fallen(data: Any, where: str) -> dict[str, tuple[str, ...]]:
    _keys(data, set(HOLDINGS), where)
    fallen = {}
    for holding in HOLDINGS:
        sentences = _sentences(data[holding], f"{where} {holding}", ())
        for sentence in sentences:
            if holding not in sentence:
                raise SceneError(f"{where} {holding}: {sentence!r} does not name "
                                 f"the holding {holding}")
        fallen[holding] = sentences
    return fallen


def _sentences(data: Any, where: str, fields: tuple[str, ...]) -> tuple[str, ...]:
    """A non-empty list of one-line sentences using only `fields`."""
    if not isinstance(data, list) or not data:
        raise SceneError(f"{where}: expected a list of sentences")
    for sentence in data:
        if not isinstance(sentence, str) or not sentence.strip():
            raise SceneError(f"{where}: {sentence!r} is not a sentence")
        if any(c in sentence for c in "\r\n") or wire.SEPARATOR in sentence:
            raise SceneError(f"{where}: {sentence!r} would break the line "
                             f"(no line breaks, no {wire.SEPARATOR.strip()!r})")
        try:
            used = [name for _, name, _, _ in _FORMATTER.parse(sentence)
                    if name is not None]
        except ValueError as error:
            raise SceneError(f"{where}: {sentence!r}: {error}") from None
        for name in used:
            if name not in fields:
                allowed = ", ".join("{" + f + "}" for f in fields) or "none"
                raise SceneError(f"{where}: {sentence!r} uses {{{name}}}; "
                                 f"fields allowed here: {allowed}")
    return tuple(data)


#: The game's story, read and checked once.
STORY = load()
