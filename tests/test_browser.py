"""The web client in a real headless Chromium (Debian's, driven by
selenium; ../shared/BROWSER-NOTES.md), against the installed `twistd`
and `realm-client`: the page joins as Lord, four bots join, the Lord
decides, four replies appear, `--dismiss` works, markup from the wire
shows as text, and a dropped connection offers a way back in.

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

from realm.play import accepting

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, condition: Callable[[Any], Any], driver: Any = None,
             timeout: float = WAIT) -> Any:
    """Poll `condition` until it is truthy, at most `timeout` seconds."""
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        condition, message=f"waited {timeout:g}s for {what}")


class Server:
    """The installed `twistd -n realm`, with --listen and --web."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.web = free_port()
        self.log = tmp / "twistd.log"
        self.proc = subprocess.Popen(
            [str(BIN / "twistd"), "-n", "--pidfile=", "realm",
             "--listen", f"tcp:{self.port}:interface=127.0.0.1",
             "--web", f"tcp:{self.web}:interface=127.0.0.1",
             "--event-wait", "30"],
            cwd=tmp, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        wait_for("the server to listen", lambda _: self.proc.poll() is not None
                 or (accepting(self.port) and accepting(self.web)))
        assert self.proc.poll() is None, self.log.read_text()

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
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must fetch nothing
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


def wait_line(driver: WebDriver, pattern: str, after: int = 0) -> str:
    regex = re.compile(pattern)

    def found(d: WebDriver) -> str | None:
        return next((t for t in log_lines(d)[after:] if regex.search(t)), None)
    try:
        return str(wait_for(f"a log line matching {pattern!r}", found, driver))
    except TimeoutException:
        raise AssertionError(f"no log line matching {pattern!r} in "
                             f"{log_lines(driver)[after:]!r}") from None


def type_line(driver: WebDriver, line: str) -> None:
    box = hook(driver, "input")
    box.clear()
    box.send_keys(line, Keys.ENTER)


def screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path))
    return path


def no_alert(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert.dismiss()
    except NoAlertPresentException:
        return True
    return False


# -- the game ----------------------------------------------------------------------

def test_a_browser_lord_rules_realm_client_bots(
        server: Server, browser: WebDriver, tmp_path: Path) -> None:
    driver = browser
    driver.get(server.url)
    assert driver.title.startswith("realm")

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

    bots = subprocess.Popen(
        [str(BIN / "realm-client"), "--bot", "--count", "4", "--think", "0",
         "--connect", f"tcp:127.0.0.1:{server.port}"],
        cwd=tmp_path, stdin=subprocess.DEVNULL,
        stdout=(tmp_path / "bots.log").open("wb"), stderr=subprocess.STDOUT)
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
        decided = len(log_lines(driver))
        options[0].click()
        wait_line(driver, r"^Lord: 1$", after=decided)

        # Four replies appear, one from each bot.
        def replies(d: WebDriver) -> set[str] | None:
            said = {t.split(":", 1)[0] for t in log_lines(d)[decided:]
                    if re.match(r"^[A-Z][a-z0-9_-]*: ", t) and not t.startswith("Lord:")}
            return said if said >= set(team) else None
        wait_for("four replies", replies, driver)
        screenshot(driver, "web-desktop.png")

        # The Lord types a chat line and walks the history.
        type_line(driver, "Hold the Wall!")
        wait_line(driver, r"^Lord: Hold the Wall!$")
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
        # The Lord's own markup too, echoed locally.
        type_line(driver, XSS)
        wait_line(driver, rf"^Lord: {re.escape(XSS)}$")
        assert not driver.find_elements(By.CSS_SELECTOR, "img")
        assert no_alert(driver)
        wait_for("Mallory in the members", lambda d: "Mallory" in members(d), driver)

        # The screenshot for the README: a game in progress.
        desktop = screenshot(driver, "web-desktop.png")
        driver.set_window_size(390, 844)
        phone = screenshot(driver, "web-phone.png")
        assert desktop.stat().st_size > 10_000 and phone.stat().st_size > 10_000
        driver.set_window_size(1280, 860)

        # The connection drops (the Lord leaves): a notice and a way back in.
        type_line(driver, "--leave")
        dropped = driver.find_element(By.ID, "dropped")
        wait_for("the dropped notice", lambda d: dropped.is_displayed(), driver)
        assert "Disconnected: The Lord has left the realm" in dropped.text
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
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
              and "favicon" not in e["message"]]
    assert not errors, errors


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
    assert members(driver) == []
    assert "offline" in driver.find_element(By.ID, "status").text


def test_the_lord_password_is_asked_for(tmp_path: Path, browser: WebDriver) -> None:
    """With --auth, the page shows the password field when asked."""
    port, web = free_port(), free_port()
    proc = subprocess.Popen(
        [str(BIN / "twistd"), "-n", "--pidfile=", "realm",
         "--listen", f"tcp:{port}:interface=127.0.0.1",
         "--web", f"tcp:{web}:interface=127.0.0.1", "--auth", "memory:lord:s3cret"],
        cwd=tmp_path, stdout=(tmp_path / "twistd.log").open("wb"),
        stderr=subprocess.STDOUT)
    try:
        wait_for("the server to listen", lambda _: proc.poll() is not None or accepting(web))
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
    finally:
        stop(proc)
