"""Rollback and promote from the Models page: confirmed once, done through promotion, recorded, reset."""

import mlflow
import pytest

from forestops.storage.db import ensure_schema, make_engine
from forestops.training import history, promotion
from tests.ui.helpers import UI_USER, page, shown, sign_in

pytestmark = pytest.mark.integration


def _champion(client, name: str) -> str:
    return str(client.get_model_version_by_alias(name, "champion").version)


def test_rollback_and_promote_are_confirmed_recorded_and_the_confirmation_resets(ui_env, ui_model, tmp_path):
    client = mlflow.MlflowClient(tracking_uri=ui_model.tracking_uri)
    name = f"{ui_model.name}_release"
    client.create_registered_model(name)
    v1 = str(client.copy_model_version(f"models:/{ui_model.name}/{ui_model.champion}", name).version)
    v2 = str(client.copy_model_version(f"models:/{ui_model.name}/{ui_model.challenger}", name).version)
    ui_env(mlflow_tracking_uri=ui_model.tracking_uri, model_name=name)
    (tmp_path / "home").mkdir()
    engine = make_engine(f"sqlite:///{tmp_path / 'home' / 'covertype.db'}")  # the page's FORESTOPS_HOME
    ensure_schema(engine)
    promotion.promote(engine, client, name, v1, decided_by="cli:tester")
    promotion.promote(engine, client, name, v2, decided_by="cli:tester")

    at = page("models").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown_history = at.dataframe[1].value
    assert list(shown_history["action"]) == ["manual_promote", "manual_promote"]

    # Signed out: the history shows, but no control is drawn (a click cannot arrive), and the page says why.
    assert not [b for b in at.button if b.key in ("release_rollback", "release_promote")]
    assert any("Sign in (in the sidebar)" in i.value for i in at.info)
    assert _champion(client, name) == v2
    at = sign_in(at)

    # The first click only arms the rollback: nothing moves until it is confirmed.
    rollback = at.button(key="release_rollback")
    assert rollback.label == f"Roll back to v{v1}"
    at = rollback.click().run()
    assert _champion(client, name) == v2
    assert f"from v{v2} to v{v1}" in shown(at)
    at = at.button(key="release_confirm").click().run()
    assert not at.exception, at.exception
    assert _champion(client, name) == v1
    assert "Rolled back" in shown(at)
    assert not [b for b in at.button if b.key == "release_confirm"]  # the confirmation is gone after use

    # Promote any version: the same two steps.
    at.selectbox(key="release_version").select(v2)
    at = at.button(key="release_promote").click().run()
    assert _champion(client, name) == v1 and f"make v{v2} the champion" in shown(at)
    at = at.button(key="release_confirm").click().run()
    assert _champion(client, name) == v2

    with engine.connect() as connection:
        rows = history.entries(connection, name)
    engine.dispose()
    assert [(r["action"], r["from_version"], r["to_version"], r["actor"]) for r in rows[:2]] == [
        ("manual_promote", v1, v2, f"ui:{UI_USER}"),
        ("rollback", v2, v1, f"ui:{UI_USER}"),
    ]
    assert len(rows) == 4  # one row per move
