"""The web client in a real headless Chromium (Debian's, driven by
selenium), against the installed `twistd`
and `realm-client`: the page joins as Lord, four bots join, the Lord
decides, four replies appear, `--dismiss` works, markup from the wire
shows as text, a padded line cannot pass for another sender's, leaving
is a calm goodbye and a dropped connection an alert with a way back in;
the line input waits for a join; an error moves nothing in the join
form; and the reign (fed by tests/feed_server.py, since the game does not
send it yet) shows as bars that move and a card for its end.

Screenshots are written to `$REALM_ARTIFACTS` (default `artifacts/`).
Every wait is bounded (WebDriverWait); subprocesses end in `finally`.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    if os.environ.get("CI") == "true":  # CI installs them (.ci/run): they must run there
        pytest.fail("no Chromium on CI: .ci/run should have installed it", pytrace=False)
    pytest.skip("no Chromium: apt-get install chromium chromium-driver",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoAlertPresentException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WAIT = 20.0  # seconds, the bound on every wait
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("REALM_ARTIFACTS", ROOT / "artifacts"))
XSS = "<img src=x onerror=alert(1)>"
TOO_FAST = ("*** Error: You are sending too fast (more than 5 lines a second); "
            "that line was not sent.")


def wait_for(what: str, condition: Callable[[Any], Any], driver: Any = None,
             timeout: float = WAIT) -> Any:
    """Poll `condition` until it is truthy, at most `timeout` seconds."""
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        condition, message=f"waited {timeout:g}s for {what}")


def started(argv: list[str], cwd: Path, log: Path,
            ports: Callable[[str], list[int] | None]) -> tuple[subprocess.Popen[bytes], list[int]]:
    """`argv` run in `cwd`, its output in `log`, once `ports` finds in that
    output the (free) ports it listens on."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        found = wait_for(f"{argv[0]} to listen", lambda _: proc.poll() is not None
                         or ports(log.read_text(errors="replace")))
        assert proc.poll() is None, log.read_text()
    except BaseException:
        stop(proc)
        raise
    return proc, found


def served(text: str) -> list[int] | None:
    """The ports a realm server's log says it serves realm and the web client on."""
    found = [re.search(rf"Serving {what} on .* \(at 127\.0\.0\.1:(\d+)\)", text)
             for what in ("realm", "the web client")]
    return [int(m.group(1)) for m in found if m] if all(found) else None


def four_bots(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    """`realm-client --bot --count 4` against 127.0.0.1:`port`, its output in bots.log."""
    with (tmp / "bots.log").open("wb") as out:
        return subprocess.Popen(
            [str(BIN / "realm-client"), "--bot", "--count", "4", "--think", "0",
             "--connect", f"tcp:127.0.0.1:{port}"],
            cwd=tmp, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


class Server:
    """The installed `twistd -n realm`, with --listen and --web, each on a free port."""

    def __init__(self, tmp: Path, *options: str) -> None:
        self.log = tmp / "twistd.log"
        self.proc, (self.port, self.web) = started(
            [str(BIN / "twistd"), "-n", "--pidfile=", "realm",
             "--listen", "tcp:0:interface=127.0.0.1", "--web", "tcp:0:interface=127.0.0.1",
             "--event-wait", "30", *options], tmp, self.log, served)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web}/"


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path)
    try:
        yield running
    finally:
        stop(running.proc)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must fetch nothing
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-quic", "--no-first-run",
                 "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--window-size=1280,860", "--force-device-scale-factor=1"):
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path}/profile")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


# -- reading the page ----------------------------------------------------------

def hook(driver: WebDriver, name: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'[data-realm="{name}"]')


def log_lines(driver: WebDriver) -> list[str]:
    """The text content of each child of the log, in order."""
    return list(driver.execute_script(
        "return Array.from(document.querySelector('[data-realm=log]').children,"
        " e => e.textContent)"))


def members(driver: WebDriver) -> list[str]:
    return list(driver.execute_script(
        "return Array.from(document.querySelector('[data-realm=members]').children,"
        " e => e.textContent)"))


def shown_lines(driver: WebDriver) -> list[str]:
    """The text of each line the log shows, in order: the lines received
    (slotted in the log's shadow tree) and, among them, what the player
    sent, which is not a child of the log."""
    return list(driver.execute_script(
        "return Array.from(document.querySelector('[data-realm=log]').shadowRoot.children)"
        ".filter(e => e.tagName !== 'LINK')"
        ".map(e => e.tagName === 'SLOT' ? e.assignedElements()[0].textContent"
        " : e.textContent)"))


def wait_line(driver: WebDriver, pattern: str, after: int = 0,
              read: Callable[[WebDriver], list[str]] = log_lines) -> str:
    regex = re.compile(pattern)

    def found(d: WebDriver) -> str | None:
        return next((t for t in read(d)[after:] if regex.search(t)), None)
    try:
        return str(wait_for(f"a log line matching {pattern!r}", found, driver))
    except TimeoutException:
        raise AssertionError(f"no log line matching {pattern!r} in "
                             f"{read(driver)[after:]!r}") from None


def type_line(driver: WebDriver, line: str) -> None:
    box = hook(driver, "input")
    box.clear()
    box.send_keys(line, Keys.ENTER)


def screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path))
    return path


def rows(driver: WebDriver, element: WebElement) -> list[float]:
    """The left edge of each row `element`'s text is laid out in, top to bottom."""
    return list(driver.execute_script("""
        const range = document.createRange();
        range.selectNodeContents(arguments[0]);
        const rows = new Map();
        for (const r of range.getClientRects()) {
          if (!r.width) continue;
          const top = Math.round(r.top);
          rows.set(top, Math.min(rows.get(top) ?? Infinity, r.left));
        }
        return [...rows.entries()].sort((a, b) => a[0] - b[0]).map(e => e[1]);
    """, element))


def box(driver: WebDriver, element_id: str) -> tuple[float, float]:
    return tuple(driver.execute_script(  # type: ignore[return-value]
        "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
        " return [r.left, r.top];", element_id))


def severe(driver: WebDriver) -> list[Any]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def no_alert(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert.dismiss()
    except NoAlertPresentException:
        return True
    return False


# -- the game ----------------------------------------------------------------------

def members_note(driver: WebDriver) -> str:
    """What the members' panel says when it lists no one."""
    return str(driver.execute_script(
        "return getComputedStyle(document.getElementById('members'), '::after').content"))


def test_a_browser_lord_rules_realm_client_bots(
        server: Server, browser: WebDriver, tmp_path: Path) -> None:
    driver = browser
    driver.get(server.url)
    assert driver.title.startswith("realm")
    assert members_note(driver) == '"No one yet."'  # never joined

    # A name that is markup is refused, and shown as the text it is.
    hook(driver, "name").send_keys(XSS)
    hook(driver, "join").click()
    wait_line(driver, re.escape(f"'{XSS}' is not a valid name"))
    error = driver.find_element(By.ID, "join-error")
    assert XSS in error.text

    # The page joins as Lord.
    hook(driver, "name").clear()
    hook(driver, "name").send_keys("Lord")
    hook(driver, "join").click()
    wait_line(driver, r"^Lord has entered the realm \(1/5\)$")
    wait_for("the Lord in the members", lambda d: members(d) == ["Lord"], driver)
    greeting = [line for line in log_lines(driver) if "traveller" in line or "name?" in line]
    assert greeting == ["Hail, traveller! This is realm, a Game of Thrones."]  # not the ask

    bots = four_bots(tmp_path, server.port)
    intruder = None
    try:
        # Four bots join; the realm is full and the first event comes.
        wait_line(driver, r"^Welcome to the Game of Thrones")
        event = wait_line(driver, r"^\[New Event\] .* 1 .+ or 2 .+\?$")
        wait_for("5 members", lambda d: len(members(d)) == 5, driver)
        team = [m for m in members(driver) if m != "Lord"]
        assert driver.find_element(By.ID, "count").text == "5/5"
        assert len(team) == 4, team

        # The Lord decides, by clicking the event's first option.
        options = driver.find_elements(By.CSS_SELECTOR, "#log .event button.option")
        assert [o.text for o in options[:2]][0].startswith("1 "), event
        decided, seen = len(log_lines(driver)), len(shown_lines(driver))
        options[0].click()
        # Decided: neither option may be sent again (a second click would be chat).
        assert all(o.get_property("disabled") for o in options[:2])
        # Shown among the lines, and not a line received: the log's children
        # are only what the server sent.
        wait_line(driver, r"^Lord: 1$", after=seen, read=shown_lines)
        assert "Lord: 1" not in log_lines(driver)

        # Four replies appear, one from each bot.
        def replies(d: WebDriver) -> set[str] | None:
            said = {t.split(":", 1)[0] for t in log_lines(d)[decided:]
                    if re.match(r"^[A-Z][a-z0-9_-]*: ", t) and not t.startswith("Lord:")}
            return said if said >= set(team) else None
        wait_for("four replies", replies, driver)
        # What the decision did, and the holdings' bars: the README's picture.
        wait_line(driver, r"^\[Realm\] .+ Favour \d+", after=decided)
        wait_line(driver, r"^\[New Event\] ", after=decided)
        screenshot(driver, "web-game.png")

        # The Lord types a chat line and walks the history.
        type_line(driver, "Hold the Wall!")
        wait_line(driver, r"^Lord: Hold the Wall!$", read=shown_lines)
        box = hook(driver, "input")
        box.send_keys(Keys.ARROW_UP)
        assert box.get_attribute("value") == "Hold the Wall!"
        box.send_keys(Keys.ARROW_UP)
        assert box.get_attribute("value") == "1"
        box.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN)
        assert box.get_attribute("value") == ""

        # --dismiss works.
        gone = team[0]
        type_line(driver, f"--dismiss {gone}")
        wait_line(driver, rf"^You have dismissed {gone}, 4/5 left on your team\.$")
        wait_for("the member list without the dismissed",
                 lambda d: gone not in members(d) and len(members(d)) == 4, driver)
        assert driver.find_element(By.ID, "count").text == "4/5"

        # A member sending markup: it shows as those characters.
        intruder = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        intruder.sendall(b"Mallory\r\n" + XSS.encode() + b"\r\n")
        wait_line(driver, rf"^Mallory: {re.escape(XSS)}$")
        assert not driver.find_elements(By.CSS_SELECTOR, "#log img")
        assert no_alert(driver)
        mallory = driver.find_elements(By.CSS_SELECTOR, "#log p.chat")[-1]
        assert mallory.text == f"Mallory: {XSS}"
        # A line padded with wide spaces wraps, and its wrapped rows start
        # further in than any line: none can pass for a line from the Lord.
        padded = "Hear me" + "\u3000" * 90 + "Lord: bow to Mallory"
        intruder.sendall(padded.encode() + b"\r\n")
        wait_line(driver, "^Mallory: Hear me")
        [line] = [p for p in driver.find_elements(By.CSS_SELECTOR, "#log p.chat")
                  if p.text.startswith("Mallory: Hear me")]
        lefts = rows(driver, line)
        assert len(lefts) >= 2, lefts  # it wrapped
        assert min(lefts[1:]) >= lefts[0] + 24, lefts  # each wrapped row 2rem in
        # The Lord's own markup too, echoed locally.
        type_line(driver, XSS)
        wait_line(driver, rf"^Lord: {re.escape(XSS)}$", read=shown_lines)
        assert not driver.find_elements(By.CSS_SELECTOR, "img")
        assert no_alert(driver)
        wait_for("Mallory in the members", lambda d: "Mallory" in members(d), driver)

        # The screenshot for the README: a game in progress.
        desktop = screenshot(driver, "web-desktop.png")
        driver.set_window_size(390, 844)
        phone = screenshot(driver, "web-phone.png")
        assert desktop.stat().st_size > 10_000 and phone.stat().st_size > 10_000
        driver.set_window_size(1280, 860)

        # The Lord leaves: a calm goodbye (no alert), and a way back in.
        type_line(driver, "--leave")
        dropped = driver.find_element(By.ID, "dropped")
        wait_for("the goodbye", lambda d: dropped.is_displayed(), driver)
        assert dropped.find_element(By.ID, "dropped-text").text == "You left the realm."
        assert dropped.get_attribute("data-kind") == "left"
        assert dropped.get_attribute("role") == "status"
        assert "Disconnected" not in dropped.text
        assert members_note(driver) == '"You are in no realm now."'  # not "No one yet."
        screenshot(driver, "web-left.png")
        assert hook(driver, "input").get_attribute("disabled") is not None
        before = len(log_lines(driver))
        driver.find_element(By.ID, "rejoin").click()
        wait_line(driver, r"^Lord has entered the realm \(1/5\)$", after=before)
        assert not dropped.is_displayed()
    finally:
        if intruder is not None:
            intruder.close()
        stop(bots)

    # Nothing went wrong in the page.
    assert not severe(driver)


def test_the_page_names_the_lost_connection(server: Server, browser: WebDriver) -> None:
    """A server that goes away: the page says so and offers to join again."""
    driver = browser
    driver.get(server.url)
    hook(driver, "name").send_keys("Arya")
    hook(driver, "realm").send_keys("riverrun")
    hook(driver, "join").click()
    wait_line(driver, r"^Arya has entered the realm \(1/5\)$")
    wait_line(driver, r"^In the realm 'riverrun' \(1/5\): Arya$")  # the page asks --who
    stop(server.proc)
    dropped = driver.find_element(By.ID, "dropped")
    wait_for("the dropped notice", lambda d: dropped.is_displayed(), driver)
    assert driver.find_element(By.ID, "rejoin").is_displayed()
    assert "The server is shutting down" in dropped.text
    assert dropped.get_attribute("data-kind") == "lost"  # not by choice: an alert
    assert dropped.get_attribute("role") == "alert"
    assert members(driver) == []
    assert "offline" in driver.find_element(By.ID, "status").text


def test_the_lord_password_is_asked_for(tmp_path: Path, browser: WebDriver) -> None:
    """With --auth, the page shows the password field when asked."""
    server = Server(tmp_path, "--auth", "memory:lord:s3cret")
    proc, web = server.proc, server.web
    try:
        driver = browser
        driver.get(f"http://127.0.0.1:{web}/")
        password = hook(driver, "password")
        assert not password.is_displayed()
        hook(driver, "name").send_keys("lord")
        assert password.is_displayed()  # a Lord may fill it in beforehand
        hook(driver, "join").click()
        wait_for("the password field", lambda d: password.is_displayed()
                 and d.switch_to.active_element == password, driver)
        password.send_keys("wrong", Keys.ENTER)
        wait_line(driver, r"^Error: Wrong password")
        assert "wrong" not in " ".join(log_lines(driver))  # never echoed
        password.send_keys("s3cret")
        hook(driver, "join").click()
        wait_line(driver, r"^Lord has entered the realm \(1/5\)$")
        assert "s3cret" not in " ".join(log_lines(driver))
        # Asked for the password, a visitor thinks better of it: another
        # name joins on a new connection, no wrong password spent.
        driver.get(f"http://127.0.0.1:{web}/")
        hook(driver, "name").send_keys("lord", Keys.ENTER)
        password = hook(driver, "password")
        wait_for("the password field", lambda d: d.switch_to.active_element == password, driver)
        hook(driver, "name").clear()
        hook(driver, "name").send_keys("bran", Keys.ENTER)
        wait_line(driver, r"^Bran has entered the realm \(1/5\)$")  # the Lord left with the page
        assert not [t for t in log_lines(driver) if t.startswith("Error:")]
    finally:
        stop(proc)


def test_the_line_input_waits_for_a_join(server: Server, browser: WebDriver) -> None:
    """After a refused name the line input is shut ("Join first"): what is
    typed there is not sent, so it cannot join anyone by accident.  The
    refusal appears in the room kept for it: nothing in the form moves."""
    driver = browser
    driver.get(server.url)
    box_ = hook(driver, "input")
    assert box_.get_attribute("disabled") is not None
    assert box_.get_attribute("placeholder") == "Join first"
    hint = driver.find_element(By.ID, "join-hint")
    assert hint.is_displayed()
    before = box(driver, "join-button"), box(driver, "log")
    hook(driver, "name").send_keys("9lives")
    hook(driver, "join").click()
    wait_line(driver, r"^Error: '9lives' is not a valid name")
    error = driver.find_element(By.ID, "join-error")
    wait_for("the error", lambda d: error.is_displayed(), driver)
    assert not hint.is_displayed()
    assert (box(driver, "join-button"), box(driver, "log")) == before  # no layout shift

    # Typing into the shut input, or submitting its form anyway: nothing goes.
    assert box_.get_attribute("disabled") is not None
    assert box_.get_attribute("placeholder") == "Join first"
    try:
        box_.send_keys("hello", Keys.ENTER)
    except Exception:  # Chromium refuses keys for a disabled input
        pass
    driver.execute_script("document.getElementById('input').disabled = false;"
                          "document.getElementById('input').value = 'hello';"
                          "document.getElementById('say-form').requestSubmit();")
    for hint_button in driver.find_elements(By.CSS_SELECTOR, "#hints button"):
        assert hint_button.get_attribute("disabled") is not None

    # The next name joins, alone: "hello" never reached the server as one.
    hook(driver, "name").clear()
    hook(driver, "name").send_keys("Arya")
    hook(driver, "join").click()
    wait_line(driver, r"^Arya has entered the realm \(1/5\)$")
    wait_line(driver, r"^In the realm 'westeros' \(1/5\): Arya$")
    assert not [line for line in log_lines(driver) if "Hello" in line]
    box_ = hook(driver, "input")
    wait_for("the input to open", lambda d: box_.get_attribute("disabled") is None, driver)
    assert box_.get_attribute("placeholder") == "Speak to the realm, or --help"
    assert not severe(driver)


class Feed:
    """tests/feed_server.py: a real server, and a port to feed its members lines."""

    def __init__(self, tmp: Path) -> None:
        self.log = tmp / "feed.log"
        ready = re.compile(r"^ready (\d+) (\d+) (\d+)$", re.M)

        def ports(text: str) -> list[int] | None:
            found = ready.search(text)
            return [int(port) for port in found.groups()] if found else None

        self.proc, (self.port, self.web, self.control) = started(
            [sys.executable, str(ROOT / "tests" / "feed_server.py")], tmp, self.log, ports)
        self.sock = socket.create_connection(("127.0.0.1", self.control), timeout=WAIT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web}/"

    def say(self, line: str) -> None:
        """Send `line` to every member, as the server would."""
        self.sock.sendall(line.encode() + b"\r\n")


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[Feed]:
    running = Feed(tmp_path)
    try:
        yield running
    finally:
        running.sock.close()
        stop(running.proc)


def holdings(driver: WebDriver) -> list[tuple[str, str, str, float]]:
    """(name, value, change, fill width as a share of its bar) per holding."""
    return [tuple(row) for row in driver.execute_script(  # type: ignore[misc]
        "return Array.from(document.querySelectorAll('#holdings li'), li => ["
        " li.dataset.name, li.querySelector('.value').textContent,"
        " li.querySelector('.change').textContent,"
        " li.querySelector('.fill').getBoundingClientRect().width /"
        " li.querySelector('.meter').clientWidth])")]


def settle(driver: WebDriver, values: dict[str, int]) -> None:
    """Until the holdings show `values`, and their bars have come to rest there."""
    def settled(d: WebDriver) -> bool:
        shown = {name: (value, width) for name, value, _, width in holdings(d)}
        return list(shown) == list(values) and all(
            shown[name][0] == str(v) and abs(shown[name][1] - v / 100) < 0.02
            for name, v in values.items()) and not d.execute_script(  # at rest, not nearly
            "return document.getAnimations().some(a => a.transitionProperty === 'width')")
    try:
        wait_for("the bars to settle", settled, driver)
    except TimeoutException:
        raise AssertionError(f"holdings {holdings(driver)}, not {values}") from None


class Moves:
    """The holdings whose bar finished a transition (a move), as the page tells."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver
        self.seen: set[str] = set()
        driver.execute_script(
            "window.moved = []; document.addEventListener('transitionend', e => {"
            " if (e.target.classList.contains('fill') && e.propertyName === 'width')"
            " window.moved.push(e.target.closest('li').dataset.name); });")

    def of(self, names: set[str]) -> bool:
        self.seen |= set(self.driver.execute_script(
            "const m = window.moved; window.moved = []; return m;"))
        return names <= self.seen

    def clear(self) -> None:
        self.of(set())
        self.seen = set()


def test_the_reign_shows_as_bars_that_move(feed: Feed, browser: WebDriver,
                                          tmp_path: Path) -> None:
    """The welcome shows the holdings; each `[Realm]` report moves the bars
    (a CSS transition that runs to its end) and shows each change;
    `[Reign Ended]` shows a card with the outcome and the score, until the
    next reign's first report, and the bars move to what the new reign
    begins with."""
    driver = browser
    driver.get(feed.url)
    moves = Moves(driver)
    reign = driver.find_element(By.ID, "reign")
    assert not reign.is_displayed()  # no reign until the welcome says the holdings
    hook(driver, "name").send_keys("Lord")
    hook(driver, "join").click()
    wait_line(driver, r"^Lord has entered the realm \(1/5\)$")
    bots = four_bots(tmp_path, feed.port)
    try:
        # A real game: four bots, an event, the Lord's decision, their answers.
        wait_line(driver, r"^\[New Event\] ")
        wait_for("5 members", lambda d: len(members(d)) == 5, driver)
        decided = len(log_lines(driver))
        driver.find_elements(By.CSS_SELECTOR, "#log .event button.option")[0].click()
        wait_for("four answers", lambda d: len([
            t for t in log_lines(d)[decided:] if re.match(r"^[A-Z][a-z0-9_-]*: ", t)
            and not t.startswith("Lord:")]) >= 4, driver)

        # The welcome showed the panel; one again (as a member who joins a
        # game in play gets it) sets the holdings this test knows.
        assert reign.is_displayed()
        feed.say("*** Welcome to the Game of Thrones! 5/5 are present. The realm holds Gold "
                 "60 \u00b7 Food 60 \u00b7 Men 40 \u00b7 Favour 50; a reign lasts 12 events, "
                 "and falls if a holding reaches 0. The Lord's first line after an event decides "
                 "it. Type --help for the commands.")
        settle(driver, {"Gold": 60, "Food": 60, "Men": 40, "Favour": 50})
        assert [c for _, _, c, _ in holdings(driver)] == ["", "", "", ""]

        # The first report: the changed bars move, Food stays.
        moves.clear()
        feed.say("*** [Realm] The Wall holds, at a price. Gold 50 (-10) \u00b7 Food 60 "
                 "\u00b7 Men 48 (+8) \u00b7 Favour 55 (+5)")
        wait_line(driver, r"^\[Realm\] The Wall holds, at a price\. Gold 50 \(-10\)")
        first = {"Gold": 50, "Food": 60, "Men": 48, "Favour": 55}
        wait_for("three bars to move", lambda d: moves.of({"Gold", "Men", "Favour"}), driver)
        settle(driver, first)
        assert [(n, c) for n, _, c, _ in holdings(driver)] == [
            ("Gold", "\u221210"), ("Food", ""), ("Men", "+8"), ("Favour", "+5")]
        assert driver.find_element(By.ID, "reign-news").text == "The Wall holds, at a price."

        # The next: the changed bars move to their new values; Favour stays.
        moves.clear()
        feed.say("*** [Realm] The crows feast. Gold 45 (-5) \u00b7 Food 50 (-10) \u00b7 "
                 "Men 62 (+14) \u00b7 Favour 55")
        second = {"Gold": 45, "Food": 50, "Men": 62, "Favour": 55}
        wait_for("three bars to move", lambda d: moves.of({"Gold", "Food", "Men"}), driver)
        settle(driver, second)
        assert "Favour" not in moves.seen
        assert [c for _, _, c, _ in holdings(driver)] == ["\u22125", "\u221210", "+14", ""]
        # The picture for the README: a game with the holdings panel.
        desktop = screenshot(driver, "web-reign.png")
        assert desktop.stat().st_size > 10_000

        # The reign ends: a card in the log, and one in the panel.
        over = driver.find_element(By.ID, "reign-over")
        assert not over.is_displayed()
        moves.clear()
        ended = ("[Reign Ended] Won: The realm endured (12 events, score 87). A new reign "
                 "begins with Gold 48 \u00b7 Food 50 \u00b7 Men 45 \u00b7 Favour 50.")
        feed.say(f"*** {ended}")
        wait_line(driver, re.escape(ended))
        card = driver.find_elements(By.CSS_SELECTOR, "#log .reign-end")[-1]
        assert card.text == ended and "won" in card.get_attribute("class")
        wait_for("the reign's end", lambda d: over.is_displayed(), driver)
        assert over.get_attribute("data-outcome") == "won"
        assert driver.find_element(By.ID, "reign-outcome").text == "The reign is won"
        assert driver.find_element(By.ID, "reign-score").text == "Score 87"
        assert driver.find_element(By.ID, "reign-events").text == "12 events"
        assert driver.find_element(By.ID, "reign-why").text == "The realm endured"
        # The bars are the new reign's, no change shown from the last.
        settle(driver, {"Gold": 48, "Food": 50, "Men": 45, "Favour": 50})
        wait_for("three bars to move", lambda d: moves.of({"Gold", "Men", "Favour"}), driver)
        assert [c for _, _, c, _ in holdings(driver)] == ["", "", "", ""]
        wait_for("the card to arrive", lambda d: d.execute_script(
            "return !document.getElementById('reign-over').getAnimations().length"), driver)
        screenshot(driver, "web-reign-ended.png")
        # On a short window the side panel scrolls, and the card is brought into it.
        size = driver.get_window_size()
        driver.set_window_size(1280, 560)
        feed.say(f"*** {ended}")
        wait_for("the card in view", lambda d: d.execute_script(
            "const r = document.getElementById('reign-over').getBoundingClientRect();"
            "return r.top >= 0 && r.bottom <= window.innerHeight;"), driver)
        driver.set_window_size(size["width"], size["height"])

        # The next reign's first event: the card says it has begun.
        feed.say("*** [New Event] A raven from Arya: The harvest is in. 1 feasting or "
                 "2 hoarding?")
        wait_for("the card to follow", lambda d: d.find_element(By.ID, "reign-next").text
                 == "A new reign has begun.", driver)
        # Its first report puts the card away; each bar moves from where the
        # new reign began (its value less its change), not from where the
        # last reign's ended: Food and Favour, unchanged, go there at once.
        moves.clear()
        feed.say("*** [Realm] The granaries fill. Gold 56 (+8) \u00b7 Food 50 \u00b7 "
                 "Men 40 (-5) \u00b7 Favour 50")
        wait_for("the card to go", lambda d: not over.is_displayed(), driver)
        wait_for("the bars to move", lambda d: moves.of({"Gold", "Men"}), driver)
        settle(driver, {"Gold": 56, "Food": 50, "Men": 40, "Favour": 50})
        moves.of(set())  # what moved meanwhile
        assert not moves.seen & {"Food", "Favour"}, moves.seen
        assert not severe(driver)
    finally:
        stop(bots)


def test_what_the_lord_presses_does_what_it_shows(feed: Feed, browser: WebDriver) -> None:
    """Enter on a member offers `--dismiss NAME` and sends nothing yet; an
    event's option buttons go quiet once the event is over; a line over
    the server's 1024 bytes stays in the box, said so, not sent; a lost
    connection takes the reign's panel with it."""
    driver = browser
    driver.get(feed.url)
    hook(driver, "name").send_keys("Lord")
    hook(driver, "join").click()
    wait_line(driver, r"^Lord has entered the realm \(1/5\)$")
    with socket.create_connection(("127.0.0.1", feed.port), timeout=WAIT) as arya:
        arya.sendall(b"Arya\r\n")
        wait_line(driver, r"^Arya has entered the realm \(2/5\)$")
        line = hook(driver, "input")
        driver.find_element(By.CSS_SELECTOR, "#members li.dismissable").send_keys(Keys.ENTER)
        wait_for("the line offered", lambda d: line.get_attribute("value") == "--dismiss Arya",
                 driver)
        type_line(driver, "--who")  # a line sent after it: the dismissal went before, or not at all
        wait_line(driver, r"^In the realm 'westeros' \(2/5\): ")
        type_line(driver, "--help")  # its rows are a table: each description in one column
        wait_line(driver, r"^The Lord decides an event by sending 1 or 2")
        starts = driver.execute_script(
            "return [...document.querySelectorAll('#log .line.table')].map(p => {"
            " const r = document.createRange(); r.setStart(p.firstChild, 18);"
            " r.setEnd(p.firstChild, 19); return Math.round(r.getBoundingClientRect().left); });")
        assert len(starts) == 5 and len(set(starts)) == 1, starts
        assert not [t for t in log_lines(driver) if "dismissed" in t]

        feed.say("*** [New Event] A raven: wolves. 1 fighting or 2 fleeing?")
        wait_line(driver, r"^\[New Event\] A raven: wolves")
        options = driver.find_elements(By.CSS_SELECTOR, "#log .event button.option")
        assert [b.is_enabled() for b in options] == [True, True]
        driver.execute_script("arguments[0].focus()", options[0])  # Tab brought the Lord there
        feed.say("*** [Realm] The wolves go. Gold 50 \u00b7 Food 50 \u00b7 Men 50 \u00b7 Favour 50")
        wait_for("the options to go quiet", lambda d: not any(b.is_enabled() for b in options),
                 driver)
        # The focus was on an option that went quiet: the next event's first
        # option has it, not the page's <body> (a keyboard's Lord tabs no more).
        feed.say("*** [New Event] A raven: bears. 1 fighting or 2 fleeing?")
        wait_line(driver, r"^\[New Event\] A raven: bears")
        wait_for("the focus on the next options", lambda d: d.switch_to.active_element
                 == d.find_elements(By.CSS_SELECTOR, "#log .event button.option")[-2], driver)
        # Unless the Lord went elsewhere meanwhile: then the focus stays there.
        feed.say("*** [Realm] The bears go. Gold 50 \u00b7 Food 50 \u00b7 Men 50 \u00b7 Favour 50")
        wait_line(driver, r"^\[Realm\] The bears go")
        line.click()
        feed.say("*** [New Event] A raven: crows. 1 fighting or 2 fleeing?")
        wait_line(driver, r"^\[New Event\] A raven: crows")
        driver.execute_async_script("requestAnimationFrame(arguments[0])")  # past its microtask
        assert driver.switch_to.active_element == line

        # In a full realm a click decides: the options go quiet at once, and
        # come back if the server refuses that line (sent too fast).
        feed.say("*** Bran has entered the realm (5/5)")
        wait_line(driver, r"^Bran has entered the realm \(5/5\)$")
        feed.say("*** [New Event] A raven: snow. 1 fighting or 2 fleeing?")
        wait_line(driver, r"^\[New Event\] A raven: snow")
        options = driver.find_elements(By.CSS_SELECTOR, "#log .event button.option")[-2:]
        driver.execute_script("arguments[0].focus()", options[1])  # the keyboard's Lord
        options[1].send_keys(Keys.ENTER)
        assert not any(b.is_enabled() for b in options)
        feed.say(TOO_FAST)
        wait_for("the options back", lambda d: all(b.is_enabled() for b in options), driver)
        assert driver.switch_to.active_element == options[1]  # where the keyboard was
        options[1].click()
        assert not any(b.is_enabled() for b in options)
        feed.say("*** [Realm] The snow falls. Gold 50 \u00b7 Food 50 \u00b7 Men 50 "
                 "\u00b7 Favour 50")
        wait_line(driver, r"^\[Realm\] The snow falls")
        refused = len(log_lines(driver))
        feed.say(TOO_FAST)  # another line's
        wait_line(driver, r"^Error: You are sending too fast", after=refused)
        assert not any(b.is_enabled() for b in options)
        # A refusal while the options are live leaves them be, until the report.
        feed.say("*** [New Event] A raven: hail. 1 fighting or 2 fleeing?")
        wait_line(driver, r"^\[New Event\] A raven: hail")
        options = driver.find_elements(By.CSS_SELECTOR, "#log .event button.option")[-2:]
        refused = len(log_lines(driver))
        feed.say(TOO_FAST)  # a command's, say
        wait_line(driver, r"^Error: You are sending too fast", after=refused)
        feed.say("*** [Realm] The hail passes. Gold 50 \u00b7 Food 50 \u00b7 Men 50 "
                 "\u00b7 Favour 50")
        wait_for("the options to go quiet", lambda d: not any(b.is_enabled() for b in options),
                 driver)

        long = "\u00e9" * 600  # 600 characters, 1200 bytes
        line.clear()
        line.send_keys(long, Keys.ENTER)
        wait_line(driver, r"^Your line is 1200 bytes; a line may take 1024\.", read=shown_lines)
        assert line.get_attribute("value") == long  # kept, to be cut
        assert not [t for t in log_lines(driver) if "Line too long" in t]
    reign = driver.find_element(By.ID, "reign")
    assert reign.is_displayed()
    stop(feed.proc)
    wait_for("the panel to go with the game", lambda d: not reign.is_displayed()
             and not d.find_elements(By.CSS_SELECTOR, "#holdings li"), driver)
    assert not severe(driver)


def test_the_chronicle_page_charts_a_reign(tmp_path: Path, browser: WebDriver) -> None:
    """A reign plays to its end over raw sockets; the page draws its chart."""
    from realm_procs import Peer

    running = Server(tmp_path, "--size", "2", "--reign-length", "3")
    try:
        endpoint = f"tcp:127.0.0.1:{running.port}"
        lord, arya = Peer.connect(endpoint), Peer.connect(endpoint)
        arya.send(b"arya@storms\n")
        lord.send(b"lord@storms\n")
        for decision in (b"1", b"2", b"1"):
            lord.expect("[New Event]")
            lord.send(decision + b"\n")
            arya.expect("Lord: ")
            arya.send(b"aye\n")
        lord.expect("[Reign Ended]")
        browser.get(running.url + "chronicle")
        wait_for("the chronicle's page", lambda d: d.find_elements(
            By.CSS_SELECTOR, "li[data-realm=reign]"), browser)
        (reign,) = browser.find_elements(By.CSS_SELECTOR, "h2 + ol li[data-realm=reign]")[:1]
        assert "storms" in reign.text and "score" in reign.text
        chart = reign.find_element(By.CSS_SELECTOR, "svg[data-realm=chart]")
        assert chart.is_displayed() and chart.size["width"] > 200
        lines = chart.find_elements(By.TAG_NAME, "polyline")
        assert len(lines) == 4
        # Each line has a point for each of the reign's three events.
        assert all(len(line.get_attribute("points").split()) == 3 for line in lines)
        screenshot(browser, "web-chronicle.png")

        # On the narrowest phone the page is as wide as the screen: no reign
        # cut at its right edge.
        browser.set_window_size(320, 640)
        wait_for("the page to fit", lambda d: d.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"), browser)

        # There too the welcome banner shows whole: its first letter inside the log.
        browser.get(running.url)
        annals = browser.find_element(By.CSS_SELECTOR, "header a[href=chronicle]")
        assert annals.is_displayed()
        assert annals.get_attribute("target") == "_blank"  # the game stays where it is
        hook(browser, "name").send_keys("Bran@wolves", Keys.ENTER)
        wait_line(browser, r"^Bran has entered the realm \(1/2\)$")
        wolves = Peer.connect(endpoint)
        wolves.send(b"Lord@wolves\n")
        wait_line(browser, r"^Welcome to the Game of Thrones")
        first, log = browser.execute_script(
            "const b = [...document.querySelectorAll('#log .banner')].pop();"
            " const r = document.createRange(); r.setStart(b.firstChild, 0);"
            " r.setEnd(b.firstChild, 1);"
            " return [r.getBoundingClientRect().left,"
            " document.getElementById('log').getBoundingClientRect().left];")
        assert first >= log, (first, log)
        screenshot(browser, "web-phone-welcome.png")
        # The name typed as NAME@REALM: the page knows it joined, as whom, and where.
        assert browser.find_element(By.ID, "status").text.endswith("Bran")
        assert hook(browser, "realm").get_attribute("value") == "wolves"
        wolves.close()
    finally:
        stop(running.proc)


def test_a_lord_is_asked_before_the_page_ends_the_game(feed: Feed,
                                                      browser: WebDriver) -> None:
    """A Lord leaving the page ends the game for everyone there: the page
    has the browser ask first ('Leave site?'); with no one else, it does
    not.  (Headless Chromium shows no such dialog: the test asks the page
    what it would have the browser do.)"""
    driver = browser
    driver.get(feed.url)
    would_ask = ("const e = new Event('beforeunload', {cancelable: true});"
                 " window.dispatchEvent(e); return e.defaultPrevented;")
    with socket.create_connection(("127.0.0.1", feed.port), timeout=WAIT) as arya:
        arya.sendall(b"Arya@elsewhere\r\n")  # a member like any other leaves nothing broken
        hook(driver, "name").send_keys("Bran@elsewhere", Keys.ENTER)
        wait_line(driver, r"^Bran has entered the realm \(2/5\)$")
        assert driver.execute_script(would_ask) is False
        type_line(driver, "--leave")
        wait_line(driver, r"^Farewell, Bran\.$")
    driver.get(feed.url)
    hook(driver, "name").send_keys("Lord", Keys.ENTER)
    wait_line(driver, r"^Lord has entered the realm \(1/5\)$")
    assert driver.execute_script(would_ask) is False  # alone: nothing is lost
    with socket.create_connection(("127.0.0.1", feed.port), timeout=WAIT) as arya:
        arya.sendall(b"Arya\r\n")
        wait_line(driver, r"^Arya has entered the realm \(2/5\)$")
        wait_for("Arya in the members", lambda d: len(members(d)) == 2, driver)
        assert driver.execute_script(would_ask) is True


def test_a_reader_up_the_log_is_told_of_new_lines(feed: Feed, browser: WebDriver) -> None:
    """The log follows new lines only while the reader is at its end; up
    the log, a button says lines came, and takes the reader to them."""
    driver = browser
    driver.get(feed.url)
    hook(driver, "name").send_keys("Lord", Keys.ENTER)
    wait_line(driver, r"^Lord has entered the realm \(1/5\)$")
    newer = driver.find_element(By.ID, "newer")
    for i in range(60):
        feed.say(f"*** The herald's news, part {i}.")
    wait_line(driver, r"^The herald's news, part 59\.$")
    at_end = ("const l = document.getElementById('log');"
              " return l.scrollHeight - l.scrollTop - l.clientHeight < 2;")
    wait_for("the log to follow", lambda d: d.execute_script(at_end), driver)
    assert not newer.is_displayed()
    # Up the log, once any scroll to its end the page had pending is done (a
    # frame's callbacks run after its scroll events); a frame later the page
    # has had its scroll event.
    driver.execute_async_script(
        "const done = arguments[0], frame = (then) => requestAnimationFrame(then);"
        " frame(() => frame(() => { document.getElementById('log').scrollTop = 0;"
        " frame(() => frame(done)); }));")
    feed.say("*** Fresh news.")
    wait_line(driver, r"^Fresh news\.$")
    wait_for("the button", lambda d: newer.is_displayed(), driver)
    screenshot(driver, "web-newer.png")
    assert not driver.execute_script(at_end)  # the reader stays where they were
    newer.click()
    wait_for("the log's end", lambda d: d.execute_script(at_end) and not newer.is_displayed(),
             driver)
