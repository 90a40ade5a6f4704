"""What the tools researchers already use need of a sweep beyond the trials' own files:
TensorBoard's HParams experiment, declared once per sweep (docs/results.md, "Open a sweep in ...")."""

from __future__ import annotations

from losstune.ray_jobs.core import storage
from losstune.ray_jobs.core.plan import SweepPlan
from losstune.ray_jobs.core.storage import join
from losstune.trainables.registry import load_family


def write_tensorboard_experiment(plan: SweepPlan) -> str:
    """An event file in the sweep's folder that declares its HParams experiment: every parameter
    the space can sample (both branches of a conditional space), the training seed, and the
    objectives' tags. Each run declares only its own values, so no run's row lacks a column
    (with each trial declaring its own parameters, TensorBoard showed the first trial's only).
    Returns the file's URI."""
    # here, not at the top: loads ray, optuna, scipy and more only where this runs
    from losstune.ray_jobs.search.tuning import plan_space
    from losstune.search_spaces import space_distributions
    from losstune.trainables.engine.tensorboard import event_file_bytes, experiment_summary

    family = load_family(plan.family)
    distributions, _ = space_distributions(plan_space(plan))
    objectives = [plan.objective, *[o for o in plan.objectives if o != plan.objective]]
    tags = [family.tags.get(o["metric"], o["metric"]) for o in objectives]
    name, contents = event_file_bytes([experiment_summary(distributions, tags)])
    uri = join(plan.experiment, name)
    storage.write_bytes(uri, contents)
    return uri
