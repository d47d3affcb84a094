"""Driving the dashboard in a real browser: the browser test and ``scripts/dashboard_screenshots.py``.

A Streamlit page arrives over a websocket after the HTML, so a one-shot ``chromium --headless
--screenshot`` shows an empty page: this starts ``selfheal dashboard`` as a real process, opens
it in Debian's ``chromium`` through ``chromedriver`` (Selenium; both given by path, so Selenium
Manager never downloads anything) and waits for elements before reading or photographing them.
Selenium is a development dependency: it is imported only here, when these helpers run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 120.0  # seconds to wait for the server or an element (the first classification loads the model)


def browser_missing() -> str | None:
    """Why the browser cannot run here (``None`` when chromium, chromedriver and Selenium are installed)."""
    import importlib.util

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not (p.is_file() and os.access(p, os.X_OK))]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian packages chromium, chromium-driver)"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install selenium==4.51.0)"
    return None


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def dashboard_server(
    args: Sequence[str], env: dict[str, str], cwd: Path, log: Path, port: int | None = None
) -> Iterator[str]:
    """``selfheal dashboard --port P ARGS`` as a process (its output in ``log``); yields its URL
    once Streamlit answers its health check, and stops it (by its process id) afterwards."""
    port = port or free_port()
    command = [sys.executable, "-m", "selfheal", "dashboard", "--port", str(port), *args]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"selfheal dashboard exited with {process.returncode}: {log.read_text()}")
            if _healthy(url):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"selfheal dashboard did not answer in {WAIT:.0f} s: {log.read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def chrome(width: int = 1400, height: int = 1000) -> Any:
    """Headless Debian chromium through /usr/bin/chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def xpath_text(text: str) -> str:
    """An XPath string literal for ``text`` (quotes of either kind)."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ', "\'", '.join(f"'{part}'" for part in text.split("'")) + ")"


def wait_for(driver: Any, xpath: str, timeout: float = WAIT) -> Any:
    """The first element at ``xpath``, once it is there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.XPATH, xpath)))


def wait_for_text(driver: Any, text: str, timeout: float = WAIT) -> Any:
    """The first element whose own text contains ``text``."""
    return wait_for(driver, f"//*[contains(text(), {xpath_text(text)})]", timeout)


def wait_idle(driver: Any, timeout: float = WAIT) -> None:
    """Wait until the script run is over (Streamlit's "running" indicator gone), then a moment
    for the charts to draw."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    time.sleep(0.5)
    WebDriverWait(driver, timeout).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget']")
    )
    time.sleep(1.0)


def click_button(driver: Any, label: str, timeout: float = WAIT) -> None:
    """Click the button labelled ``label``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    xpath = f"//button[.//p[normalize-space(text())={xpath_text(label)}]]"
    WebDriverWait(driver, timeout).until(ec.element_to_be_clickable((By.XPATH, xpath))).click()


def open_page(driver: Any, title: str) -> None:
    """Go to a page through the sidebar navigation (the same browser session)."""
    from selenium.webdriver.common.by import By

    link = f"//*[@data-testid='stSidebarNav']//a[contains(., {xpath_text(title)})]"
    wait_for(driver, link)
    driver.find_element(By.XPATH, link).click()
    wait_for(driver, f"//h1[contains(., {xpath_text(title)})]")
    wait_idle(driver)


def classify(driver: Any, text: str) -> None:
    """Type ``text`` on the Classify page and press Classify."""
    from selenium.webdriver.common.keys import Keys

    box = wait_for(driver, "//textarea")
    box.send_keys(Keys.CONTROL, "a")  # clear() would not reach Streamlit's own copy of the value
    box.send_keys(Keys.DELETE)
    box.send_keys(text)
    click_button(driver, "Classify")


def screenshot(driver: Any, path: Path, height: int | None = None, width: int = 1400) -> Path:
    """Save the window as a PNG (``height``: resize first, so a long page fits)."""
    if height is not None:
        driver.set_window_size(width, height)
        wait_idle(driver)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not driver.save_screenshot(str(path)):
        raise RuntimeError(f"cannot save a screenshot to {path}")
    return path
