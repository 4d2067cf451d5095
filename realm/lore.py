"""The words of the game: names, actions, events and replies, as plain data.

Nothing here does I/O or draws at random; `realm.reign` and `realm.bot`
pick from these tuples with an injected random source.  The reign's
scenes, with their options and effects, are data too, in
`realm/data/scenes.toml` (read by `realm.scenes`); its wordings may
name `{other}` (another member, or someone of the court), and a herald
below names `{narrator}` (a member other than the Lord, or a stranger).
"""

#: Names a bot may take: valid names that the server stores as written
#: (tests/test_names.py walks the pool).
NAMES = (
    "Arya", "Sansa", "Bran", "Rickon", "Robb", "Jon", "Ned", "Catelyn",
    "Tyrion", "Cersei", "Jaime", "Tywin", "Joffrey", "Tommen", "Myrcella",
    "Daenerys", "Jorah", "Missandei", "Meera", "Varys", "Littlefinger",
    "Brienne", "Podrick", "Davos", "Stannis", "Melisandre", "Samwell",
    "Gilly", "Tormund", "Ygritte", "Theon", "Yara", "Sandor", "Gregor",
    "Oberyn", "Ellaria", "Bronn", "Gendry", "Hodor", "Margaery", "Olenna",
    "Loras", "Ramsay", "Roose", "Walder", "Qyburn", "Shae", "Osha",
)

#: Actions the Lord may name.  Bots know each as the word itself and its
#: `-ing` form (`eat` / `eating`), see `ING`.
ACTIONS = (
    "eat", "feast", "hunt", "fight", "ride", "sail", "pray", "drink",
    "march", "build", "burn", "train", "scout", "parley", "flee", "hide",
    "rest", "sing", "torture", "trade", "spy", "forge", "bargain", "wed",
    "ration", "pardon", "pay", "tax", "bribe", "heal", "gather", "feed",
)

#: The `-ing` form of each action, spelt out where adding "ing" is wrong.
ING = {
    "eat": "eating", "feast": "feasting", "hunt": "hunting",
    "fight": "fighting", "ride": "riding", "sail": "sailing",
    "pray": "praying", "drink": "drinking", "march": "marching",
    "build": "building", "burn": "burning", "train": "training",
    "scout": "scouting", "parley": "parleying", "flee": "fleeing",
    "hide": "hiding", "rest": "resting", "sing": "singing",
    "torture": "torturing", "trade": "trading", "spy": "spying",
    "forge": "forging", "bargain": "bargaining", "wed": "wedding",
    "ration": "rationing", "pardon": "pardoning", "pay": "paying",
    "tax": "taxing", "bribe": "bribing", "heal": "healing",
    "gather": "gathering", "feed": "feeding",
}


#: How a narrator brings the news; `{narrator}` is filled in.
HERALDS = (
    "{narrator} brings word:",
    "{narrator} bursts into the hall:",
    "{narrator} whispers:",
    "{narrator} reads out a raven:",
    "{narrator} reports:",
)

#: Who narrates when no member fits.
STRANGERS = ("A stranger", "A hooded traveller", "An old maester", "A sellsword")

#: Who "other" is when the realm has nobody else to blame.
COURTIERS = ("Tyrion", "Hodor", "Samwell", "the cook", "the court jester")

# -- Bot replies ---------------------------------------------------------
#: Approval for an action the bot knows; `{word}` is the word it heard.
APPROVAL = (
    "{word}? Proposal accepted!",
    "{word}! A wise choice, my Lord.",
    "{word}, yes. The realm will remember this.",
    "{word}? At last, a Lord who knows what we need.",
    "{word}! It shall be done before nightfall.",
    "{word}? Aye, I am with you.",
)

#: Delight when the Lord picks one of the event's offered options.
DELIGHT = (
    "{word}! Exactly what I hoped for, my Lord!",
    "{word}! The gods smile on your choice!",
    "{word}! Long may you rule!",
    "{word}, as the raven foretold. Splendid!",
)

#: Distaste for a message that names no known action.
DISTASTE = (
    "Request unheard of!",
    "What madness is this?",
    "My Lord, the smallfolk will laugh at us.",
    "I did not ride all night to hear this.",
    "That is not how things are done in Westeros.",
    "Not even a mummer's fool would ask that.",
)

#: What a bot says to the Lord while the realm waits to be full again.
PATIENCE = (
    "We must wait until every seat is filled, my Lord.",
    "Nothing can be decided until the realm is whole again.",
    "The hall is not full yet, my Lord. Patience.",
)

#: The Lord names an option or an action once the event is decided: that
#: line is talk, and changes nothing.
DECIDED = (
    "It is decided already, my Lord.",
    "As you have commanded, my Lord: it is in hand.",
    "We heard you the first time, my Lord.",
)

#: A bot whose loyalty has run out says one of these and leaves.
DESERTION = (
    "I have had enough of this Lord. Farewell!",
    "You are no Lord of mine. I am leaving.",
    "I will find a better Lord across the Narrow Sea.",
)

#: A bot's worry when a holding of the realm is low, added to its reply;
#: one tuple for each holding (realm.scenes.HOLDINGS).
WORRIES = {
    "Gold": (
        "But our coffers are bare, my Lord!",
        "And the treasury echoes when you walk in it.",
        "Not a copper is left for the sellswords.",
    ),
    "Food": (
        "But the granaries are empty, my Lord!",
        "And the smallfolk are eating their boots.",
        "I have not eaten since the last moon.",
    ),
    "Men": (
        "But we have hardly a sword left to hold the walls.",
        "And who will fight for us? The barracks are empty.",
        "Half the garrison lies in the crypts already.",
    ),
    "Favour": (
        "But the court laughs behind your back, my Lord.",
        "And the lords whisper of a new Lord.",
        "Even the jester mocks you now.",
    ),
}
