"""The local stack runs Airflow (and so every DAG task, training included) below the services' CPU priority."""

from __future__ import annotations

import os
import time

import psutil
import pytest

from forestops.local import airflow, services, supervise
from forestops.settings import load_settings

pytestmark = pytest.mark.unit


def test_airflow_components_are_planned_nice_and_the_services_are_not(tmp_path):
    settings = load_settings(home=tmp_path, stack_training_niceness=12)
    setup = airflow.AirflowSetup(tmp_path, 8080, "password", "secret", "sqlite:///airflow.db", tmp_path / "logs")
    niceness = {spec.name: spec.niceness for spec in services.plan(settings, setup)}
    assert {name for name, value in niceness.items() if value} == {
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-history",
    }
    assert niceness["airflow-scheduler"] == 12 and niceness["inference"] == 0


def test_a_niced_service_and_what_it_forks_run_at_that_niceness(tmp_path):
    base = os.getpriority(os.PRIO_PROCESS, 0)
    record = supervise.start_detached(
        "niced", ["bash", "-c", "sleep 30 & wait"], tmp_path / "niced.log", os.environ, tmp_path, niceness=7
    )
    try:
        process = psutil.Process(record.pid)
        children = []
        for _ in range(200):
            children = process.children()
            if children:
                break
            time.sleep(0.05)
        assert process.nice() == min(19, base + 7)
        assert children and all(child.nice() == min(19, base + 7) for child in children)
    finally:
        supervise.stop([record], timeout=5)
