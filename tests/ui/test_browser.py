"""The real ``forestops ui`` process in headless Chromium: submit the predict form, read the class."""

from pathlib import Path

import httpx
import pytest

from forestops import schema
from tests.ui import services
from tests.ui.browser import HOW_TO_INSTALL, chromium_page, chromium_path

pytestmark = [pytest.mark.browser, pytest.mark.integration]


# True once no script run is under way and the form's number inputs hold exactly ``numbers`` (sorted).
FORM_FILLED = """numbers => {
    if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
    const shown = [...document.querySelectorAll('input[type="number"]')].map(el => Number(el.value));
    shown.sort((a, b) => a - b);
    return shown.length === numbers.length && shown.every((value, i) => value === numbers[i]);
}"""


@pytest.fixture
def ui_process(ui_inference: str, tmp_path: Path):
    with services.ui_app(tmp_path, {"inference_url": ui_inference}) as url:
        yield url


def test_submit_the_predict_form_in_chromium(ui_process: str, ui_inference: str, tmp_path: Path):
    if chromium_path() is None:
        pytest.fail(HOW_TO_INSTALL, pytrace=False)
    answer = httpx.post(f"{ui_inference}/predict", json={"instances": [schema.example_features()]}, timeout=30).json()
    expected = answer["predictions"][0]["cover_type_name"]
    numbers = [value for value in schema.example_features().values() if isinstance(value, int)]

    with chromium_page() as page:
        page.goto(ui_process, wait_until="domcontentloaded")
        page.get_by_role("button", name="Fill with an example row").click(timeout=60_000)
        elevation = page.get_by_role("spinbutton", name="Elevation (m)")
        elevation.wait_for(timeout=30_000)
        page.wait_for_function("el => el.value === '3020'", arg=elevation.element_handle(), timeout=30_000)
        # "Fill" reruns the script, and the widgets are redrawn one by one: send the form only once every
        # number field holds the example's value and Streamlit says the run is over.
        page.wait_for_function(FORM_FILLED, arg=sorted(numbers), timeout=60_000)
        page.get_by_role("button", name="Predict", exact=True).click()
        result = page.get_by_text("Predicted cover type:")
        result.wait_for(timeout=60_000)
        text = result.inner_text()
        answered_by = page.get_by_text("Answered by model").inner_text()
        page.screenshot(path=str(tmp_path / "predict.png"), full_page=True)
    assert f"Predicted cover type: {expected}" in text, text
    assert f"version {answer['model']['version']} (@champion)" in answered_by
    assert (tmp_path / "predict.png").stat().st_size > 0
