"""A search task replayed from its recorded landscape (benchmarks/landscapes.py): a config's curve,
epoch by epoch, as one training seed gave it, where an epoch costs a lookup.

A config that was recorded answers with its own curve at that seed. Any other answers with a
surrogate's (`Surrogate`), fitted once on the whole record, every branch in one space (a number
scaled over its recorded span, on a log scale where positive since weights and rates span decades;
-0.5 where a branch lacks it, as SMAC imputes inactive parameters; a categorical one-hot):

- whether the run stops (a health check): a logistic regression on the recorded runs' stops (the
  nearest run's, where fewer than 2 runs stopped or fewer than 2 ran on); the stop's reason and
  epoch are the nearest stopped run's;
- its curve up to there: a Gaussian process with one length scale per parameter (scikit-learn's
  RBF + white noise, its hyperparameters by maximum likelihood on the configs that ran every epoch)
  on the seed-mean curves of the configs that ran at least that long, every epoch an output, so a run
  that goes on is never cut short by a config that stopped;
- plus a training seed's noise, the deviation of one recorded config's seed from its seeds' mean,
  drawn from the configs of the branch by the seed.

Why one model over every branch, with a length scale per parameter: the parameters the branches
share (loss weights, rates) are learned from every config, and a parameter that barely matters
stops counting in the distance. The inverse-distance mean of the 3 nearest configs per branch this
replaced ranked held-out configs at 0.32 on hdr_patch `all` and 0.21 on latent_conditioner
`weights`, each left out in turn (seed ceilings 0.98 and 0.96); see `fidelity`, which measures the surrogate on configs
it was fitted without.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import LogisticRegressionCV

# where a branch lacks a number: outside its scaled [0, 1], so "absent" is a place of its own
ABSENT = -0.5
# folds of the record `fidelity` fits the surrogate without: every config is held out once
FOLDS = 5


@dataclass
class Curve:
    objective: list[float]  # per epoch, from epoch 1
    stop_reason: str  # "" or why the run stopped at its last epoch


class Landscape:
    """The record of one task: `points` (flat configs, the default first) and per (config, seed)
    its curve."""

    def __init__(self, rows: pd.DataFrame):
        self.points = [json.loads(p) for p in rows.groupby("config")["point"].first().sort_index()]
        self.seeds = sorted(rows["seed"].unique())
        self.curves = {(int(c), int(s)): Curve(group.sort_values("epoch")["objective"].tolist(),
                                               str(group.sort_values("epoch")["stop_reason"].iloc[-1] or ""))
                       for (c, s), group in rows.groupby(["config", "seed"])}
        self.epochs = max(len(c.objective) for c in self.curves.values())
        self.means = [self.seed_mean(index) for index in range(len(self.points))]
        self.branches = {}
        for index, point in enumerate(self.points):
            self.branches.setdefault(branch_key(point), []).append(index)
        self._surrogate = None

    @classmethod
    def read(cls, path: str) -> "Landscape":
        return cls(pd.read_parquet(path))

    @property
    def surrogate(self) -> "Surrogate":
        """Fitted on the whole record at first use (seconds on a few hundred configs); a pickled
        landscape carries it, so processes it is sent to do not fit it again."""
        if self._surrogate is None:
            self._surrogate = Surrogate(self, range(len(self.points)))
        return self._surrogate

    def curve(self, point: dict, seed: int) -> Curve:
        """The curve of `point` at training seed `seed`: recorded, else the surrogate's."""
        recorded_seed = self.seeds[seed % len(self.seeds)]
        for index, known in enumerate(self.points):
            if same_point(known, point) and (index, recorded_seed) in self.curves:
                return self.curves[(index, recorded_seed)]
        return self.surrogate.curve(point, seed)

    def mean_curve(self, index: int) -> np.ndarray:
        return self.means[index]

    def seed_mean(self, index: int) -> np.ndarray:
        """Config `index`'s curve averaged over its seeds, as long as its shortest run."""
        curves = [self.curves[(index, s)].objective for s in self.seeds if (index, s) in self.curves]
        length = min(len(c) for c in curves)
        return np.mean([c[:length] for c in curves], axis=0)

    def seed_noise(self, members: list[int], seed: int, length: int) -> np.ndarray:
        """One recorded config's deviation at one seed from its seeds' mean, drawn by `seed` among the
        configs recorded at every seed for at least `length` epochs (a config that stopped early at
        one seed has a mean only as long as its shortest run)."""
        paired = [i for i in members
                  if all((i, s) in self.curves for s in self.seeds) and len(self.mean_curve(i)) >= length]
        if len(self.seeds) < 2 or not paired:
            return np.zeros(length)
        rng = np.random.default_rng(seed)
        index, at = paired[rng.integers(len(paired))], self.seeds[rng.integers(len(self.seeds))]
        return np.asarray(self.curves[(index, at)].objective[:length]) - self.mean_curve(index)[:length]

    def healthy_to_the_end(self, index: int) -> bool:
        """Whether config `index` ran every epoch with no health stop at every seed it was recorded at
        (a record stopped part-way holds some configs at fewer seeds)."""
        curves = [self.curves[(index, s)] for s in self.seeds if (index, s) in self.curves]
        return bool(curves) and all(len(c.objective) == self.epochs and not c.stop_reason for c in curves)

    def runs_of(self, configs) -> list[tuple[int, int]]:
        return [(i, s) for i in configs for s in self.seeds if (i, s) in self.curves]


class Encoding:
    """Points of every branch as vectors of one space: a number scaled to [0, 1] over the recorded
    span (log10 where positive), ABSENT where the point's branch lacks it; a categorical one-hot."""

    def __init__(self, points: list[dict]):
        self.columns = []  # (name, low, span) for a number, (name, value, None) for a category's value
        for name in sorted({n for p in points for n in p}):
            values = [scaled(p[name]) for p in points if name in p]
            if all(isinstance(v, float) for v in values):
                self.columns.append((name, min(values), (max(values) - min(values)) or 1.0))
            else:
                self.columns += [(name, v, None) for v in sorted(set(values), key=repr)]

    def __call__(self, point: dict) -> np.ndarray:
        return np.array([entry(point, *column) for column in self.columns])


def entry(point: dict, name: str, low_or_value, span) -> float:
    if span is None:
        return float(name in point and scaled(point[name]) == low_or_value)
    return (scaled(point[name]) - low_or_value) / span if name in point else ABSENT


class Surrogate:
    """What the record says of configs it does not hold, learned from its configs `learned` alone
    (`fidelity` leaves some out)."""

    def __init__(self, landscape: Landscape, learned):
        self.landscape = landscape
        self.learned = sorted(learned)
        self.encode = Encoding([landscape.points[i] for i in self.learned])
        self.vectors = {i: self.encode(landscape.points[i]) for i in self.learned}
        self.runs = landscape.runs_of(self.learned)
        lengths = {len(landscape.curves[run].objective) for run in self.runs}
        # the hyperparameters, once: on the longest curves that 2 configs or more ran
        kernel = self.process(max([n for n in lengths if len(self.ran_at_least(n)) >= 2] or lengths)).kernel_
        self.processes = {n: self.process(n, kernel) for n in lengths if self.ran_at_least(n)}
        self.stopped = [run for run in self.runs if landscape.curves[run].stop_reason]
        self.stop_classifier = self.stop_model()

    def ran_at_least(self, length: int) -> list[int]:
        """The learned configs whose seed-mean curve is `length` epochs long or longer."""
        return [i for i in self.learned if len(self.landscape.mean_curve(i)) >= length]

    def process(self, length: int, kernel=None) -> GaussianProcessRegressor:
        """A GP on the first `length` epochs of the seed-mean curves that long; with `kernel`, its
        hyperparameters as given (a Cholesky, no search)."""
        configs = self.ran_at_least(length)
        width = len(self.encode.columns)
        # length scales of a tenth of a span or more: below that every config stands alone, and the
        # fit found that optimum (all noise, held-out rho -0.71) on latent_conditioner `weights`
        # starting from 1 where a floor of 0.1 found the one that ranks (0.88)
        kernel_to_fit = (ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.ones(width), (0.1, 1e3))
                         + WhiteKernel(1e-2, (1e-6, 10)))
        model = GaussianProcessRegressor(kernel or kernel_to_fit, optimizer="fmin_l_bfgs_b" if kernel is None else None,
                                         normalize_y=True, random_state=0)
        with warnings.catch_warnings():  # a length scale at its bound is a parameter that does not matter
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(np.array([self.vectors[i] for i in configs]),
                             np.array([self.landscape.mean_curve(i)[:length] for i in configs]))

    def stop_model(self):
        """A logistic regression of whether a recorded run stopped, its regularisation chosen by
        cross-validation; None where fewer than 2 runs took the rarer way (a stop or a full run)."""
        stopped = [run in self.stopped for run in self.runs]
        rarer = min(sum(stopped), len(stopped) - sum(stopped))
        if rarer < 2:
            return None
        with warnings.catch_warnings():  # scikit-learn 1.9 announces new defaults; these stay valid
            warnings.simplefilter("ignore", FutureWarning)
            model = LogisticRegressionCV(Cs=np.logspace(-1, 3, 9), cv=min(5, rarer), scoring="neg_log_loss",
                                         max_iter=5000)
            return model.fit(np.array([self.vectors[i] for i, _ in self.runs]), stopped)

    def stops_at(self, here: np.ndarray) -> bool:
        """Whether the run of the encoded point `here` stops unhealthy: the classifier's call, else
        (too few runs to learn from) whether the nearest run stopped."""
        if self.stop_classifier is None:
            nearest = min(self.runs, key=lambda run: np.linalg.norm(self.vectors[run[0]] - here))
            return nearest in self.stopped
        return bool(self.stop_classifier.predict(here[None])[0])

    def mean(self, here: np.ndarray, length: int) -> np.ndarray:
        """The predicted seed-mean curve of the encoded point `here` over its first `length` epochs
        (fewer where no learned config ran that long at every seed)."""
        usable = max((n for n in self.processes if n <= length), default=min(self.processes))
        return np.reshape(self.processes[usable].predict(here[None]), -1)[:length]

    def curve(self, point: dict, seed: int) -> Curve:
        if branch_key(point) not in self.landscape.branches:
            raise KeyError(f"no recorded config has the branch of {point}")
        here = self.encode(point)
        stop = self.nearest_stop(here, seed) if self.stops_at(here) else None
        mean = self.mean(here, len(stop.objective) if stop else self.landscape.epochs)
        members = [i for i in self.landscape.branches[branch_key(point)] if i in self.vectors]
        return Curve((mean + self.landscape.seed_noise(members, seed, len(mean))).tolist(),
                     stop.stop_reason if stop else "")

    def nearest_stop(self, here: np.ndarray, seed: int) -> Curve:
        """The stopped run nearest the encoded point `here`, at the recorded seed `seed` maps to
        where it stopped there."""
        nearest = min(self.stopped, key=lambda run: (np.linalg.norm(self.vectors[run[0]] - here),
                                                      run[1] != self.landscape.seeds[seed % len(self.landscape.seeds)]))
        return self.landscape.curves[nearest]


def scaled(value):
    """A number on the scale the surrogate learns on (log where positive: loss weights and rates
    span decades), anything else as it is."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return math.log10(value) if value > 0 else float(value)


def branch_key(point: dict) -> tuple:
    """A branch: which parameters a point has, which its switches' values decide (hdr_patch's Mode
    B has caps/log_delta_scale, Mode A caps/abs_max)."""
    return tuple(sorted(point))


def same_point(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        math.isclose(a[k], b[k], rel_tol=1e-9) if isinstance(a[k], float) else a[k] == b[k] for k in a)


def fidelity(landscape: Landscape, folds: int = FOLDS, seed: int = 0) -> dict:
    """The surrogate against the record on configs it was fitted without: every config but the
    default is held out once, in `folds` folds. `rho`: Spearman's rho between the predicted and the
    recorded final seed-mean value over the held-out configs that ran every epoch healthy, N `n`.
    `stops`: the share of held-out runs whose stop (or not) the surrogate called right, N
    `stop_runs`, beside `stops_majority`, the share always calling the commoner outcome gets."""
    held_out = np.random.default_rng(seed).permutation(np.arange(1, len(landscape.points)))
    recorded, predicted, called, truth = [], [], [], []
    for fold in np.array_split(held_out, folds):
        surrogate = Surrogate(landscape, set(range(len(landscape.points))) - set(fold.tolist()))
        for index in map(int, fold):
            here = surrogate.encode(landscape.points[index])
            if landscape.healthy_to_the_end(index):
                recorded.append(landscape.mean_curve(index)[-1])
                predicted.append(surrogate.mean(here, landscape.epochs)[-1])
            runs = landscape.runs_of([index])
            called += [surrogate.stops_at(here)] * len(runs)
            truth += [bool(landscape.curves[run].stop_reason) for run in runs]
    rho = stats.spearmanr(recorded, predicted).statistic if len(recorded) >= 3 else math.nan
    right = np.equal(called, truth)
    return {"rho": float(rho), "n": len(recorded), "stops": float(right.mean()), "stop_runs": len(truth),
            "stops_majority": float(max(np.mean(truth), 1 - np.mean(truth)))}


def seed_agreement_of_record(landscape: Landscape) -> dict:
    """Spearman's rho between the final values of the first two recorded seeds, over the configs
    that ran every epoch at both, with its N: how well one training seed ranks the configs for
    another, the ceiling for a surrogate fitted on seed means."""
    if len(landscape.seeds) < 2:
        return {"rho": math.nan, "n": 0}
    a, b = landscape.seeds[:2]
    both = [i for i in range(len(landscape.points))
            if all(len(landscape.curves.get((i, s), Curve([], "")).objective) == landscape.epochs for s in (a, b))]
    if len(both) < 3:
        return {"rho": math.nan, "n": len(both)}
    rho = stats.spearmanr([landscape.curves[(i, a)].objective[-1] for i in both],
                          [landscape.curves[(i, b)].objective[-1] for i in both]).statistic
    return {"rho": float(rho), "n": len(both)}
