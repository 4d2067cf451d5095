"""The game's data files, read with `importlib.resources` (see `realm.scenes`)."""
