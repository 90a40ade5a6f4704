"""--search prior: piBO (Hvarfner et al., ICLR 2022), the documented default as the search's prior,
through SMAC3 (`PriorAcquisitionFunction` over its random-forest Bayesian optimisation), as an
Optuna sampler: the sweep's study, its health-aware searcher, the default-first trial, ASHA, the
journal and the dashboards work as they do with TPE.

- The prior is centred on the sweep's base point (the documented default, or --config's): for a
  number a normal truncated to its range, over the logarithm where the parameter is log-scaled,
  whose standard deviation is a share of the (log) range (`--prior-confidence`: low 0.5, medium
  0.25, high 0.125, NePS's float scores); for a choice, the default's weight against 1 for each other
  (low 2, medium 4, high 6). A parameter the base point lacks (another branch's) has a flat prior.
  piBO weights the acquisition by prior^(beta / n); beta is a tenth of --trials, as in SMAC's example,
  so the prior fades as results come in and a poor prior costs little.
- Branches: SMAC gets one flat space of every parameter the space can hold (sampled from it); a
  point's inactive parameters are values the objective does not read, which the forest learns, and
  a trial's define-by-run function asks only for its branch's. The start-up trials are drawn from
  the prior (a random initial design would draw them uniformly).
- What SMAC is told: every finished trial of the study it has not seen yet, before each new point
  (the default, the enqueued and warm-start trials, and all of them after a --resume): a completed
  trial with its objective, one the scheduler stopped with its last reported value (as Optuna's TPE
  ranks pruned trials), one a health check failed as a crash (SMAC's crash cost).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import weakref

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

CONFIDENCE_SD = {"low": 0.5, "medium": 0.25, "high": 0.125}  # share of the (log) range: NePS's float scores
CONFIDENCE_WEIGHT = {"low": 2.0, "medium": 4.0, "high": 6.0}  # the default's choice against 1 for each other
# SMAC's acquisition maximiser: 1,000 random challengers, local searches from the 2 best of them and
# the 2 best trials (SMAC's HPO default 10,000 and 10). 2 local searches against 5: a point in half
# the time (0.49 against 1.06 s on hdr_patch `all` after 40 trials) and the same regret, replayed at
# 20 seeds on hdr_patch `caps` and `all` (2 - 5 at the full budget +0.003 [-0.011, +0.016] and
# -0.011 [-0.038, +0.015]; benchmarks/history.md, 2026-11-30)
CHALLENGERS, LOCAL_SEARCHES = 1000, 2
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class Coded:
    """One parameter as SMAC sees it: `hyperparameter` (ConfigSpace) and the map from SMAC's value
    back to Optuna's (`value`) and from Optuna's to SMAC's (`code`)."""

    def __init__(self, name: str, distribution, default, confidence: str):
        # here, not at the top: loads scipy only where this runs
        from ConfigSpace import Categorical, Constant, Float, Integer, Normal

        from losstune.ray_jobs.search.smac_fast_paths import NormalFloat

        self.distribution, d = distribution, distribution
        has_prior = default is not None
        sd = CONFIDENCE_SD[confidence]
        if isinstance(d, CategoricalDistribution):
            weights = [CONFIDENCE_WEIGHT[confidence] if has_prior and c == default else 1.0 for c in d.choices]
            items = [str(k) for k in range(len(d.choices))]  # choices may be bools, None, numbers
            centre = str(d.choices.index(default)) if has_prior else items[0]
            self.hyperparameter = Categorical(name, items, default=centre, weights=weights if has_prior else None)
            return
        low, high = self.code(d.low), self.code(d.high)
        if high <= low:
            self.hyperparameter = Constant(name, float(low))
            return
        centre = min(max(self.code(default), low), high) if has_prior else (low + high) / 2
        sigma = sd * (high - low)
        prior = Normal(mu=centre, sigma=sigma) if has_prior else None
        if isinstance(d, IntDistribution) and not d.log and d.step == 1:
            self.hyperparameter = Integer(name, (int(low), int(high)), default=int(round(centre)), distribution=prior)
        elif has_prior:  # log-scaled, stepped or float: searched as a float, rounded on the way back
            self.hyperparameter = NormalFloat(name, mu=centre, sigma=sigma, lower=low, upper=high,
                                              default_value=centre)
        else:
            self.hyperparameter = Float(name, (low, high), default=centre)

    def code(self, value):
        """Optuna's value as SMAC's."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return str(d.choices.index(value))
        if isinstance(d, IntDistribution) and not d.log and d.step == 1:
            return int(value)
        return math.log(value) if d.log else float(value)

    def value(self, coded):
        """SMAC's value as Optuna's: a choice, or a number in range on the distribution's step."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return d.choices[int(coded)]
        number = math.exp(coded) if d.log else float(coded)
        if d.step is not None:
            number = d.low + round((number - d.low) / d.step) * d.step
        number = min(max(number, d.low), d.high)
        return int(round(number)) if isinstance(d, IntDistribution) else number


class PriorSampler(optuna.samplers.BaseSampler):
    """piBO through SMAC3, one SMAC point per Optuna trial (see the module's docstring)."""

    def __init__(self, distributions: dict, default_point: dict, *, confidence: str = "medium", trials: int,
                 startup_trials: int, seed: int, direction: str = "minimize"):
        # here, not at the top: loads scipy only where this runs
        from losstune.ray_jobs.search.smac_fast_paths import FlatSpace

        self.coded = {name: Coded(name, d, default_point.get(name), confidence)
                      for name, d in sorted(distributions.items())}
        self.space = FlatSpace(seed=seed)
        self.space.add([c.hyperparameter for c in self.coded.values()])
        self.sign = 1.0 if direction == "minimize" else -1.0  # SMAC minimises a cost
        self.trials, self.startup_trials, self.seed = trials, startup_trials, seed
        self.fallback = optuna.samplers.RandomSampler(seed=seed)
        self.forget()

    def forget(self) -> None:
        """A fresh SMAC, told nothing yet: at the start, and where Tune unpickled the sampler (its
        experiment state; SMAC itself does not pickle), which the next point then tells everything."""
        self._smac = None
        self.asked = {}  # Optuna trial number -> SMAC's TrialInfo
        self.told = set()  # trial numbers SMAC has been told

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_smac", "asked", "told")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.forget()

    @property
    def smac(self):
        if self._smac is None:
            self._smac = self.make_smac()
        return self._smac

    def make_smac(self):
        # here, not at the top: loads scipy, smac, pandas only where this runs
        from smac import HyperparameterOptimizationFacade as HPO, Scenario
        from smac.acquisition.function import PriorAcquisitionFunction
        from smac.initial_design import RandomInitialDesign

        from losstune.ray_jobs.search.smac_fast_paths import Forest

        # SMAC writes its state to a folder; the study's journal is the record, so a scratch one
        scratch = tempfile.mkdtemp(prefix="losstune-smac-")
        weakref.finalize(self, shutil.rmtree, scratch, True)
        scenario = Scenario(self.space, deterministic=True, n_trials=10 ** 9, seed=self.seed, output_directory=scratch)
        startup = list(self.space.sample_configuration(size=max(self.startup_trials, 2)))[:self.startup_trials]
        # logging_level=False: SMAC's own set-up runs logging.config.dictConfig, which disables every
        # logger already made (the sweep's, Ray's); its logger is quietened instead
        logging.getLogger("smac").setLevel(logging.ERROR)
        return HPO(scenario, lambda config, seed=0: 0.0, overwrite=True, logging_level=False,
                   initial_design=RandomInitialDesign(scenario, n_configs=0, additional_configs=startup),
                   acquisition_function=PriorAcquisitionFunction(HPO.get_acquisition_function(scenario),
                                                                 decay_beta=max(self.trials / 10, 1.0)),
                   intensifier=HPO.get_intensifier(scenario, max_config_calls=1),
                   # the model refitted at every point (SMAC's default: every 8th), in this thread
                   # (joblib's threads polled for a third of the time), its acquisition maximised over
                   # CHALLENGERS and LOCAL_SEARCHES (SMAC's 10,000 and 10 took ~20 s at every 8th point
                   # on hdr_patch's 20 parameters); max_leaf_nodes None: SMAC's 2**20 (as
                   # good as no limit) makes sklearn grow each tree best-first in room for a million nodes,
                   # ~0.1 s a tree, where depth-first grows trees of the same kind (split until pure) 1.3-1.9x
                   # faster a point; the space, the prior and the forest through smac_fast_paths
                   config_selector=HPO.get_config_selector(scenario, retrain_after=1),
                   model=Forest(self.space, log_y=True, n_trees=10, ratio_features=1.0, min_samples_split=2,
                                min_samples_leaf=1, seed=self.seed, n_jobs=1, max_leaf_nodes=None),
                   acquisition_maximizer=HPO.get_acquisition_maximizer(scenario, challengers=CHALLENGERS,
                                                                       local_search_iterations=LOCAL_SEARCHES))

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        if param_name not in self.coded:  # not seen when the space was sampled: drawn at random
            return self.fallback.sample_independent(study, trial, param_name, param_distribution)
        if trial.number not in self.asked:
            self.tell_finished(study)
            self.asked[trial.number] = self.smac.ask()
        value = self.coded[param_name].value(self.asked[trial.number].config[param_name])
        return within(value, param_distribution)

    def tell_finished(self, study) -> None:
        """Tell SMAC every finished trial of the study it has not been told."""
        # here, not at the top: loads scipy, smac, pandas only where this runs
        from smac.runhistory.dataclasses import TrialInfo, TrialValue
        from smac.runhistory.enumerations import StatusType

        for trial in study.get_trials(deepcopy=False, states=FINISHED):
            if trial.number in self.told:
                continue
            self.told.add(trial.number)
            # a trial SMAC did not ask for, under the seed its intensifier compares trials on
            info = self.asked.get(trial.number) or TrialInfo(self.configuration(trial.params), seed=self.seed_of_smac())
            value = outcome(trial)
            if value is None:
                self.smac.tell(info, TrialValue(cost=0.0, status=StatusType.CRASHED), save=False)
            else:
                self.smac.tell(info, TrialValue(cost=self.sign * value), save=False)

    def seed_of_smac(self) -> int:
        """The one seed SMAC's intensifier runs a deterministic problem's trials with (before its first
        point it has none, and takes the seed of the trials it is told)."""
        try:
            (key,) = self.smac.intensifier.get_instance_seed_keys_of_interest()
        except RuntimeError:  # not started
            return 0
        return key.seed

    def configuration(self, params: dict):
        """A trial's point as SMAC's configuration: its branch's values, the others at their centre."""
        # here, not at the top: loads scipy only where this runs
        from ConfigSpace import Configuration

        values = {name: c.hyperparameter.default_value for name, c in self.coded.items()}
        values.update({name: self.coded[name].code(v) for name, v in params.items() if name in self.coded})
        return Configuration(self.space, values=values)


def outcome(trial) -> float | None:
    """A finished trial's objective: its value, or a stopped trial's last reported one; None for a
    failed trial (or a stopped one that reported nothing)."""
    if trial.state == TrialState.COMPLETE and trial.values:
        return float(trial.values[0])
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        return float(trial.intermediate_values[max(trial.intermediate_values)])
    return None


def within(value, distribution):
    """SMAC's value inside this trial's own distribution: a define-by-run space may narrow a range by
    an earlier choice (medgen's `architecture`: each kind's width), while SMAC searches the union."""
    if isinstance(distribution, CategoricalDistribution):
        return value if value in distribution.choices else distribution.choices[0]
    return min(max(value, distribution.low), distribution.high)
