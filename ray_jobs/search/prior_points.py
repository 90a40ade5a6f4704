"""Sweeps that build on what is known: hand-picked configs a sweep runs first (--enqueue), and an
earlier sweep's finished trials given to the new study as prior trials (--warm-start, Optuna's
add_trials). Both are checked against the new sweep's space before Ray starts: a point the space
cannot hold would be silently changed by Optuna (a parameter it does not know is dropped, a value
out of range is sampled anew), and the sweep would not run what was asked."""

from __future__ import annotations


from losstune.ray_jobs.core.usage import UsageError, read_json_file
from losstune.search_spaces import outside, space_distributions
from losstune.trainables.config import flatten
from losstune.ray_jobs.core.storage import absolute
from losstune.ray_jobs.results.study import HEALTH_CONSTRAINT, WARM_START, completed, load_study, stopped_unhealthy
import optuna


def read_enqueued(path: str, space, space_name: str) -> list[dict]:
    """--enqueue FILE: a JSON list of configs, each nested ({"caps": {"mode": "B"}}) or flat
    ({"caps/mode": "B"}), every key a parameter of the space and every value inside its range."""
    configs = read_json_file("--enqueue", path)
    if not isinstance(configs, list) or not all(isinstance(c, dict) and c for c in configs):
        raise UsageError(f"--enqueue: {path} must hold a JSON list of configs (non-empty objects)")
    distributions, _ = space_distributions(space)
    points = [flatten(config) for config in configs]
    for number, point in enumerate(points, 1):
        for name, value in point.items():
            if name not in distributions:
                raise UsageError(f"--enqueue: {path} config {number}: {name} is not a parameter of space "
                                 f"{space_name!r} (its parameters: {', '.join(sorted(distributions))})")
            why = outside(distributions[name], value)
            if why:
                raise UsageError(f"--enqueue: {path} config {number}: {name}={value!r} is {why}")
    return points


def fits(params: dict, distributions: dict, shapes: set) -> bool:
    """Whether an earlier trial's parameters make a point of the new space: the names of a point it
    yields, each value inside its range."""
    return frozenset(params) in shapes and not any(outside(distributions[k], v) for k, v in params.items())


def read_warm_start(path: str, meta_here: dict, space, unhealthy: bool = True) -> tuple[list[dict], int]:
    """--warm-start SWEEP: (the earlier sweep's trials that fit the new space, how many completed
    trials it had). A completed trial is {"params", "values"}; with `unhealthy`, a trial its health
    checks stopped is {"params", "stop_reason"}: where most trials stop so, they are most of what the
    earlier sweep learnt. UsageError naming the flag where the folder is no sweep, is another
    family's, or ranks by another objective."""
    # here, not at the top: loads torch, optuna, scipy only where this runs
    from losstune.ray_jobs.results.tables import SweepFolderError, read_meta

    folder = absolute(path.rstrip("/"))
    try:
        earlier = read_meta(folder)
        study = load_study(folder)
    except SweepFolderError as err:
        raise UsageError(f"--warm-start: {err}") from None
    if earlier["family"] != meta_here["family"]:
        raise UsageError(f"--warm-start: {folder} is a sweep of {earlier['family']}, not {meta_here['family']}")
    if objectives(earlier) != objectives(meta_here):
        raise UsageError(f"--warm-start: {folder} ranks by {objectives(earlier)}, this sweep by "
                         f"{objectives(meta_here)}: its values would mislead the search")
    if study is None:
        raise UsageError(f"--warm-start: {folder} has no Optuna study journal to take trials from")
    distributions, shapes = space_distributions(space)
    done = completed(study)
    priors = [{"params": t.params, "values": t.values} for t in done if fits(t.params, distributions, shapes)]
    if unhealthy:
        priors += [{"params": t.params, "stop_reason": t.user_attrs.get("stop_reason", "unhealthy")}
                   for t in stopped_unhealthy(study) if fits(t.params, distributions, shapes)]
    return priors, len(done)


def objectives(meta: dict) -> list:
    """What a sweep's study optimises, in order: its objectives, or its one objective."""
    return [(o["metric"], o["mode"]) for o in (meta.get("objectives") or [meta["objective"]])]


def add_prior_trials(study, priors: list[dict], distributions: dict) -> None:
    """Give the new study the earlier sweep's trials as it had them (Optuna's add_trials): COMPLETE,
    or, where its health checks stopped them, PRUNED and infeasible (health_aware_search.HealthAwareOptunaSearch)."""
    def prior_trial(prior: dict):
        known = {k: distributions[k] for k in prior["params"]}
        if "stop_reason" in prior:
            return optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, params=prior["params"],
                                             distributions=known, constraints={HEALTH_CONSTRAINT: 1.0},
                                             user_attrs={"stop_reason": prior["stop_reason"], WARM_START: True})
        return optuna.trial.create_trial(params=prior["params"], values=prior["values"], distributions=known,
                                         user_attrs={WARM_START: True})

    study.add_trials([prior_trial(p) for p in priors])
