"""Draw the next story event: a scene, a narrator and two options.

Pure: the caller passes the members' names and a `random.Random`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from realm import lore

PREFIX = "[New Event] "


def draw_event(rng: random.Random, members: Sequence[str]) -> str:
    """One event line (without the `*** ` marker).

    `members` are the names of the members other than the Lord; the
    narrator and the `{other}` of a scene are drawn from them, falling
    back to a stranger and a courtier when there are too few.
    """
    people = list(members)
    rng.shuffle(people)
    narrator = people.pop() if people else rng.choice(lore.STRANGERS)
    other = people.pop() if people else rng.choice(lore.COURTIERS)
    a, b = rng.sample(lore.ACTIONS, 2)
    herald = rng.choice(lore.HERALDS).format(narrator=narrator)
    scene = rng.choice(lore.EVENTS).format(other=other, a=lore.ING[a], b=lore.ING[b])
    return f"{PREFIX}{herald} {scene}"
