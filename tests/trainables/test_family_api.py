"""The family contract, checked once when a family is resolved: every registered family keeps
it, a module that does not is refused naming what it lacks, every loss term has a weight, and a
sixth family (examples/toy.py, installed as losstune.examples.toy) is added by the contract alone."""

import dataclasses
import types

import pytest
import torch
from torch.utils.data import DataLoader

from losstune.trainables import registry
from losstune.trainables.config import ConfigError, merge
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import FAMILIES, load_family
from losstune.trainables.family_api import Family, FamilyError
from losstune.trainables.family_resolve import OPTIONAL, REQUIRED, resolve
from losstune.trainables.engine.step import weighted_loss
from losstune.examples import toy as toy_family
from tests.trainables.smoke_runs import PRESET as EVERY_TERM  # each family's every loss term on


def module_without(name: str) -> types.ModuleType:
    copy = types.ModuleType("toy_without_" + name)
    copy.__dict__.update({k: v for k, v in vars(toy_family).items() if k != name})
    return copy


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_registered_family_resolves_with_every_hook(name):
    family = load_family(name)
    assert isinstance(family, Family) and family.name == name
    for field in [*REQUIRED.values(), *(field for field, _ in OPTIONAL.values())]:
        assert getattr(family, field) is not None, field
    assert family.default_space in family.spaces


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_a_module_lacking_a_required_name_is_refused_naming_it(name):
    with pytest.raises(FamilyError, match=f"family 'toy' lacks {name} "):
        resolve("toy", module_without(name), toy_family)


def test_the_optional_hooks_default_to_doing_nothing_extra():
    family = resolve("toy", toy_family, toy_family)
    cfg = family.config_class()
    assert family.term_weights(cfg) == {"mse": 1.0} and family.objectives == () and family.tags == {}
    assert family.combine(None, {"a": torch.tensor(1.0), "b": torch.tensor(2.0)}, cfg)[0].item() == 3.0
    assert family.summarise_val({"x": 1.0}, cfg) == {"x": 1.0}
    (group,) = family.optimizer_groups(torch.nn.Linear(2, 1), cfg)  # one AdamW over every parameter
    assert isinstance(group.optimizer, torch.optim.AdamW) and group.scheduled and group.clipped and not group.terms
    assert len(group.optimizer.param_groups[0]["params"]) == 2


def test_a_space_module_lacking_its_default_or_a_switch_naming_no_key_is_refused():
    with pytest.raises(FamilyError, match="lacks DEFAULT_SPACE"):
        resolve("toy", toy_family, module_without("DEFAULT_SPACE"))
    switched = module_without("TERM_SWITCHES")
    switched.TERM_SWITCHES = {"loss.weights.mse": "loss.use_mse"}
    with pytest.raises(FamilyError, match="Config lacks loss.use_mse"):
        resolve("toy", switched, toy_family)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_loss_term_a_family_computes_has_a_weight(name):
    family = load_family(name)
    preset = family.presets[EVERY_TERM[name]] if name in EVERY_TERM else {}
    cfg = make_config(family, merge(preset, family.smoke))
    torch.manual_seed(0)
    parts = family.build(cfg)
    batch = next(iter(DataLoader(parts.train_set, batch_size=2)))
    terms, _ = family.loss_terms(parts.model, batch, cfg)
    assert terms and set(terms) <= set(family.term_weights(cfg))


def test_a_term_without_a_weight_is_a_config_error_naming_it():
    family = load_family("hdr_patch")
    cfg = make_config(family, family.smoke)
    parts = family.build(cfg)
    batch = next(iter(DataLoader(parts.train_set, batch_size=2)))
    unweighted = dataclasses.replace(family, term_weights=lambda cfg: {"l1": 1.0})  # the seed's term is log_l1
    with pytest.raises(ConfigError, match="no weight for the hdr_patch loss term"):
        weighted_loss(parts.model, batch, unweighted, cfg, unweighted.term_weights(cfg))


@pytest.fixture
def toy_registered(monkeypatch):
    """The toy family in the registry, as one line in FAMILIES would put it there (after this process
    has listed the families once, as any command line's parser does: nothing cached may hide it)."""
    registry.family_names()
    monkeypatch.setitem(FAMILIES, "toy", ("losstune.examples.toy", "losstune.examples.toy"))
    registry._resolved.cache_clear()
    yield load_family("toy")
    registry._resolved.cache_clear()


def test_the_toy_family_is_listed_and_configured_like_the_others(toy_registered):
    from losstune.ray_jobs.cli.catalogue import catalogue, config_listing

    assert "toy: objective val/mse (min)" in catalogue() and "--space weights (default): loss.weights.mse" in catalogue()
    assert "loss.weights.mse" in config_listing("toy")
    assert make_config(toy_registered, preset="strong").loss.weights.mse == 2.0
