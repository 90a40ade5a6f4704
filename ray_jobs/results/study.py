"""A sweep's Optuna study, read back from its journal, and which parameters mattered.

Importance comes from Optuna itself: its default evaluator (PED-ANOVA, which weighs conditional
parameters too) over the whole study, and fANOVA, which weighs only the parameters every trial it
is given has. A space that branches (hdr_patch's cap modes: Mode B's log_delta_scale exists only in
Mode B trials) would lose those to fANOVA over the whole study, so fANOVA also runs per branch:
on the trials that took one value of each categorical parameter that switches others on.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import warnings
from collections import defaultdict

import pandas as pd

from losstune.ray_jobs.core.storage import SweepFolderError, exists, filesystem, join
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family

STUDY_FILE = "optuna_study.journal"  # Optuna's own record of the search: states, values, params
IMPORTANCE_FILE = "importance.parquet"
MIN_TRIALS = 3  # completed trials below which a branch's importance is not computed: 2 points rank nothing
HEALTH_CONSTRAINT = "healthy"  # an Optuna constraint: > 0 for a trial its health check stopped (tuning.py)
REPEAT_OF = "repeat_of"  # user attr of a draw that repeated a trained config: told its result, not trained (tuning.py)
WARM_START = "warm_start"  # user attr of a prior trial given by --warm-start (prior_points.py)


def load_study(experiment: str):
    """The sweep's Optuna study from <experiment>/optuna_study.journal (copied to a local file first
    where the sweep lives on a remote filesystem); None where the sweep has no journal."""
    # here, not at the top: loads optuna only where this runs
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    uri = join(experiment, STUDY_FILE)
    if not exists(uri):
        return None
    path = uri
    if "://" in uri:
        fs, remote = filesystem(uri)
        path = os.path.join(tempfile.mkdtemp(prefix="losstune_study_"), STUDY_FILE)
        with fs.open_input_stream(remote) as f, open(path, "wb") as out:
            out.write(f.read())
    try:
        storage = JournalStorage(JournalFileBackend(path))
        names = optuna.get_all_study_names(storage)
        study = optuna.load_study(study_name=names[0], storage=storage) if names else None
    except (ValueError, KeyError, OSError) as err:  # JSONDecodeError is a ValueError
        raise SweepFolderError(f"{uri}: not a readable Optuna journal ({type(err).__name__}: {err}); move it "
                               "aside to read the sweep without Optuna's plots") from None
    if study is None:  # 0 bytes, or lines Optuna skips as a half-written record
        raise SweepFolderError(f"{uri}: the Optuna journal holds no study (a damaged or empty file); move it aside "
                               "to read the sweep without Optuna's plots")
    return study


def objective_index(study, metric: str) -> int:
    """Where the sweep's scalar objective is among the study's values (0 for a single objective)."""
    names = study.metric_names or []
    return names.index(metric) if metric in names else 0


def completed(study) -> list:
    """The study's completed trials, less the draws that repeated one (told its result, not trained)."""
    # here, not at the top: loads optuna only where this runs
    import optuna

    return [t for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
            if REPEAT_OF not in t.user_attrs]


def stopped_unhealthy(study) -> list:
    """The trials a health check stopped, as health_aware_search.HealthAwareOptunaSearch tells them: PRUNED, with
    the health constraint violated (under CMA-ES they are FAIL, and not among them)."""
    # here, not at the top: loads optuna only where this runs
    import optuna

    return [t for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.PRUNED])
            if t.constraints.get(HEALTH_CONSTRAINT, 0.0) > 0 and REPEAT_OF not in t.user_attrs]


def switch_params(points: list[dict]) -> list[str]:
    """The parameters of a space whose value decides which others a point has (hdr_patch's caps/mode,
    caps/clamp_enabled), from many random points of the space (search_spaces.sample_points)."""
    common = set.intersection(*(set(p) for p in points)) if points else set()
    found = []
    for name in sorted(common):
        by_value = defaultdict(list)
        for point in points:
            by_value[point[name]].append(set(point))
        if min(len(group) for group in by_value.values()) < 2:
            continue  # a value only one point took: a continuous parameter, whatever else varies with it
        always = [set.intersection(*group) for group in by_value.values()]
        ever = [set.union(*group) for group in by_value.values()]
        if any(a - e for i, a in enumerate(always) for j, e in enumerate(ever) if i != j):
            found.append(name)
    return found


def space_switches(meta: dict) -> dict[str, list]:
    """{"caps/mode": ["A", "B"], ...}: each switch of a sweep's space (switch_params, from 256 of its
    random points) with the values it takes. Kept per space: a sweep's end asks for them twice
    (importance, the report) and report.html once more, and 256 points of `all` take 0.5 s."""
    base = json.dumps(meta.get("base", {}), sort_keys=True)
    return dict(_space_switches(meta["family"], meta["space"], base, meta.get("seed", 0)))


@functools.lru_cache(maxsize=16)
def _space_switches(family_name: str, space_name: str, base: str, seed: int) -> tuple:
    # here, not at the top: loads ray, optuna only where this runs
    from losstune.search_spaces import sample_points

    family = load_family(family_name)
    points = sample_points(family.space(space_name, make_config(family, json.loads(base))), 256, seed)
    return tuple((name, sorted({p[name] for p in points}, key=str)) for name in switch_params(points))


def branches(trials: list, switches: list[str]) -> dict[str, list]:
    """{"caps/mode=B": trials, ...}: per value of each switch, the trials that took it."""
    groups = {}
    for name in switches:
        by_value = defaultdict(list)
        for trial in trials:
            if name in trial.params:
                by_value[trial.params[name]].append(trial)
        groups.update({f"{name}={value}": group for value, group in sorted(by_value.items(), key=str)})
    return groups


def sub_study(study, trials: list):
    """An in-memory study of some of `study`'s trials, for Optuna's evaluators and plots."""
    # here, not at the top: loads optuna only where this runs
    import optuna

    copy = optuna.create_study(directions=study.directions)
    copy.add_trials(trials)
    if study.metric_names:
        name_metrics(copy, study.metric_names)
    return copy


def name_metrics(study, names: list[str]) -> None:
    """study.set_metric_names, which Optuna's plots and optuna-dashboard read (its "experimental"
    warning silenced: the API has been there since Optuna 3.2)."""
    # here, not at the top: loads optuna only where this runs
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(names)


def importance(study, metric: str, switches: list[str] = ()) -> pd.DataFrame:
    """One row per (evaluator, branch, parameter): Optuna's default evaluator and fANOVA over all
    completed trials, and fANOVA per branch of the space's `switches` (switch_params); `n_trials`
    says how many trials each row rests on."""
    # here, not at the top: loads optuna only where this runs
    import optuna

    index = objective_index(study, metric)
    done = completed(study)
    rows = []
    runs = [("ped_anova", "all", done), ("fanova", "all", done),
            *[("fanova", name, group) for name, group in branches(done, switches).items()]]
    for evaluator, branch, trials in runs:
        # too few trials rank nothing; with one objective value there is no variance to apportion
        # (fANOVA raises on it)
        if len(trials) < MIN_TRIALS or len({t.values[index] for t in trials}) < 2:
            continue
        judge = optuna.importance.FanovaImportanceEvaluator(seed=0) if evaluator == "fanova" else None
        with warnings.catch_warnings():  # PED-ANOVA's "regimes with less than 2 trials": n_trials says it
            warnings.simplefilter("ignore")
            try:
                scores = optuna.importance.get_param_importances(sub_study(study, trials), evaluator=judge,
                                                                 target=lambda t: t.values[index])
            except RuntimeError as err:  # fANOVA: values so close that its forest sees no variance
                if "zero total variance" not in str(err):
                    raise
                continue
        rows += [{"evaluator": evaluator, "branch": branch, "param": param, "importance": score,
                  "n_trials": len(trials)} for param, score in scores.items() if not param_is_branch(branch, param)]
    return pd.DataFrame(rows, columns=["evaluator", "branch", "param", "importance", "n_trials"])


def param_is_branch(branch: str, param: str) -> bool:
    """A branch's own switch is constant within it: no importance to give."""
    return branch.split("=")[0] == param


def most_important(table: pd.DataFrame, count: int) -> list[str]:
    """The `count` most important parameters by the default evaluator over the whole study."""
    rows = table[(table["evaluator"] == "ped_anova") & (table["branch"] == "all")]
    return rows.sort_values("importance", ascending=False)["param"].head(count).tolist()


def summary(table: pd.DataFrame, top: int = 3) -> str:
    """The report's lines: the most important parameters per evaluator and branch."""
    if not len(table):
        return (f"importance: not computed (fewer than {MIN_TRIALS} completed trials, or the objective is the same "
                "in all of them)")
    lines = ["importance (Optuna; share of the objective's variance each parameter explains, by evaluator and "
             "branch of the space; n = completed trials):"]
    for (evaluator, branch), rows in table.groupby(["evaluator", "branch"], sort=False):
        best = rows.sort_values("importance", ascending=False).head(top)
        listed = ", ".join(f"{r.param} {r.importance:.2f}" for r in best.itertuples())
        lines.append(f"  {evaluator:>9} {branch} (n={rows['n_trials'].iloc[0]}): {listed}")
    return "\n".join(lines)
