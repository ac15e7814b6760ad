"""Photograph every page of the UI for the README: ``python -m tests.ui.screenshots [docs/images]``.

Stands up the real services the way the UI tests do (MariaDB, moto S3,
MLflow, the data API with two ingestion runs, two registered versions, the
inference API, Airflow's API server with one triggered run), starts
``forestops ui`` and drives each page in Debian's headless Chromium.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from pathlib import Path

from tests.support import data, mysql, servers
from tests.ui import services
from tests.ui.browser import chromium_page

log = logging.getLogger("screenshots")


def _settle(page, text: str, timeout: float = 90_000) -> None:
    page.get_by_text(text).first.wait_for(timeout=timeout)
    page.wait_for_timeout(1500)  # let charts and images finish drawing


def photograph(app_url: str, out: Path, batch_csv: Path) -> None:
    with chromium_page(width=1400, height=1100) as page:

        def shot(name: str) -> None:
            # Streamlit scrolls inside its main block, so grow the window to the content instead.
            height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
            page.set_viewport_size({"width": 1400, "height": min(max(int(height) + 40, 900), 4000)})
            page.wait_for_timeout(1000)
            page.screenshot(path=str(out / f"ui-{name}.png"), full_page=True)
            log.info("saved %s", out / f"ui-{name}.png")

        page.goto(app_url, wait_until="domcontentloaded")
        page.get_by_role("button", name="Fill with an example row").click(timeout=60_000)
        page.wait_for_timeout(1000)
        page.get_by_role("button", name="Predict", exact=True).click()
        _settle(page, "Predicted cover type:")
        shot("predict")

        page.goto(f"{app_url}/batch", wait_until="domcontentloaded")
        page.locator("input[type=file]").set_input_files(str(batch_csv))
        page.get_by_role("button", name="Predict 200 rows").click(timeout=60_000)
        _settle(page, "predictions by model")
        shot("batch")

        page.goto(f"{app_url}/pipeline", wait_until="domcontentloaded")
        _settle(page, "distinct rows stored")
        _settle(page, "Recent DAG runs")
        page.wait_for_timeout(3000)  # the run tables are drawn on a canvas: no text to wait for
        shot("pipeline")

        page.goto(f"{app_url}/models", wait_until="domcontentloaded")
        _settle(page, "Confusion matrix of v")
        shot("models")

        page.goto(f"{app_url}/console", wait_until="domcontentloaded")
        page.get_by_role("button", name="Send GET /data").click(timeout=60_000)
        _settle(page, "HTTP 200")
        shot("console")

        page.goto(f"{app_url}/health", wait_until="domcontentloaded")
        _settle(page, "Raw data database")
        shot("health")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = data.sample_rows(3000)
    with tempfile.TemporaryDirectory(prefix="forestops-screens-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        server = stack.enter_context(mysql.mysql_server())
        names = [mysql.unique_name("fo_screens"), mysql.unique_name("fo_screens_mlflow")]
        raw_url, mlflow_backend = (mysql.create_database(server, name) for name in names)
        stack.callback(lambda: [mysql.drop_database(server, name) for name in names])
        s3 = stack.enter_context(servers.moto_s3(folder))
        mlflow = stack.enter_context(servers.mlflow_server(folder, mlflow_backend, s3))
        data_api = stack.enter_context(services.data_api(folder / "datasource", rows))
        for outcome in services.ingest(raw_url, data_api, runs=3):
            log.info("ingest: %s", outcome.summary())
        model = services.train_and_register(mlflow.url, rows, folder / "model", name="covertype")
        inference = stack.enter_context(services.inference_api(model, folder / "inference"))
        airflow = stack.enter_context(services.airflow_api(folder / "airflow"))
        settings = {
            "datasource_url": data_api,
            "inference_url": inference,
            "mlflow_tracking_uri": mlflow.url,
            "model_name": model.name,
            "airflow_url": airflow.url,
            "airflow_username": airflow.username,
            "airflow_password": airflow.password,
            "database_url": raw_url,
            "group_number": "1",
        }
        from forestops.ui.clients.airflow import AirflowClient

        AirflowClient(airflow.url, airflow.username, airflow.password).trigger("covertype_ingest")
        app = stack.enter_context(services.ui_app(folder / "ui", settings))
        batch_csv = data.write_csv(folder / "batch.csv", rows[-200:])
        photograph(app, out, batch_csv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images"))
