from twisted.application.service import ServiceMaker

realm = ServiceMaker(
    "realm", "realm.tap", "A multiplayer Game of Thrones chat game.", "realm")
