"""Photograph the Monitoring page: ``python -m tests.ui.screenshot_monitoring [docs/images]``.

Real parts only: MariaDB, moto S3 and MLflow as the UI tests run them; a
champion trained on batch 1; batches 2 and 3 scored by it (3 shifted);
a second champion trained on batches 1-3; batches 4 and 5 scored by that
one (5 shifted).  Scoring is ``forestops.monitoring.steps.score_new_batches``,
the monitor DAG's own step, so the page shows what the DAG stores.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import tempfile
from pathlib import Path

from forestops.monitoring import steps
from forestops.settings import load_settings
from tests.monitoring.support import register_champion, shifted
from tests.support import data, mysql, servers
from tests.training.conftest import insert_raw_rows
from tests.ui import services
from tests.ui.browser import chromium_page

log = logging.getLogger("screenshots")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = data.sample_rows(5000)
    random.Random(15).shuffle(rows)
    with tempfile.TemporaryDirectory(prefix="forestops-screens-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        server = stack.enter_context(mysql.mysql_server())
        names = [mysql.unique_name("fo_screens"), mysql.unique_name("fo_screens_mlflow")]
        raw_url, mlflow_backend = (mysql.create_database(server, name) for name in names)
        stack.callback(lambda: [mysql.drop_database(server, name) for name in names])
        s3 = stack.enter_context(servers.moto_s3(folder))
        mlflow = stack.enter_context(servers.mlflow_server(folder, mlflow_backend, s3, timeout=600))
        settings = load_settings(
            home=folder / "home",
            database_url=raw_url,
            mlflow_tracking_uri=mlflow.url,
            monitor_reference_rows=1000,
        )
        insert_raw_rows(raw_url, rows[:2000], batch_number=1)
        register_champion(settings)
        insert_raw_rows(raw_url, rows[2000:2600], batch_number=2)
        insert_raw_rows(raw_url, shifted(rows[2600:3200]), batch_number=3)
        log.info("scored: %s", [b["batch_number"] for b in steps.score_new_batches(settings)["batches"]])
        register_champion(settings)
        insert_raw_rows(raw_url, rows[3200:3800], batch_number=4)
        insert_raw_rows(raw_url, shifted(rows[3800:4400]), batch_number=5)
        log.info("scored: %s", [b["batch_number"] for b in steps.score_new_batches(settings)["batches"]])
        app = stack.enter_context(
            services.ui_app(folder / "ui", {"database_url": raw_url, "mlflow_tracking_uri": mlflow.url})
        )
        with chromium_page(width=1400, height=1100) as page:
            page.goto(f"{app}/monitoring", wait_until="domcontentloaded")
            page.get_by_text("Batches monitored").first.wait_for(timeout=90_000)
            page.wait_for_timeout(4000)  # charts draw after the text
            height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
            page.set_viewport_size({"width": 1400, "height": min(max(int(height) + 40, 900), 4000)})
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "ui-monitoring.png"), full_page=True)
            log.info("saved %s", out / "ui-monitoring.png")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images"))
