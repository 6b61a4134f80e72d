"""End to end in real headless Chromium (Debian's), driven by Playwright: first visits to a fresh
server, uploads (a product photo, an image unlike the data), a hostile model folder, training
from the sidebar, two sessions at once. A failing test leaves its screenshot and the server's
log under tests/artifacts/."""
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from . import ui_env
from .browser_tools import CHROMIUM, free_port, launch, start_server, stop_server
from .conftest import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"
ERROR_SELECTORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
PAGES = ("Overview", "Compare on an image", "Specificity and cost", "Selectivity", "Gates", "Ablations", "Unit")
HELPERS = ("common", "charts", "app")  # module names that must never appear as pages
FOOTWEAR = ("Sandal", "Sneaker", "Ankle boot")
TRACKER = "127.0.0.1:8799"  # where a hostile class name would send the viewer's browser

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (make browser)")]


@pytest.fixture(scope="module")
def model_folder(tiny_checkpoints, tmp_path_factory):
    """Tiny minimax and lsg, the bundled CE (it reads photos well enough to be asserted on),
    a stray text file named .pt, and a checkpoint whose class names and method carry markdown."""
    models = tmp_path_factory.mktemp("browser_models")
    for name in ("minimax", "lsg"):
        shutil.copy(tiny_checkpoints[name], models / f"{name}.pt")
    shutil.copy(ROOT / "checkpoints" / "ce.pt", models / "ce.pt")
    (models / "notes.pt").write_text("random notes\n")
    payload = torch.load(tiny_checkpoints["ce"], weights_only=True)
    meta = json.loads(payload["meta_json"])
    meta["class_names"] = [f"![t](http://{TRACKER}/track.png)", f"[link](http://{TRACKER}/x)",
                           *meta["class_names"][2:]]
    meta["method"] = f"[m](http://{TRACKER}/m)"
    payload["meta_json"] = json.dumps(meta)
    torch.save(payload, models / "marked.pt")
    return models


class Server:
    def __init__(self, models: Path, work: Path, name: str, extra: dict | None = None):
        self.env = ui_env.app_environment(models, work, extra)
        self.port = free_port()
        self.log = ARTIFACTS / f"server-{name}.log"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.proc = start_server(self.env, self.port, log=self.log)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        stop_server(self.proc)


@pytest.fixture(scope="module")
def server(model_folder, tmp_path_factory, data_root):
    running = Server(model_folder, tmp_path_factory.mktemp("browser_work"), "shared")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = launch(p)
        yield chromium
        chromium.close()


@pytest.fixture
def tab(browser, request):
    """A fresh browser context that records every request; on failure, a screenshot."""
    context = browser.new_context(viewport={"width": 1500, "height": 2400})
    page = context.new_page()
    page.set_default_timeout(180_000)
    page.requests = []
    page.on("request", lambda r: page.requests.append(r.url))
    yield page
    if getattr(request.node, "failed", False):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def assert_clean(page, server):
    body = page.inner_text("body")
    assert page.locator(ERROR_SELECTORS).count() == 0, body[:2000]
    assert "Traceback" not in body
    outside = [u for u in page.requests if not u.startswith(server.url) and not u.startswith(("data:", "blob:"))]
    assert not outside, outside


def wait_until_idle(page, quiet_s: float = 1.0, timeout: float = 180_000):
    """Until the script has finished its run and stayed finished for `quiet_s` (a click's rerun
    starts a moment after the click; the status widget shows only after a delay)."""
    page.evaluate("window.__idleSince = undefined")
    page.wait_for_function(
        """quiet => {
            const app = document.querySelector('[data-testid="stApp"]');
            const idle = app && app.getAttribute('data-test-script-state') === 'notRunning'
                && !document.querySelector('[data-testid="stStatusWidget"]');
            if (!idle) { window.__idleSince = undefined; return false; }
            window.__idleSince = window.__idleSince ?? performance.now();
            return performance.now() - window.__idleSince >= quiet;
        }""", arg=quiet_s * 1000, timeout=timeout, polling=100)


def click_until(page, target, shown, tries: int = 5):
    """Click `target` until `shown` is visible. A click that lands while the page's run draws that
    widget again is lost (an open dropdown closes with it); a loaded CI machine met it at random."""
    for attempt in range(tries):
        wait_until_idle(page)
        if shown.first.is_visible():
            return
        target.click()
        try:
            shown.first.wait_for(timeout=15_000)
            return
        except Exception:  # noqa: BLE001 - Playwright's timeout: click again
            if attempt == tries - 1:
                raise


def assert_real_navigation(page):
    for title in PAGES:
        page.get_by_role("link", name=title, exact=True).first.wait_for()
    links = [t.strip().lower() for t in page.get_by_role("link").all_inner_texts()]
    assert not any(t in HELPERS for t in links), links


def save_photo(path: Path, image: Image.Image) -> Path:
    image.save(path)
    return path


def product_photo(index: int) -> Image.Image:
    from .test_inputs import product_photo as make
    return make(index)


@pytest.mark.parametrize("path,expected", [("", "Unit Lens"), ("/unit?model=minimax&unit=3", "Top-activating test images")])
def test_first_visit_to_a_fresh_server_shows_the_real_navigation(model_folder, tmp_path, tab, path, expected):
    fresh = Server(model_folder, tmp_path, f"fresh{path.replace('/', '-').split('?')[0]}")
    try:
        tab.goto(fresh.url + path)
        tab.get_by_text(expected, exact=True).first.wait_for()
        assert_real_navigation(tab)
        if path:
            from playwright.sync_api import expect
            expect(tab.get_by_role("spinbutton", name="Unit")).to_have_value("3", timeout=60_000)
        assert_clean(tab, fresh)
    finally:
        fresh.stop()


def test_a_click_while_a_fresh_server_loads_is_not_lost(model_folder, tmp_path, tab):
    """A newcomer clicks on to another page while the first Overview is still being completed
    (the engine loading): they land there and stay, not sent back to the Overview."""
    fresh = Server(model_folder, tmp_path, "fresh-click")
    try:
        tab.goto(fresh.url)
        tab.get_by_text("Unit Lens", exact=True).first.wait_for()
        tab.get_by_role("link", name="Selectivity", exact=True).first.click()
        tab.get_by_role("heading", name="Selectivity").first.wait_for()
        wait_until_idle(tab)
        assert tab.get_by_role("heading", name="Selectivity").count() >= 1
        assert "Compared models" not in tab.inner_text("body")
        assert_clean(tab, fresh)
    finally:
        fresh.stop()


def test_a_hostile_model_folder_lists_the_good_models_and_fetches_nothing(server, tab):
    tab.goto(server.url)
    tab.get_by_text("Unit Lens", exact=True).wait_for()
    sidebar = tab.locator("section[data-testid='stSidebar']")
    sidebar.get_by_text("notes.pt", exact=False).first.wait_for()       # listed as skipped, with its reason
    details = tab.locator("[data-testid='stCode']")
    click_until(tab, tab.get_by_text("Checkpoint details"), details)
    for name in ("ce: ", "minimax: ", "lsg: ", f"marked ([m](http://{TRACKER}/m)): "):  # the method shown as typed
        details.filter(has_text=name).first.wait_for()
    time.sleep(1)
    assert_clean(tab, server)
    assert not any(TRACKER in u for u in tab.requests)


def upload(tab, server, image_path: Path):
    tab.goto(server.url)
    tab.get_by_role("link", name="Compare on an image", exact=True).first.click()
    click_until(tab, tab.get_by_text("Upload", exact=True), tab.get_by_text("Upload an image, or switch to the test set."))
    tab.locator('input[type="file"]').set_input_files(str(image_path))
    tab.wait_for_function("document.body.innerText.split('penultimate maps').length - 1 >= 3")
    tab.get_by_text("LayerCAM:").nth(2).wait_for()  # the second default map, in every column


def test_a_product_photo_is_inverted_and_read_as_footwear(server, tab, tmp_path):
    upload(tab, server, save_photo(tmp_path / "boot-product-photo.png", product_photo(0)))  # an ankle boot
    column = tab.locator('[data-testid="stColumn"]').filter(has_text="predicted").first
    text = column.inner_text()
    assert "ce" in text
    predicted = text.split("predicted", 1)[1].split("(")[0].strip()
    assert predicted in FOOTWEAR, text
    click_until(tab, column.get_by_text("What was done to the image"),
                column.get_by_text("inverted: light background", exact=False))
    assert_clean(tab, server)
    tab.screenshot(path=str(ARTIFACTS / "compare.png"))
    # the browser forgets a hidden uploader's file; the page keeps it until the user clears it
    click_until(tab, tab.get_by_text("Test set", exact=True), tab.get_by_text("test image 0", exact=False))
    # that run to its end: one cut short by the next click keeps the hidden uploader's file (Streamlit
    # skips its clean-up then), and the page shows the upload as it is, not as kept
    wait_until_idle(tab)
    tab.get_by_text("Upload", exact=True).click()
    tab.get_by_text("Showing boot-product-photo.png, uploaded before", exact=False).wait_for()
    tab.get_by_text("LayerCAM:").nth(2).wait_for()
    click_until(tab, tab.get_by_role("button", name="Clear", exact=True),
                tab.get_by_text("Upload an image, or switch to the test set."))
    assert_clean(tab, server)


def test_the_invert_choice_holds_over_uploads_one_after_another(server, tab, tmp_path):
    """Replacing the file runs the page once without the toggle; drawn again from its own default it
    showed off and sent that back, so the next product photos were silently not inverted."""
    upload(tab, server, save_photo(tmp_path / "photo-0.png", product_photo(0)))
    toggle = tab.get_by_role("switch", name="Invert a light-background", exact=False)
    captions = tab.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]')

    def shown(name: str):
        """The page's run for this file has drawn its caption (the uploader's own chip comes first)
        and, just after it, the toggle; then it ends."""
        captions.filter(has_text=name).first.wait_for()
        wait_until_idle(tab)
    for i in (1, 2, 3):
        wait_until_idle(tab)
        tab.locator('input[type="file"]').set_input_files(str(save_photo(tmp_path / f"photo-{i}.png", product_photo(i))))
        shown(f"photo-{i}.png")
        assert toggle.is_checked(), f"the toggle went off at upload {i + 1}"
    column = tab.locator('[data-testid="stColumn"]').filter(has_text="predicted").first
    click_until(tab, column.get_by_text("What was done to the image"),
                column.get_by_text("inverted: light background", exact=False))
    toggle.click(force=True)  # the user's own choice holds too
    wait_until_idle(tab)
    tab.locator('input[type="file"]').set_input_files(str(tmp_path / "photo-0.png"))
    shown("photo-0.png")
    assert not toggle.is_checked()
    assert_clean(tab, server)


def test_the_test_image_picked_is_kept_while_an_upload_showed(server, tab):
    """Class and index leave the page while Upload shows; drawn again they came back at index 0
    while the page still showed the image picked before (the next click read 0)."""
    from playwright.sync_api import expect
    tab.goto(f"{server.url}/compare")
    main = tab.locator('[data-testid="stMain"]')
    class_picker = main.locator('[data-testid="stSelectbox"]').filter(has=tab.get_by_text("Class", exact=True))
    click_until(tab, class_picker, tab.get_by_role("option", name="Bag", exact=True))
    tab.get_by_role("option", name="Bag", exact=True).click()
    bag = main.locator('[data-testid="stCaptionContainer"]').filter(has_text="true class Bag").first
    bag.wait_for()
    wait_until_idle(tab)
    first = bag.inner_text()  # the first Bag
    index = main.locator('[data-testid="stNumberInput"] input').first
    index.fill("3")
    index.press("Enter")
    expect(bag).not_to_have_text(first, timeout=180_000)  # the fourth Bag
    wait_until_idle(tab)
    picked = bag.inner_text()
    click_until(tab, tab.get_by_text("Upload", exact=True), tab.get_by_text("Upload an image, or switch to the test set."))
    click_until(tab, tab.get_by_text("Test set", exact=True), tab.get_by_text(picked, exact=True))
    wait_until_idle(tab)
    assert index.input_value() == "3"
    expect(main.get_by_role("combobox", name="Class", exact=True)).to_have_value("Bag")  # the class picker shows it too
    assert_clean(tab, server)


def test_an_image_unlike_the_data_gets_a_notice(server, tab, tmp_path):
    checker = (np.indices((64, 64)).sum(0) // 8 % 2 * 255).astype(np.uint8)
    upload(tab, server, save_photo(tmp_path / "checkerboard.png", Image.fromarray(checker)))
    tab.get_by_text("Unlike the training data", exact=False).first.wait_for()
    assert_clean(tab, server)


def test_train_from_the_sidebar(server, tab):
    runs_dir = Path(server.env["UNITLENS_RUNS"])
    tab.goto(server.url)
    limit = tab.get_by_role("spinbutton", name="Use only N images, a class-balanced sample (0: all)")
    click_until(tab, tab.get_by_text("Train a model"), limit)
    limit.fill("3000")  # about ten steps: long enough for the monitor to show them
    limit.press("Enter")
    wait_until_idle(tab)
    epochs = tab.get_by_label("Epochs")
    epochs.fill("1")  # minimax, the default method, has no warm-up to wait for
    epochs.press("Enter")
    wait_until_idle(tab)  # a click on Start while that value's rerun still ran was lost (a loaded CI machine)
    assert limit.input_value() == "3000" and epochs.input_value() == "1"
    tab.get_by_role("button", name="Start").click()
    tab.get_by_text("started ").wait_for()
    sidebar = tab.locator("section[data-testid='stSidebar']")
    sidebar.get_by_text("epoch 1/1", exact=False).first.wait_for(timeout=120_000)  # progress from the first seconds
    deadline = time.time() + 240
    while time.time() < deadline and ": done" not in sidebar.inner_text():
        time.sleep(1)
    assert ": done" in sidebar.inner_text(), sidebar.inner_text()
    run_name = next(p.stem for p in runs_dir.glob("*.pt"))
    tab.get_by_role("link", name="Overview", exact=True).first.click()
    click_until(tab, tab.get_by_text("Checkpoint details"),  # the finished run joined the model list
                tab.locator("[data-testid='stCode']").filter(has_text=run_name))
    assert_clean(tab, server)


def test_two_sessions_at_once_then_a_deep_link(server, browser):
    """Two browser sessions compute different pages at the same time against one DuckDB cache;
    then a link with the model and unit in the URL opens the Unit page on the running server."""
    from playwright.sync_api import expect
    contexts = [browser.new_context(viewport={"width": 1400, "height": 2000}) for _ in range(2)]
    tabs = [context.new_page() for context in contexts]
    for tab in tabs:
        tab.set_default_timeout(180_000)
        tab.goto(server.url)
        tab.get_by_role("link", name="Overview", exact=True).first.wait_for()
    tabs[0].get_by_role("link", name="Selectivity", exact=True).first.click()  # both reruns now run side by side
    tabs[1].get_by_role("link", name="Gates", exact=True).first.click()
    tabs[0].get_by_text("PCA of the features", exact=True).wait_for()
    tabs[1].get_by_text("Class masking", exact=True).wait_for()
    tabs[0].get_by_role("link", name="Ablations", exact=True).first.click()
    tabs[0].get_by_text("Single-unit ablation", exact=True).wait_for()
    for tab in tabs:
        assert tab.locator(ERROR_SELECTORS).count() == 0, tab.inner_text("body")
        assert "Traceback" not in tab.inner_text("body")

    tabs[1].goto(f"{server.url}/unit?model=minimax&unit=3")
    tabs[1].get_by_text("Top-activating test images", exact=True).wait_for()
    expect(tabs[1].get_by_role("spinbutton", name="Unit")).to_have_value("3", timeout=60_000)
    assert "unit=3" in tabs[1].url and "model=minimax" in tabs[1].url
    assert tabs[1].locator(ERROR_SELECTORS).count() == 0
    for context in contexts:
        context.close()


def test_the_server_as_configured_asks_nothing_outside_the_machine(model_folder, tmp_path):
    """`make run`'s server (the repository's config, no address given): it serves this machine and,
    at start, does not look up the machine's external IP (Streamlit asks checkip.amazonaws.com
    for one when it serves every interface headless)."""
    log = ARTIFACTS / "server-as-configured.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = start_server(ui_env.app_environment(model_folder, tmp_path), port, log=log, address=None)
    try:
        time.sleep(2)  # the start-up banner, and the lookup if there were one, come after the port opens
    finally:
        stop_server(proc)
    text = log.read_text()
    assert f"URL: http://localhost:{port}" in text, text
    assert "External URL" not in text and "external IP" not in text and "Network URL" not in text, text


def test_a_click_on_the_gate_heatmap_opens_that_unit(server, tab):
    """Gates: a unit's column in the gate heatmap is a way to the Unit page, as the README promises."""
    tab.goto(f"{server.url}/gates")
    chart = tab.locator("[data-testid='stVegaLiteChart']").first
    chart.wait_for()
    wait_until_idle(tab)
    box = chart.bounding_box()
    tab.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)  # a cell mid-heatmap
    unit = tab.get_by_role("spinbutton", name="Unit")
    unit.wait_for()
    assert unit.input_value().isdigit()
    tab.get_by_text("Top-activating test images").wait_for()
    assert_clean(tab, server)


def test_the_unit_picked_is_kept_while_the_class_view_showed(server, tab):
    """The model and unit leave the page while the class view shows; drawn again they came back at
    the first compared model, unit 0 (and the URL with them)."""
    from playwright.sync_api import expect
    tab.goto(f"{server.url}/unit?model=minimax&unit=5")
    unit = tab.get_by_role("spinbutton", name="Unit")
    expect(unit).to_have_value("5")
    wait_until_idle(tab)
    unit.fill("20")
    unit.press("Enter")
    tab.get_by_text("top-activating", exact=False).first.wait_for()
    expect(tab.locator('[data-testid="stMain"] [data-testid="stMetricValue"]').first).to_be_visible()
    wait_until_idle(tab)
    assert "unit=20" in tab.url
    class_view = tab.get_by_role("radio", name="One class across the compared models")
    click_until(tab, class_view, tab.get_by_text("For each model: among its live units", exact=False))
    click_until(tab, tab.get_by_role("radio", name="One unit", exact=True), unit)
    wait_until_idle(tab)
    assert unit.input_value() == "20"
    expect(tab.locator('[data-testid="stMain"]').get_by_role("combobox", name="Model")).to_have_value("minimax")
    assert "model=minimax" in tab.url and "unit=20" in tab.url
    assert_clean(tab, server)


def test_the_specificity_and_cost_view_answers_on_the_bundled_trio(tmp_path, tab):
    """The bundled ce, minimax and lsg with their shipped results (whole splits): the page puts each
    class-specificity figure beside each cost, says which way is better, and why selectivity and Phi
    can disagree."""
    bundled = Server(ROOT / "checkpoints", tmp_path, "bundled-tradeoffs",
                     {"UNITLENS_EVAL_LIMIT": "0", "UNITLENS_TRAIN_LIMIT": "0"})
    try:
        tab.goto(bundled.url + "/tradeoffs")
        tab.get_by_role("heading", name="Class specificity and its cost").first.wait_for(timeout=180_000)
        tab.get_by_text("Selectivity and Phi can disagree", exact=False).first.wait_for(timeout=180_000)
        wait_until_idle(tab)
        body = tab.inner_text("body")
        for words in ("Class specificity", "Cost", "median SI (↑ better)", "Phi (↓ better)", "NLL (↓ better)",
                      "ECE (↓ better)", "accuracy (↑ better)"):
            assert words in body, words
        grids = tab.locator('[data-testid="stDataFrame"]')
        assert grids.count() >= 2
        assert_clean(tab, bundled)
    finally:
        bundled.stop()


def test_compare_opens_an_imported_resnet50_on_a_224_px_colour_photo(tmp_path, tab):
    """A random-weight torchvision ResNet-50 imported on a folder of colour photos: Compare shows its
    test photo as the model sees it (224 px, ImageNet's crop) and the 64 most active of its 2048 maps."""
    import torchvision

    from core.import_weights import import_weights
    from .test_import_weights import photo_folder
    models = tmp_path / "models"
    models.mkdir()
    torch.save(torchvision.models.resnet50(num_classes=3).state_dict(), tmp_path / "r50.pth")
    folder = photo_folder(tmp_path / "photos", size=(300, 200))
    import_weights(tmp_path / "r50.pth", "resnet50", models / "r50.pt", dataset=f"imagefolder:{folder}")
    server = Server(models, tmp_path / "work", "resnet50-compare")
    try:
        tab.goto(server.url + "/compare")
        tab.get_by_text("the 64 most active of 2048 penultimate maps", exact=False).first.wait_for(timeout=240_000)
        wait_until_idle(tab)
        tab.get_by_text("input as the model sees it").first.wait_for()
        click_until(tab, tab.get_by_text("What was done to the image").first,
                    tab.get_by_text("then the centre 224x224 (ImageNet's evaluation)", exact=False).first)
        assert_clean(tab, server)
    finally:
        server.stop()
