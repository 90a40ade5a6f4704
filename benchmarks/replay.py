"""A search task replayed from its recorded landscape (benchmarks/landscapes.py): a config's curve,
epoch by epoch, as one training seed gave it, where an epoch costs a lookup.

A config that was recorded answers with its own curve at that seed. Any other answers with a
surrogate's: the k nearest recorded configs of its branch (the same parameters, as its switches'
values decide; branches never mix), weighted by inverse distance, on their seed-averaged curves.
The distance: a categorical that differs counts 1, a number its difference over the recorded span
(positive numbers on a log scale: weights and rates span decades);
plus a training seed's noise, the deviation of one recorded config's seed from its seeds' mean,
drawn from the configs of the branch by the seed. A recorded stop (a health check) replays at its
epoch; a surrogate's stop, and its epoch, are its nearest config's, and its curve averages only
configs that ran at least that long (a run that goes on is never cut short by a neighbour that
stopped). `fidelity` holds configs out and says how well
the surrogate ranks them (Spearman's rho of predicted and recorded final values).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

NEIGHBOURS = 3


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
        # each config's seed-mean curve, once: every prediction reads the lengths of its whole branch
        self.means = [self.seed_mean(index) for index in range(len(self.points))]
        self.branches = {}
        for index, point in enumerate(self.points):
            self.branches.setdefault(branch_key(point), []).append(index)

    @classmethod
    def read(cls, path: str) -> "Landscape":
        return cls(pd.read_parquet(path))

    def curve(self, point: dict, seed: int) -> Curve:
        """The curve of `point` at training seed `seed`: recorded, else the surrogate's."""
        recorded_seed = self.seeds[seed % len(self.seeds)]
        for index, known in enumerate(self.points):
            if same_point(known, point) and (index, recorded_seed) in self.curves:
                return self.curves[(index, recorded_seed)]
        return self.predicted(point, seed)

    def predicted(self, point: dict, seed: int, without: int | None = None) -> Curve:
        """The nearest recorded config decides whether the run stops (a health check) and when; the
        curve up to then is the weighted mean of the nearest configs that ran at least that long,
        so a run that goes on is never cut short by a neighbour that stopped."""
        members = [i for i in self.branches.get(branch_key(point), []) if i != without]
        if not members:
            raise KeyError(f"no recorded config has the branch of {point}")
        distances = self.distances(point, members)
        closest = int(np.argmin(distances))
        first = members[closest]
        stop = self.stop_of(first, seed)
        length = len(self.recorded_curve(first, seed).objective) if stop else self.epochs
        long_enough = [k for k, i in enumerate(members) if len(self.mean_curve(i)) >= length]
        if not long_enough:  # no config ran that long at every seed: the nearest one's own length
            long_enough, length = [closest], len(self.mean_curve(first))
        nearest = sorted(long_enough, key=lambda k: distances[k])[:NEIGHBOURS]
        weights = 1.0 / (distances[nearest] + 1e-9)
        mean = np.average(np.array([self.mean_curve(members[k])[:length] for k in nearest]), axis=0, weights=weights)
        noise = self.seed_noise(members, seed, length)
        return Curve((mean + noise).tolist(), stop)

    def recorded_curve(self, index: int, seed: int) -> Curve:
        """Config `index`'s curve at the recorded seed `seed` maps to, else at any seed it has."""
        at = self.curves.get((index, self.seeds[seed % len(self.seeds)]))
        return at or next(self.curves[(index, s)] for s in self.seeds if (index, s) in self.curves)

    def distances(self, point: dict, members: list[int]) -> np.ndarray:
        names = sorted(point)
        table = np.array([[scaled(self.points[i].get(n)) for n in names] for i in members], dtype=object)
        here = [scaled(point.get(n)) for n in names]
        total = np.zeros(len(members))
        for column, name in enumerate(names):
            values = table[:, column]
            if isinstance(here[column], float) and all(isinstance(v, float) for v in values):
                low, high = min(min(values), here[column]), max(max(values), here[column])
                span = high - low or 1.0
                total += ((np.array(values, dtype=float) - here[column]) / span) ** 2
            else:
                total += np.array([v != here[column] for v in values], dtype=float)
        return np.sqrt(total)

    def mean_curve(self, index: int) -> np.ndarray:
        return self.means[index]

    def seed_mean(self, index: int) -> np.ndarray:
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

    def stop_of(self, index: int, seed: int) -> str:
        return self.recorded_curve(index, seed).stop_reason


def scaled(value):
    """A number on the scale distances are taken on (log where positive: loss weights and rates
    span decades), anything else as it is."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return math.log10(value) if value > 0 else float(value)


def branch_key(point: dict) -> tuple:
    """A branch: which parameters a point has, which its switches' values decide (hdr_patch's Mode
    B has caps/log_delta_scale, Mode A caps/abs_max). A categorical that switches nothing is a
    distance within the branch."""
    return tuple(sorted(point))


def same_point(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        math.isclose(a[k], b[k], rel_tol=1e-9) if isinstance(a[k], float) else a[k] == b[k] for k in a)


def fidelity(landscape: Landscape, held_out: int = 20, seed: int = 0) -> dict:
    """Spearman's rho between the surrogate's (fitted without each held-out config) and the
    recorded final seed-mean values of `held_out` configs that ran every epoch healthy at the seeds
    they were recorded at, with its N."""
    whole = [i for i in range(1, len(landscape.points)) if landscape.healthy_to_the_end(i)]
    chosen = np.random.default_rng(seed).permutation(whole)[:held_out]
    recorded, predicted = [], []
    for index in chosen:
        recorded.append(landscape.mean_curve(int(index))[-1])
        curve = landscape.predicted(landscape.points[int(index)], seed=0, without=int(index))
        predicted.append(np.mean(curve.objective[-1:]))
    rho = stats.spearmanr(recorded, predicted).statistic if len(chosen) >= 3 else math.nan
    return {"rho": float(rho), "n": len(chosen)}


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
