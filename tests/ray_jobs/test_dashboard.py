"""optuna-dashboard on a sweep's journal (README: `optuna-dashboard <sweep>/optuna_study.journal`): it
opens the study while trials still run, names the objective, and shows the documented default as it
ended, never as Fail unless it failed."""

import io
import json
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna_dashboard import wsgi

from losstune.ray_jobs.results.study import STUDY_FILE

from tests.ray_jobs.sweep_folder import METRIC


def get(app, path: str) -> dict:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda code, headers, exc_info=None: status.append(code)))
    assert status[0].startswith("200"), (status, body[:500])
    return json.loads(body)


def test_the_dashboard_follows_a_running_sweeps_study_and_shows_the_default_as_it_ended(tmp_path):
    journal = str(tmp_path / STUDY_FILE)
    storage = JournalStorage(JournalFileBackend(journal))
    study = optuna.create_study(study_name="hdr_patch-caps-x", storage=storage)
    study.set_metric_names([METRIC])
    study.enqueue_trial({"x": 0.5})  # the sweep enqueues the documented default first
    default = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    other = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(other, state=optuna.trial.TrialState.FAIL)

    app = wsgi(journal)  # what `optuna-dashboard <journal>` serves, opened while the default runs
    [listed] = get(app, "/api/studies")["study_summaries"]
    assert listed["study_name"] == "hdr_patch-caps-x"
    running = get(app, f"/api/studies/{listed['study_id']}")
    assert [t["state"] for t in running["trials"]] == ["Running", "Fail"]
    assert running["objective_names"] == [METRIC]

    study.tell(default, 1.25)  # the default finishes; a fresh dashboard reads the journal anew
    finished = get(wsgi(journal), f"/api/studies/{listed['study_id']}")
    assert [(t["state"], t["params"][0]["param_external_value"]) for t in finished["trials"]][0] == ("Complete", "0.5")


@pytest.mark.integration  # it reads the session's one finished sweep (tests/conftest.py), built on a real Ray
def test_each_trial_of_a_finished_sweep_links_back_to_its_tune_trial_in_the_dashboard(finished_sweep):
    import pandas as pd

    folder = finished_sweep[0]
    app = wsgi(str(folder / STUDY_FILE))
    [listed] = get(app, "/api/studies")["study_summaries"]
    shown = get(app, f"/api/studies/{listed['study_id']}")["trials"]
    trials = pd.read_parquet(folder / "trials.parquet").set_index("trial_id")
    history = pd.read_parquet(folder / "history.parquet")
    # the sweep's own trials (the warm start's prior trials carry no Tune trial)
    ours = {attrs["tune_trial_id"]: (t, attrs) for t in shown
            for attrs in [{a["key"]: a["value"] for a in t["user_attrs"]}] if "tune_trial_id" in attrs}
    assert sorted(ours) == sorted(trials.index)
    for trial_id, (shown_trial, attrs) in ours.items():
        assert attrs["documented_default"] == str(trials.loc[trial_id, "is_default"])  # the dashboard shows text
        assert attrs["ended"] == "completed" and shown_trial["state"] == "Complete"
        assert attrs["best_checkpoint"] == trials.loc[trial_id, "best_checkpoint"]
        # an intermediate value for every epoch it reported, the last one included
        epochs = history.loc[history["trial_id"] == trial_id, "epoch"].tolist()
        assert [v["step"] for v in shown_trial["intermediate_values"]] == epochs
