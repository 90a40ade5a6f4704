"""Three steps of ConfigSpace (1.2) and SMAC3 (2.4) that piBO takes hundreds of times a point,
computed as the libraries compute them but without their per-call overheads, which made a point of
`--search prior` take 1-4 s (`python benchmarks/prior_point.py` times both). Each gives the
library's numbers or draws from the library's distributions; tests/ray_jobs/search/
test_smac_fast_paths.py holds them to it.

- `FlatSpace.sample_configuration`: ConfigSpace oversamples a space by a factor that is 0 where
  it has no condition or forbidden clause, so it draws such a space 5 configurations at a time,
  one scipy call per parameter each time: SMAC's 1,000 random challengers a point took 200 rounds.
  A flat space rejects nothing, so here each parameter's vector is drawn once.
- `NormalFloat.pdf_vector`: the prior's density, which piBO weighs every acquisition value by,
  came from a scipy frozen distribution at ~0.2 ms of set-up a call; here the same truncated
  normal's density is numpy arithmetic.
- `Forest`: SMAC's random forest predicts through joblib, one dispatched task per tree even with
  one job; here the trees are called in a plain loop (the equivalent SMAC's own comment gives).
"""

from __future__ import annotations

import numpy as np
from ConfigSpace import Configuration, ConfigurationSpace
from ConfigSpace.hyperparameters import NormalFloatHyperparameter
from ConfigSpace.read_and_write.dictionary import HYPERPARAMETER_ENCODERS
from scipy.special import ndtr
from smac.model.random_forest import RandomForest
from smac.model.random_forest.random_forest import EPMRandomForest


class FlatSpace(ConfigurationSpace):
    """A configuration space with no conditions or forbidden clauses, sampled a parameter at a time."""

    def sample_configuration(self, size: int | None = None):
        if self.conditions or self.forbidden_clauses:
            raise ValueError("FlatSpace samples only a space without conditions or forbidden clauses")
        if size is not None and size < 1:
            return []
        vectors = np.stack([hp._vector_dist.sample_vector(n=size or 1, seed=self.random) for hp in self.values()])
        configurations = [Configuration(self, vector=vector) for vector in vectors.T]
        return configurations[0] if size is None else configurations

    def to_serialized_dict(self, encoders=None) -> dict:
        # SMAC saves the space it searches: a NormalFloat is written as the hyperparameter it is
        normal = {NormalFloat: HYPERPARAMETER_ENCODERS[NormalFloatHyperparameter]}
        return super().to_serialized_dict(encoders={**normal, **(encoders or {})})


class NormalFloat(NormalFloatHyperparameter):
    """A float with a normal prior whose density is computed without scipy's per-call set-up: the
    normal truncated to the vectorised range [0, 1], zero outside it and at NaN."""

    def pdf_vector(self, vector: np.ndarray) -> np.ndarray:
        rv = self._vector_dist.rv
        loc, scale = rv.kwds["loc"], rv.kwds["scale"]
        mass = ndtr(rv.kwds["b"]) - ndtr(rv.kwds["a"])  # the normal's share inside the range
        z = (vector - loc) / scale
        inside = (vector >= 0.0) & (vector <= 1.0)  # False at NaN
        return np.where(inside, np.exp(-0.5 * z * z) / (np.sqrt(2.0 * np.pi) * scale * mass), 0.0)


class Trees(EPMRandomForest):
    """SMAC's sklearn forest, each tree's prediction called directly rather than through joblib."""

    def all_trees_pred(self, X: np.ndarray) -> np.ndarray:
        X = self._validate_X_predict(X)
        X = X[None, :] if X.ndim == 1 else X
        return np.stack([tree.predict(X, check_input=False) for tree in self.estimators_], axis=1)


class Forest(RandomForest):
    """SMAC's random-forest model, fitting `Trees`."""

    def _train(self, X: np.ndarray, y: np.ndarray) -> Forest:
        self._rf = Trees(**self._rf_opts)
        self._rf.fit(self._impute_inactive(X), y.flatten())
        return self
