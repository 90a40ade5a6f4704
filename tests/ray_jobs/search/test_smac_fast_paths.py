"""ray_jobs/search/smac_fast_paths.py: each fast path gives what ConfigSpace's or SMAC's own gives."""

import numpy as np
import pytest
from ConfigSpace import Categorical, ConfigurationSpace, EqualsCondition, Float
from ConfigSpace.hyperparameters import NormalFloatHyperparameter
from scipy import stats
from smac.model.random_forest.random_forest import EPMRandomForest

from losstune.ray_jobs.search.smac_fast_paths import FlatSpace, Forest, NormalFloat

# inside the range, its ends, outside it, and NaN (a parameter a configuration lacks)
VECTORS = np.array([-0.2, 0.0, 0.01, 0.25, 0.5, 0.9, 1.0, 1.3, np.nan])


@pytest.mark.parametrize("mu, sigma", [(0.3, 0.25), (0.0, 0.5), (0.95, 0.125), (-6.9, 1.73)])
def test_a_normal_prior_has_configspaces_density_in_and_out_of_range(mu, sigma):
    lower, upper = (-9.21, -2.3) if mu < 0 else (0.0, 1.0)  # a log range, or the unit one
    ours = NormalFloat("x", mu=mu, sigma=sigma, lower=lower, upper=upper, default_value=mu)
    theirs = NormalFloatHyperparameter("x", mu=mu, sigma=sigma, lower=lower, upper=upper, default_value=mu)
    np.testing.assert_allclose(ours.pdf_vector(VECTORS), theirs.pdf_vector(VECTORS), rtol=1e-12, atol=0)
    column = VECTORS[:, np.newaxis]  # as SMAC's piBO asks for it
    np.testing.assert_allclose(ours._pdf(column), theirs._pdf(column), rtol=1e-12, atol=0)
    assert ours.pdf_vector(VECTORS)[[0, 7, 8]].tolist() == [0.0, 0.0, 0.0]


def prior_space(space_class):
    space = space_class(seed=3)
    space.add([NormalFloat("rate", mu=0.2, sigma=0.25, lower=0.0, upper=1.0, default_value=0.2),
               Categorical("mode", ["0", "1", "2"], default="1", weights=[1.0, 4.0, 1.0])])
    return space


def test_a_flat_space_draws_each_parameter_from_its_prior_in_one_call():
    draws = prior_space(FlatSpace).sample_configuration(4000)
    assert len(draws) == 4000
    rates = np.array([c["rate"] for c in draws])
    # the prior is N(0.2, 0.25) truncated to [0, 1]: a = -0.2 / 0.25 = -0.8, b = 0.8 / 0.25 = 3.2
    prior = stats.truncnorm(a=-0.8, b=3.2, loc=0.2, scale=0.25)
    assert stats.kstest(rates, prior.cdf).pvalue > 0.001
    # the default's choice weighs 4 against 1 for each other: 4/6 of the draws, s.e. 0.0075 at 4,000
    assert np.mean([c["mode"] == "1" for c in draws]) == pytest.approx(4 / 6, abs=0.03)
    assert prior_space(FlatSpace).sample_configuration()["mode"] in {"0", "1", "2"}  # size None: one
    assert prior_space(FlatSpace).sample_configuration(0) == []  # as ConfigSpace's


def test_a_flat_space_refuses_a_condition_and_saves_as_configspaces_own():
    space = prior_space(FlatSpace)
    saved = ConfigurationSpace.from_serialized_dict(space.to_serialized_dict())
    assert isinstance(saved["rate"], NormalFloatHyperparameter) and saved["rate"].sigma == 0.25
    space.add([Float("scale", (0.0, 1.0))])
    space.add(EqualsCondition(space["scale"], space["mode"], "2"))
    with pytest.raises(ValueError, match="without conditions"):
        space.sample_configuration(10)


def test_the_forest_predicts_each_tree_as_smacs_joblib_path_does():
    space = prior_space(ConfigurationSpace)
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 2)), rng.random(40)
    X[:, 1] = rng.integers(0, 3, 40)
    model = Forest(space, n_trees=10, seed=0, max_leaf_nodes=None)
    model.train(X, y)
    asked = rng.random((25, 2))
    asked[:, 1] = rng.integers(0, 3, 25)
    np.testing.assert_array_equal(model._rf.all_trees_pred(asked), EPMRandomForest.all_trees_pred(model._rf, asked))
    assert model._rf.all_trees_pred(asked).shape == (25, 10)
