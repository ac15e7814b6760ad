"""The models page against a real MLflow server holding two registered versions."""

import pytest

from tests.ui.helpers import page

pytestmark = pytest.mark.integration


def _version_box(at):
    """The "One version" selector (the release controls have a selector of their own)."""
    [box] = [b for b in at.selectbox if b.label == "Version"]
    return box


def test_versions_aliases_metrics_and_links(ui_env, ui_model):
    ui_env(mlflow_tracking_uri=ui_model.tracking_uri, model_name=ui_model.name)
    at = page("models").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Versions": "2", "@champion": f"v{ui_model.champion}", "@challenger": f"v{ui_model.challenger}"}

    table = at.dataframe[0].value.set_index("version")
    champion, challenger = int(ui_model.champion), int(ui_model.challenger)
    assert table.loc[champion, "aliases"] == "@champion" and table.loc[challenger, "aliases"] == "@challenger"
    for version, logged in ui_model.versions.items():
        row = table.loc[int(version)]
        assert row["f1_macro"] == pytest.approx(logged["metrics"]["f1_macro"])
        assert row["accuracy"] == pytest.approx(logged["metrics"]["accuracy"])
        assert logged["run_id"] in row["run"]
    assert table.loc[champion, "decision"] == "champion"

    charts = at.get("vega_lite_chart")
    assert len(charts) == 2, "a chart of the primary metric and the learning curve"
    assert "Learning curve" in [h.value for h in at.subheader]
    assert _version_box(at).value == champion  # the champion is selected first
    [picture] = at.image
    assert picture.captions == [f"Confusion matrix of v{champion} on its evaluation rows"]
    urls = [b.proto.url for b in at.get("link_button")]
    assert any(ui_model.versions[ui_model.champion]["run_id"] in url for url in urls)


def test_a_first_champion_shows_no_previous_champion_not_a_blank(ui_env, ui_model, tmp_path):
    """The first training's decision compares with nobody; the table says so (it was a blank "")."""
    import mlflow
    import sqlalchemy as sa

    from forestops.storage.db import ensure_schema
    from forestops.training import promotion

    client = mlflow.MlflowClient(tracking_uri=ui_model.tracking_uri)
    name = f"{ui_model.name}_first"
    client.create_registered_model(name)
    version = client.copy_model_version(f"models:/{ui_model.name}/{ui_model.champion}", name).version
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    ensure_schema(engine)  # promotion records the alias move in the history table
    decision = promotion.decide(engine, client, name, str(version), 0.8125, lambda _v: 0.0, "f1_macro", 0.01)
    assert decision.decision == promotion.DECISION_CHAMPION and decision.champion_score is None

    ui_env(mlflow_tracking_uri=ui_model.tracking_uri, model_name=name)
    at = page("models").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    row = at.dataframe[0].value.set_index("version").loc[int(version)]
    assert row["champion_score"] == "no previous champion"
    assert row["candidate_score"] == "0.8125" and row["decision"] == "champion"


def test_a_model_without_versions_says_how_to_get_one(ui_env, ui_model):
    ui_env(mlflow_tracking_uri=ui_model.tracking_uri, model_name="no_such_model_here")
    at = page("models").run()
    assert not at.exception
    assert "No version of `no_such_model_here` is registered yet" in at.info[0].value


def test_the_confusion_matrix_of_the_selected_version(ui_env, ui_model):
    ui_env(mlflow_tracking_uri=ui_model.tracking_uri, model_name=ui_model.name)
    at = page("models").run()
    _version_box(at).select(int(ui_model.challenger)).run()
    assert not at.exception and not at.error
    assert at.image[0].captions == [f"Confusion matrix of v{ui_model.challenger} on its evaluation rows"]


def test_a_url_that_is_not_mlflow_is_an_error_not_an_empty_registry(ui_env, ui_data_api):
    ui_env(mlflow_tracking_uri=ui_data_api)  # a real server, but the data API
    at = page("models").run()
    assert not at.exception
    [error] = at.error
    assert "HTTP 404" in error.value and "FORESTOPS_MLFLOW_TRACKING_URI" in error.value
    assert not at.info
