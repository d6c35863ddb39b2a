"""The status page in a real browser (Debian's headless chromium, driven by Selenium) in front
of one emulated camera of each dialect, as ``bridge demo`` runs them: what a user sees, clicks,
and what reaches the cameras. One browser session for every check, a timeout on every wait.

Selenium blocks, and the gateway and the emulators serve from this test's event loop, so every
browser call runs in a thread.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, TypeVar

import aiohttp
import pytest
from conftest import GATEWAY_PASSWORD, GATEWAY_USER, StartGateway, StartSim
from helpers import basic_authorization

from bridge.cameras.base import Dialect
from bridge.simulator.core import RunningSimulator, SimOptions, start_simulator
from bridge.simulator.registry import SIMULATORS

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None, reason="needs Debian's chromium and chromium-driver"
)
WAIT = 15.0  # seconds any one browser wait may take
OFFLINE_WITHIN = 5.0  # what the issue asks of the page
T = TypeVar("T")


@pytest.fixture
async def browser() -> AsyncIterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--window-size=1280,2400", "--no-first-run", "--disable-extensions",
    ):  # fmt: skip
        options.add_argument(argument)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = await asyncio.to_thread(webdriver.Chrome, options=options, service=service)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        await asyncio.to_thread(driver.quit)


async def run(call: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(call, *args)


async def until(driver: WebDriver, condition: Callable[[WebDriver], T], within: float = WAIT) -> T:
    """Wait in the browser's thread until ``condition`` holds (WebDriverWait's own timeout)."""
    return await run(WebDriverWait(driver, within, poll_frequency=0.1).until, condition)


def card(driver: WebDriver, name: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'article.camera[data-camera="{name}"]')


def state_is(name: str, wanted: str) -> Callable[[WebDriver], bool]:
    def check(driver: WebDriver) -> bool:
        cards = driver.find_elements(By.CSS_SELECTOR, f'article.camera[data-camera="{name}"]')
        return bool(cards) and cards[0].get_attribute("data-state") == wanted

    return check


async def ptz_requests(sim: RunningSimulator) -> list[str]:
    async with aiohttp.ClientSession() as http, http.get(f"{sim.url}/__sim__/requests") as r:
        return [q["query_string"] for q in await r.json() if q["path"].endswith("ptz.cgi")]


async def test_the_status_page_shows_moves_and_follows_the_cameras(
    start_sim: StartSim, start_gateway: StartGateway, browser: WebDriver
) -> None:
    sims = {d: await start_sim(SIMULATORS[d](SimOptions())) for d in Dialect}
    gateway = await start_gateway(*sims.values())
    # What a camera says about itself is hostile: it must show as text, never as markup.
    hama = gateway.cameras["hama"]
    assert hama.info is not None
    hama.info = replace(hama.info, model="<img src=x id=injected>")
    # The browser authenticates every request (page, API, live view) with the gateway's user.
    authorization = basic_authorization(GATEWAY_USER, GATEWAY_PASSWORD)
    await run(browser.execute_cdp_cmd, "Network.enable", {})
    await run(
        browser.execute_cdp_cmd,
        "Network.setExtraHTTPHeaders",
        {"headers": {"Authorization": authorization}},
    )
    await run(browser.get, f"http://127.0.0.1:{gateway.web_port}/")

    # Every demo camera shows, with its state.
    for dialect in Dialect:
        await until(browser, state_is(dialect, "online"))
    assert await run(browser.find_elements, By.ID, "injected") == []
    model = await run(card(browser, "hama").find_element, By.CLASS_NAME, "model")
    assert "<img src=x id=injected>" in model.text
    assert "of 5 cameras online" in (await run(browser.find_element, By.ID, "summary")).text
    # Opened as the demo prints addresses, with user:password@ in it, the page works too.
    credentials = f"{GATEWAY_USER}:{GATEWAY_PASSWORD}"
    await run(browser.get, f"http://{credentials}@127.0.0.1:{gateway.web_port}/")
    await until(browser, lambda b: "5 of 5 cameras online" in b.find_element(By.ID, "summary").text)

    # The live view plays the camera's pictures: two screenshots a second apart differ.
    vapix = card(browser, "vapix2")
    await run((await run(vapix.find_element, By.CLASS_NAME, "live-toggle")).click)
    image = await run(vapix.find_element, By.CSS_SELECTOR, "img.live")
    await until(browser, lambda _: image.get_attribute("naturalWidth") == "640")
    first = await run(lambda: image.screenshot_as_png)
    await asyncio.sleep(1.0)  # the emulator's clock and frame counter move on in between
    second = await run(lambda: image.screenshot_as_png)
    assert first != second
    live_row = "live view"
    await until(browser, lambda _: live_row in vapix.find_element(By.CLASS_NAME, "profiles").text)

    # A click on a PTZ arrow reaches the emulator as its CGI: a move, then a stop.
    sim = sims[Dialect.VAPIX2]
    async with aiohttp.ClientSession() as http, http.delete(f"{sim.url}/__sim__/requests"):
        pass
    right = await run(vapix.find_element, By.CSS_SELECTOR, '.ptz button[data-pan="1"]')
    await run(right.click)
    async with asyncio.timeout(WAIT):
        while len(moves := await ptz_requests(sim)) < 2:
            await sim.camera.state.wait_changed(sim.camera.state.version, within=0.5)
    assert moves[0].startswith("continuouspantiltmove=100,0")
    assert moves[1].startswith("continuouspantiltmove=0,0")

    # Cameras stopped mid-test turn offline on the page within 5 s, whether watched (the live
    # view's stream fails) or not (the page's polls probe it), and online after they return.
    stopped = [Dialect.HAMA, Dialect.VAPIX2]
    for dialect in stopped:
        await sims[dialect].stop()
    start = time.monotonic()
    for dialect in stopped:
        await until(browser, state_is(dialect, "offline"), within=OFFLINE_WITHIN)
    assert time.monotonic() - start < OFFLINE_WITHIN
    assert await run(lambda: state_is(Dialect.FOSCAM, "online")(browser))
    for dialect in stopped:
        old = sims[dialect]
        sims[dialect] = await start_simulator(old.camera, old.host, old.port)
    try:
        for dialect in stopped:
            await until(browser, state_is(dialect, "online"))
        # The live view starts again by itself.
        before = await run(lambda: image.screenshot_as_png)
        await until(browser, lambda _: image.screenshot_as_png != before, within=5.0)
    finally:
        for dialect in stopped:
            await sims[dialect].stop()
