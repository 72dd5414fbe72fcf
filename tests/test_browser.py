"""The HTML report as people read it: the tiny study's results/report.html opened in a real
headless browser (Debian's chromium), which runs the report's JavaScript; the rendered page
must show the paper's claims judged and the learning curve. A screenshot is kept in
$LESION_TRANSFER_ARTIFACTS (default: test-artifacts/ in the repository)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

REQUIRE = "LESION_TRANSFER_REQUIRE_BROWSER"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.workflow]


@pytest.fixture(scope="module")
def browser():
    if BROWSER is None:
        if os.environ.get(REQUIRE):
            pytest.fail(f"{REQUIRE} is set but no chromium is installed (apt-get install "
                        f"chromium)")
        pytest.skip("no chromium (apt-get install chromium)")
    return BROWSER


def headless(browser, *args, timeout=120):
    # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--hide-scrollbars", "--virtual-time-budget=15000",
               *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def test_the_report_opens_on_the_claims_and_the_learning_curve(ci_study, browser):
    report = ci_study / "results" / "report.html"
    dom = headless(browser, "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    # the file holds the opening page as an escaped string for its scripts; unescaped markup
    # in the DOM is what the scripts rendered
    assert 'alt=\\"learning curve\\"' in report.read_text()
    assert "The claims of Kaur et al. 2019, judged on this study" in page
    assert '<table border="1" class="docutils">' in page and "FT_All beats the baseline" in page
    assert "positive control minus scratch" in page and "negative control minus scratch" in page
    assert "calibration, scratch minus scratch with other seeds" in page
    assert 'alt="learning curve"' in page and 'src="data:image/png;base64,' in page

    artifacts = Path(os.environ.get("LESION_TRANSFER_ARTIFACTS", REPO / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    screenshot = artifacts / "report.png"
    shot = headless(browser, f"--screenshot={screenshot}", "--window-size=1400,2200",
                    report.as_uri())
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    from PIL import Image

    with Image.open(screenshot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 500  # a drawn page, not a blank one
