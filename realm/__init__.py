"""realm: a multiplayer Game of Thrones chat game served by Twisted."""
