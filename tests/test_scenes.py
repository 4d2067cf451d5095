"""The reign's story data: the shipped file walked whole, and the loader's checks."""

from __future__ import annotations

import string
from importlib import resources

import pytest

from realm import lore, wire
from realm.scenes import HOLDINGS, STORY, Effect, SceneError, parse

SEED_SCENES = (
    "There is a sudden attack from the north! What shall we do, my Lord?",
    "The crew is out of food because {other} strolled all day instead of gathering supplies.",
    "{other} has been sentenced to eternal eating by the Small Council. How do we answer?",
)


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _effects() -> list[tuple[str, Effect]]:
    found = [(f"scene {n} {o.action}", o.effect)
             for n, scene in enumerate(STORY.scenes, 1) for o in scene.options]
    found += [(f"action {a}", e) for a, e in STORY.actions.items()]
    return [*found, ("confusion", STORY.confusion)]


# -- the shipped story -----------------------------------------------------------
def test_enough_scenes_each_told_three_ways_with_three_options() -> None:
    assert len(STORY.scenes) >= 40
    for scene in STORY.scenes:
        assert len(set(scene.told)) >= 3, scene.told[0]
        assert len(scene.options) >= 3, scene.told[0]


@pytest.mark.parametrize("wording", SEED_SCENES)
def test_the_seeds_scenes_are_among_them(wording: str) -> None:
    assert any(wording in scene.told for scene in STORY.scenes)


def test_every_option_is_a_different_known_action_offered_in_its_ing_form() -> None:
    for scene in STORY.scenes:
        actions = [option.action for option in scene.options]
        assert len(set(actions)) == len(actions), scene.told[0]
        for option in scene.options:
            assert option.action in lore.ACTIONS
            assert option.offered == lore.ING[option.action]
            assert scene.option(option.action) is option
        assert scene.option("no-such-action") is None


def test_the_crew_out_of_food_is_offered_food_not_forging() -> None:
    crew = next(s for s in STORY.scenes if SEED_SCENES[1] in s.told)
    assert {o.action for o in crew.options} <= {"hunt", "ration", "trade", "gather"}


def test_every_action_has_its_own_effect() -> None:
    assert set(STORY.actions) == set(lore.ACTIONS)


def test_every_effect_changes_known_holdings_and_says_something() -> None:
    for where, effect in _effects():
        assert effect.changes, where
        names = [name for name, _ in effect.changes]
        assert names == [h for h in HOLDINGS if h in names], where  # in HOLDINGS order
        assert all(change != 0 and -100 <= change <= 100 for _, change in effect.changes)
        assert effect.says and all(s.strip() for s in effect.says), where


def test_confusion_costs_favour_and_has_several_sentences() -> None:
    assert dict(STORY.confusion.changes)["Favour"] < 0
    assert len(STORY.confusion.says) >= 3


def test_every_text_fills_with_other_only_and_fits_one_line() -> None:
    texts = [t for scene in STORY.scenes for t in scene.told]
    texts += [s for _, effect in _effects() for s in effect.says]
    for text in texts:
        assert _fields(text) <= {"other"}, text
        filled = text.format(other="Arya")
        assert "{" not in filled and "}" not in filled
        assert "\n" not in filled and wire.SEPARATOR not in filled
    endings = [*STORY.won, *STORY.narrowly, *STORY.abandoned,
               *(s for h in HOLDINGS for s in STORY.fallen[h])]
    assert all(not _fields(text) for text in endings)


def test_a_herald_and_a_wording_read_as_one_sentence() -> None:
    """Every herald ends `...:`, so no wording holds a colon of its own
    (`A raven from Bran: The cellar master reports: ...`), nor says again
    that someone reports or whispers; no ending's reason holds one either
    (`[Reign Ended] Fallen: ...`)."""
    assert all(herald.endswith(":") for herald in lore.HERALDS)
    for text in (t for scene in STORY.scenes for t in scene.told):
        assert ":" not in text and " reports" not in text and "whispers" not in text, text
    endings = [*STORY.won, *STORY.narrowly, *(s for h in HOLDINGS for s in STORY.fallen[h])]
    assert not [text for text in endings if ":" in text]


def test_each_fall_names_its_holding() -> None:
    assert set(STORY.fallen) == set(HOLDINGS)
    for holding, sentences in STORY.fallen.items():
        assert sentences and all(holding in s for s in sentences)
    assert STORY.won and STORY.narrowly and STORY.abandoned


def test_the_data_file_is_package_data() -> None:
    text = resources.files("realm.data").joinpath("scenes.toml").read_text("utf-8")
    assert parse(text) == STORY


# -- the loader's checks ----------------------------------------------------------------
def _story(scene: str = "", actions: dict[str, str] | None = None) -> str:
    """A small valid story, with `scene` in place of its one scene's options."""
    effects = {action: '{ Gold = -1, says = "Done." }' for action in lore.ACTIONS}
    effects.update(actions or {})
    return "\n".join([
        "[[scene]]",
        'told = ["One {other}.", "Two."]',
        "[scene.options]",
        scene or 'fight = { Men = -5, says = "Won." }\nflee = { Favour = -5, says = "Ran." }',
        "[actions]",
        *(f"{a} = {e}" for a, e in effects.items()),
        "[confusion]",
        'Favour = -5',
        'says = ["Eh?"]',
        "[fallen]",
        *(f'{h} = ["No {h} left."]' for h in HOLDINGS),
        "[ending]",
        'won = ["Hurrah."]',
        'narrowly = ["Phew."]',
        'abandoned = ["Gone."]',
    ])


def test_a_small_story_parses() -> None:
    story = parse(_story())
    assert [o.action for o in story.scenes[0].options] == ["fight", "flee"]
    assert story.scenes[0].told == ("One {other}.", "Two.")
    assert story.scenes[0].options[0].effect == Effect((("Men", -5),), ("Won.",))
    assert story.confusion.says == ("Eh?",)


@pytest.mark.parametrize(("options", "error"), [
    ('fight = { Glod = -5, says = "x" }\nflee = { Men = 1, says = "y" }',
     "unknown holding 'Glod'"),
    ('fight = { Men = -5, says = "x" }\ndance = { Men = 1, says = "y" }',
     "unknown action 'dance'"),
    ('fight = { Men = -5, says = "x" }', "1 option; a scene needs at least 2"),
    ('fight = { Men = -5, says = "x" }\nfight = { Men = 1, says = "y" }',
     "listed twice in one scene"),
    ('fight = { Men = -5 }\nflee = { Men = 1, says = "y" }', "says = ..."),
    ('fight = { Men = 0, says = "x" }\nflee = { Men = 1, says = "y" }', "changes no holding"),
    ('fight = { Men = true, says = "x" }\nflee = { Men = 1, says = "y" }', "whole number"),
    ('fight = { Men = 101, says = "x" }\nflee = { Men = 1, says = "y" }', "whole number"),
    ('fight = { Men = 1, says = "x {narrator}" }\nflee = { Men = 1, says = "y" }',
     "uses {narrator}"),
    ('fight = { Men = 1, says = "x \u00b7 y" }\nflee = { Men = 1, says = "y" }',
     "would break the line"),
    ('fight = { Men = 1, says = [] }\nflee = { Men = 1, says = "y" }', "list of sentences"),
])
def test_broken_options_are_refused_clearly(options: str, error: str) -> None:
    with pytest.raises(SceneError, match=error.replace("(", r"\(").replace("{", r"\{")) as e:
        parse(_story(options), "test.toml")
    assert str(e.value).startswith("test.toml")


def test_a_scene_told_one_way_is_refused() -> None:
    text = _story().replace('told = ["One {other}.", "Two."]', 'told = ["One."]')
    with pytest.raises(SceneError, match="1 wording; a scene needs at least 2"):
        parse(text)


def test_an_action_without_its_own_effect_is_refused() -> None:
    text = _story().replace("\nwed = ", "\n# wed = ")
    with pytest.raises(SceneError, match="no effect for the action 'wed'"):
        parse(text)


def test_a_fall_that_does_not_name_its_holding_is_refused() -> None:
    text = _story().replace('Food = ["No Food left."]', 'Food = ["We starve."]')
    with pytest.raises(SceneError, match="does not name the holding Food"):
        parse(text)


@pytest.mark.parametrize(("old", "new", "error"), [
    ("[ending]", "[ending]\nlost = []", "unknown key 'lost'"),
    ('won = ["Hurrah."]', "", "'won' is missing"),
    ('won = ["Hurrah."]', 'won = ["Hurrah, {other}."]', "fields allowed here: none"),
    ('told = ["One {other}.", "Two."]', 'told = ["One {other}.", "Two."]\nnarrator = 1',
     "unknown key 'narrator'"),
])
def test_other_broken_stories_are_refused(old: str, new: str, error: str) -> None:
    with pytest.raises(SceneError, match=error):
        parse(_story().replace(old, new, 1))


def test_no_scene_at_all_is_refused() -> None:
    text = "scene = []\n" + _story()[_story().index("[actions]"):]
    with pytest.raises(SceneError, match=r"no \[\[scene\]\] at all"):
        parse(text)
