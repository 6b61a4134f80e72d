"""End to end in real headless Chromium (Debian's), driven by Playwright: upload an image,
see every model's maps and CAMs, then train a tiny model from the sidebar."""
import shutil
import time
from pathlib import Path

import pytest

from . import ui_env
from .browser_tools import CHROMIUM, free_port, launch, start_server, stop_server
from .conftest import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"
ERROR_SELECTORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (make browser)")]


@pytest.fixture(scope="module")
def server(tiny_checkpoints, tmp_path_factory, data_root):
    models = tmp_path_factory.mktemp("browser_models")
    for path in tiny_checkpoints.values():
        shutil.copy(path, models / path.name)
    env = ui_env.app_environment(models, tmp_path_factory.mktemp("browser_work"))
    port = free_port()
    proc = start_server(env, port)
    yield f"http://127.0.0.1:{port}", Path(env["UNITLENS_RUNS"])
    stop_server(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = launch(p)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser):
    tab = browser.new_page(viewport={"width": 1500, "height": 2400})
    tab.set_default_timeout(180_000)
    yield tab


def fashion_png(tmp_path: Path) -> Path:
    from core.data import dataset_image
    image, _ = dataset_image("fashion-mnist", 0)
    path = tmp_path / "ankle-boot.png"
    image.save(path)
    return path


def test_upload_shows_every_model_then_train_from_sidebar(server, page, tmp_path):
    url, runs_dir = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(url)
    page.get_by_role("link", name="Compare on an image").click()
    page.get_by_text("Upload", exact=True).click()
    page.locator('input[type="file"]').set_input_files(str(fashion_png(tmp_path)))
    # every model column: its maps caption and both CAM captions
    page.wait_for_function("document.querySelectorAll('[data-testid=\"stImageCaption\"]').length >= 15"
                           " || document.body.innerText.split('penultimate maps').length - 1 >= 3")
    page.get_by_text("Grad-CAM").nth(2).wait_for()
    body = page.inner_text("body")
    assert body.count("penultimate maps") == 3
    assert body.count("Grad-CAM") == 3 and body.count("CAM: ") == 3
    assert page.locator(ERROR_SELECTORS).count() == 0
    assert "Traceback" not in body
    page.screenshot(path=str(ARTIFACTS / "compare.png"))

    page.get_by_text("Train a model").click()
    limit = page.get_by_label("Use only the first N images (0: all)")
    limit.fill("300")
    limit.press("Enter")
    page.get_by_role("button", name="Start").click()
    page.get_by_text("started ").wait_for()
    deadline = time.time() + 240
    while time.time() < deadline and ": done" not in page.inner_text("section[data-testid='stSidebar']"):
        time.sleep(1)
    sidebar = page.inner_text("section[data-testid='stSidebar']")
    assert ": done" in sidebar, sidebar
    run_name = next(p.stem for p in runs_dir.glob("*.pt"))
    page.get_by_role("link", name="Overview").click()
    page.get_by_text("Checkpoint details").click()
    page.get_by_text(run_name).first.wait_for()  # the finished run joined the model list
    assert page.locator(ERROR_SELECTORS).count() == 0
    page.screenshot(path=str(ARTIFACTS / "trained.png"))


def test_two_sessions_at_once_then_a_deep_link(server, browser):
    """Two browser sessions compute different pages at the same time against one DuckDB cache;
    then a link with the model and unit in the URL opens the Unit page on the running server."""
    from playwright.sync_api import expect
    url, _ = server
    contexts = [browser.new_context(viewport={"width": 1400, "height": 2000}) for _ in range(2)]
    tabs = [context.new_page() for context in contexts]
    for tab in tabs:
        tab.set_default_timeout(180_000)
        tab.goto(url)
        tab.get_by_role("link", name="Overview").wait_for()
    tabs[0].get_by_role("link", name="Selectivity").click()  # both reruns now run side by side
    tabs[1].get_by_role("link", name="Gates").click()
    tabs[0].get_by_text("PCA of the features", exact=True).wait_for()
    tabs[1].get_by_text("Class masking", exact=True).wait_for()
    tabs[0].get_by_role("link", name="Ablations").click()
    tabs[0].get_by_text("Single-unit ablation", exact=True).wait_for()
    for tab in tabs:
        assert tab.locator(ERROR_SELECTORS).count() == 0, tab.inner_text("body")
        assert "Traceback" not in tab.inner_text("body")

    tabs[1].goto(f"{url}/unit?model=minimax&unit=3")
    tabs[1].get_by_text("Top-activating test images", exact=True).wait_for()
    expect(tabs[1].get_by_role("spinbutton", name="Unit")).to_have_value("3", timeout=60_000)
    assert "unit=3" in tabs[1].url and "model=minimax" in tabs[1].url
    assert tabs[1].locator(ERROR_SELECTORS).count() == 0
    for context in contexts:
        context.close()
