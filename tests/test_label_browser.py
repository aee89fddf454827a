"""cm-label's page in a real browser: Debian chromium + chromedriver driven by selenium.

Draws a stroke, erases two parts of it, undoes the second erase, saves, and checks the saved
label pixel by pixel against the same edit done in numpy.  Skips cleanly without chromium,
chromedriver or selenium.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from mars_cloudmask.infer.geometry import INVALID, valid_pixels
from mars_cloudmask.infer.label.core import CLEAR, CLOUD, NO_DATA, edit_from_values
from mars_cloudmask.infer.label.server import Session, make_server
from mars_cloudmask.infer.maps import read_map
from mars_cloudmask.infer.netcdf import read_mask
from tests.synthetic import make_map, write_map

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser(profile: Path, width: int = 1400, height: int = 900):
    """A selenium Chrome driver on Debian's chromium (skips the test when any piece is missing)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_exe = shutil.which("chromedriver")
    if exe is None or driver_exe is None:
        pytest.skip("chromium/chromedriver not installed (apt-get install -y chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = exe
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(driver_exe))


def disc_stroke(x0: int, x1: int, y: int, size: int) -> np.ndarray:
    """Boolean map of a horizontal brush stroke as the page paints it: a disc of diameter
    ``size`` (``dx^2 + dy^2 <= (size/2)^2``) at every pixel from x0 to x1 on row y."""
    out = np.zeros((1801, 3600), bool)
    h = size // 2
    for dy in range(-h, h + 1):
        for dx in range(-h, h + 1):
            if dx * dx + dy * dy <= (size / 2) ** 2:
                out[y + dy, min(x0, x1) + dx : max(x0, x1) + dx + 1] = True
    return out


@pytest.fixture
def served(tmp_path):
    path = write_map(tmp_path / "P01_day05_zequat.jpg", make_map(seed=5))
    rgb = read_map(path)
    values = np.where(valid_pixels(rgb), (rgb[..., 2] >= 200).astype(np.float32), np.float32(INVALID))
    base = edit_from_values(values, 0.5)
    base[880:920, 1700:1900] = CLEAR  # a clear patch where the strokes go
    base[900, 1790:1800] = NO_DATA  # and a no-data run the brush must not change
    srv = make_server(Session(path, rgb, base, tmp_path / "labels", "P01day05", 28, 134.0), 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def test_stroke_erase_undo_save_gives_the_expected_label(served, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    def body_attr(d, name: str) -> str | None:
        return d.find_element(By.TAG_NAME, "body").get_attribute(name)

    driver = browser(tmp_path / "profile")
    try:
        driver.get(served.url)
        WebDriverWait(driver, 60).until(lambda d: body_attr(d, "data-state") != "loading")
        body = driver.find_element(By.TAG_NAME, "body")
        assert body.get_attribute("data-state") == "ready", driver.find_element(By.ID, "status").text
        body.send_keys("1")  # 1:1
        rect = driver.execute_script("return document.getElementById('mask').getBoundingClientRect().toJSON()")
        assert rect["width"] == 3600 and rect["height"] == 1801

        def client(x: int, y: int) -> tuple[int, int]:
            """Viewport px whose centre falls on map pixel (x, y), at 1:1."""
            cx = int(np.floor(rect["left"] + x + 0.5))
            cy = int(np.floor(rect["top"] + y + 0.5))
            return cx, cy

        def map_px(cx: int, cy: int) -> tuple[int, int]:
            return int(np.floor(cx - rect["left"])), int(np.floor(cy - rect["top"]))

        def stroke(x0: int, x1: int, y: int) -> tuple[int, int, int]:
            (c0, cy), (c1, _) = client(x0, y), client(x1, y)
            actions = ActionChains(driver)
            pointer = actions.w3c_actions.pointer_action
            pointer.move_to_location(c0, cy).pointer_down().move_to_location(c1, cy).pointer_up()
            actions.perform()
            (m0, my), (m1, _) = map_px(c0, cy), map_px(c1, cy)
            return m0, m1, my

        def set_size(n: int) -> None:
            driver.execute_script(
                "const s = document.getElementById('size'); s.value = arguments[0];"
                "s.dispatchEvent(new Event('input'));",
                n,
            )

        base = served.session.base
        expected = base.copy()
        set_size(7)
        body.send_keys("b")
        m0, m1, my = stroke(1720, 1880, 900)
        expected[disc_stroke(m0, m1, my, 7) & (base != NO_DATA)] = CLOUD
        body.send_keys("e")
        set_size(5)
        m0, m1, my = stroke(1740, 1760, 900)  # erase part of it: kept
        expected[disc_stroke(m0, m1, my, 5) & (base != NO_DATA)] = CLEAR
        stroke(1840, 1860, 900)  # erase another part: undone below
        body.send_keys(Keys.CONTROL, "z")
        driver.find_element(By.ID, "save").click()
        WebDriverWait(driver, 60).until(lambda d: body_attr(d, "data-saves") == "1")
        status = driver.find_element(By.ID, "status").text
        assert status.startswith("saved"), status
    finally:
        driver.quit()
    saved = edit_from_values(read_mask(served.session.labels / "cloudmask" / "cloudmask_P01day05.ncdf"))
    assert (expected != base).sum() > 500  # the stroke did paint
    assert (saved[900, 1790:1800] == NO_DATA).all()
    diff = np.argwhere(saved != expected)
    assert diff.size == 0, f"{len(diff)} pixels differ, first {diff[:5].tolist()}"


def test_lasso_fills_cloud_shift_lasso_clears_and_undo_redo_replays(served, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    def body_attr(d, name: str) -> str | None:
        return d.find_element(By.TAG_NAME, "body").get_attribute(name)

    driver = browser(tmp_path / "profile")
    try:
        driver.get(served.url)
        WebDriverWait(driver, 60).until(lambda d: body_attr(d, "data-state") != "loading")
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys("1", "l")
        rect = driver.execute_script("return document.getElementById('mask').getBoundingClientRect().toJSON()")

        def lasso(x0: int, y0: int, x1: int, y1: int, shift: bool = False) -> tuple[float, float, float, float]:
            """Drag a rectangle through its corners (client px); returns its corners in map px."""
            cx0, cy0 = round(rect["left"] + x0), round(rect["top"] + y0)
            cx1, cy1 = round(rect["left"] + x1), round(rect["top"] + y1)
            if shift:  # held across the next perform (WebDriver keeps the input state)
                ActionChains(driver).key_down(Keys.SHIFT).perform()
            actions = ActionChains(driver)
            pointer = actions.w3c_actions.pointer_action
            pointer.move_to_location(cx0, cy0).pointer_down()
            for x, y in ((cx1, cy0), (cx1, cy1), (cx0, cy1), (cx0, cy0)):
                pointer.move_to_location(x, y)
            pointer.pointer_up()
            actions.perform()
            if shift:
                ActionChains(driver).key_up(Keys.SHIFT).perform()
            return cx0 - rect["left"], cy0 - rect["top"], cx1 - rect["left"], cy1 - rect["top"]

        outer = lasso(1710, 885, 1890, 915)
        inner = lasso(1750, 890, 1800, 910, shift=True)
        body.send_keys(Keys.CONTROL, "z")  # the clearing lasso undone...
        body.send_keys(Keys.CONTROL, "y")  # ...and redone
        driver.find_element(By.ID, "save").click()
        WebDriverWait(driver, 60).until(lambda d: body_attr(d, "data-saves") == "1")
    finally:
        driver.quit()
    saved = edit_from_values(read_mask(served.session.labels / "cloudmask" / "cloudmask_P01day05.ncdf"))
    base = served.session.base

    def inside(box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
        """(pixels whose centre is inside by more than half a pixel, pixels within half a pixel of an edge)."""
        yy, xx = np.mgrid[0:1801, 0:3600] + 0.5
        x0, y0, x1, y1 = box
        strict = (xx > x0 + 0.5) & (xx < x1 - 0.5) & (yy > y0 + 0.5) & (yy < y1 - 0.5)
        loose = (xx > x0 - 0.5) & (xx < x1 + 0.5) & (yy > y0 - 0.5) & (yy < y1 + 0.5)
        return strict, loose & ~strict

    o_in, o_edge = inside(outer)
    i_in, i_edge = inside(inner)
    expected = base.copy()
    expected[o_in & (base != NO_DATA)] = CLOUD
    expected[i_in & (base != NO_DATA)] = CLEAR
    sure = ~(o_edge | i_edge)  # anti-aliased edges: either value
    assert (expected[sure] != base[sure]).sum() > 3000
    diff = np.argwhere(sure & (saved != expected))
    assert diff.size == 0, f"{len(diff)} pixels differ, first {diff[:5].tolist()}"
    assert (saved[900, 1790:1800] == NO_DATA).all()
