"""Publishing end to end on the tiny fabricated datasets: ``ddbench run`` (random → transfer,
smoke) → ``leaderboard submit`` → ``accept`` (which verifies) → records, tables and the page;
then the page in a real headless Chromium: no console errors, sorting reorders rows, every
record link resolves, and a screenshot for a human to look at.

The browser part skips when Chromium, its driver or Selenium are missing (``apt-get install
chromium chromium-driver``; ``pip install selenium``, in the test extra)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from click.testing import CliRunner

from ddbench.cli import main

from .test_baselines import SOURCE, TARGET_A, TARGET_B, tiny_root  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
SCREENSHOT = Path("/tmp/leaderboard_screenshot.png")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def page(tmp_path_factory, tiny_root):
    """A leaderboard folder: a few of the repository's real records, plus one run made here,
    submitted and accepted."""
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("home")
    mp.setenv("DDBENCH_HOME", str(home))
    mp.setenv("DDBENCH_DATA", str(tiny_root / "data"))
    mp.setenv("DDBENCH_DISABLE_PLUGINS", "1")
    mp.setenv("DDBENCH_QUIET", "1")
    from ddbench import data, plugins

    plugins.reset()
    data.clear_memo()
    try:
        lb = tmp_path_factory.mktemp("lb")
        (lb / "records").mkdir()
        for p in sorted((ROOT / "leaderboard" / "records").glob("*.json"))[:6]:
            shutil.copy(p, lb / "records" / p.name)
        res = invoke("run", "-m", "random", "-t", "transfer", "-p", "smoke", "-s", SOURCE,
                     "-o", f"targets={TARGET_A},{TARGET_B}", "--json")
        assert res.exit_code == 0, res.output
        run_id = json.loads(res.stdout)["run_id"]
        bundle = lb.parent / "submission.zip"
        res = invoke("leaderboard", "submit", run_id, "-o", bundle)
        assert res.exit_code == 0, res.output
        res = invoke("leaderboard", "accept", bundle, "--dir", lb)  # verifies first: exit 0 or nothing is added
        assert res.exit_code == 0, res.output
        assert "verdict: verified" in res.output
        yield lb, run_id
    finally:
        plugins.reset()
        data.clear_memo()
        mp.undo()


def test_accept_adds_the_verified_record_and_rebuilds_everything(page):
    lb, run_id = page
    rec = json.loads((lb / "records" / f"{run_id}.json").read_text())
    v = rec["verification"]
    assert v["verdict"] == "verified" and v["seeds"] == [0] and v["max_abs_diff"] <= 1e-4
    for name, by_seed in v["metrics"].items():  # the verifier's numbers beside the submitted ones
        submitted = next(m for m in rec["metrics"] if m["name"] == name)["per_seed"][0]
        assert abs(by_seed["0"] - submitted) <= 1e-4
    assert (lb / "README.md").exists() and (lb / "index.html").exists()
    assert any(lb.glob(f"transfer__{SOURCE}__smoke__*img.csv")) and any(lb.glob(f"transfer__{SOURCE}__smoke__*img.png"))
    assert "✓ seed 0" in (lb / "README.md").read_text()


def _driver():
    if CHROMIUM is None or not os.path.exists(CHROMEDRIVER):
        pytest.skip("needs Chromium and chromedriver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never download a driver
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1600", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    if CHROMIUM:
        opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    except Exception as e:  # a driver that does not match the browser, no display libraries, ...
        pytest.skip(f"cannot start headless Chromium: {str(e).splitlines()[0]}")


def test_the_page_in_a_headless_browser(page, tmp_path):
    from selenium.webdriver.common.by import By

    lb, run_id = page
    driver = _driver()
    try:
        driver.get((lb / "index.html").as_uri())
        time.sleep(0.3)
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
        assert driver.title == "ddbench leaderboard"
        # every record link resolves to a file beside the page
        links = driver.find_elements(By.CSS_SELECTOR, "a[href*='records/']")
        assert len(links) >= 2
        for a in links:
            target = Path(unquote(urlparse(a.get_attribute("href")).path))
            assert target.is_file() and json.loads(target.read_text())["run_id"] in a.get_attribute("href")
        # the plots are embedded, nothing is fetched
        imgs = driver.find_elements(By.CSS_SELECTOR, "img")
        assert imgs and all(i.get_attribute("src").startswith("data:image/png;base64,") for i in imgs)
        assert all(driver.execute_script("return arguments[0].naturalWidth", i) > 0 for i in imgs)
        # sorting a column reorders the rows of a table with several entries
        table = max(driver.find_elements(By.CSS_SELECTOR, "table.lb"),
                    key=lambda t: len(t.find_elements(By.CSS_SELECTOR, "tbody.rows-entry tr")))
        rows = lambda: [r.get_attribute("data-run") for r in table.find_elements(By.CSS_SELECTOR, "tbody.rows-entry tr")]
        values = lambda i: [float(c.get_attribute("data-sort")) for c in table.find_elements(
            By.CSS_SELECTOR, f"tbody.rows-entry tr td:nth-child({i + 1})") if c.get_attribute("data-sort")]
        assert len(rows()) >= 2
        header = table.find_elements(By.CSS_SELECTOR, "thead th")
        col = next(i for i, h in enumerate(header) if h.get_attribute("data-type") == "num" and len(set(values(i))) > 1)
        header[col].click()
        desc, order_desc = values(col), rows()
        assert desc == sorted(desc, reverse=True) and header[col].get_attribute("aria-sort") == "descending"
        header[col].click()
        asc = values(col)
        assert asc == sorted(asc) and header[col].get_attribute("aria-sort") == "ascending"
        if len(set(asc)) > 1:
            assert rows() != order_desc
        header[0].click()  # by method name (the browser's collation), then reversed
        names = rows()
        header[0].click()
        assert rows() == names[::-1] and header[0].get_attribute("aria-sort") == "descending"
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        driver.execute_script("window.scrollTo(0, 0)")
        shot = tmp_path / "leaderboard.png"
        driver.save_screenshot(str(shot))
        shutil.copy(shot, SCREENSHOT)
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()
