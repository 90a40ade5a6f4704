"""medgen_diffusion's `model.kind`: transformers built from the config, checked before Ray, trained
through the loop, matched to the UNet's size for the `architecture` space."""

import math

import pytest
import torch

from losstune.models.medgen_transformers import DiT, HDiT, UViT, parameter_count
from losstune.trainables.registry import load_family
from losstune.trainables.config import ConfigError, merge
from losstune.trainables.family_api import make_config
from losstune.trainables.families.medgen import diffusion as medgen
from losstune.trainables.families.medgen.denoisers import denoiser, matched_width

FAMILY = load_family("medgen_diffusion")
# a transformer a CPU trains in seconds: 2 heads of 8, 3 blocks (HDiT: one level each side of the middle)
SMALL = {"width": 16, "heads": 2, "depth": 3, "level_depths": [1, 1, 1], "patch_size": 4}


def config(overrides=None):
    return make_config(FAMILY, merge(medgen.SMOKE, overrides or {}))


def test_the_seeds_variant_and_patch_per_kind():
    for kind, cls, width, patch in (("dit", DiT, 768, 2), ("hdit", HDiT, 384, 4), ("uvit", UViT, 512, 8)):
        cfg = config({"model": {"kind": kind}})
        assert cfg.model.transformer_size()[0] == width and cfg.model.patch == patch
        with torch.device("meta"):
            assert isinstance(denoiser(cfg, 2, 1, (32, 32)), cls)


@pytest.mark.parametrize("model, message", [
    ({"kind": "dit", "variant": "S-Deep"}, r"model\.variant 'S-Deep' is not a dit variant \(seed: S, B, L, XL\)"),
    ({"kind": "uvit", "depth": 12}, r"model\.depth must be odd for uvit"),
    ({"kind": "hdit", "level_depths": [2, 2]}, r"model\.level_depths must be an odd number of depths"),
    ({"kind": "dit", "patch_size": 3}, r"model\.patch_size must be 1, 2, 4 or 8"),
    ({"kind": "dit", "width": 30, "heads": 4}, r"model\.width 30 must split into 4 heads of an even size"),
    ({"kind": "dit", "patch_size": 8, "width": 16, "heads": 2},
     None),  # 32 / 8 = 4 patches a side: fits
])
def test_a_transformer_that_cannot_be_built_is_one_line_naming_the_field(model, message):
    if message is None:
        config({"model": model})
        return
    with pytest.raises(ConfigError, match=message) as error:
        config({"model": model})
    assert "\n" not in str(error.value)


def test_images_that_the_patches_do_not_tile_are_refused_before_ray():
    with pytest.raises(ConfigError, match=r"data\.image_size 36: 36x36 images do not fit model\.patch_size 8 of the "
                                          r"dit: every side must be a multiple of 8"):
        config({"model": {"kind": "dit", "patch_size": 8}, "data": {"image_size": 36}})
    # HDiT merges the token grid twice more: 32 / 4 = 8 tokens a side, halved twice: fits; 48 / 4 = 12 does not
    config({"model": {"kind": "hdit"}})
    with pytest.raises(ConfigError, match=r"patch_size 4 and its 2 token merges of the hdit: every side must be a "
                                          r"multiple of 16"):
        config({"model": {"kind": "hdit"}, "data": {"image_size": 40}})


@pytest.mark.parametrize("kind", ["dit", "hdit", "uvit"])
@pytest.mark.parametrize("dims", [2, 3])
def test_the_matched_width_is_the_nearest_to_the_unets_parameter_count(kind, dims):
    # at the seed's UNet (18.5M parameters in 2D, 47.4M in 3D) within 5%; at a tiny UNet a step of
    # 2 x heads in width is coarse (the smoke UNet's 0.28M: DiT-B's 12 heads make it 50% apart)
    model = {"spatial_dims": dims}
    cfg = make_config(FAMILY, {"model": model})
    width, sides = matched_width(cfg, kind), (64,) * dims
    _, _, heads = make_config(FAMILY, {"model": {**model, "kind": kind}}).model.transformer_size()
    assert width % (2 * heads) == 0

    def count(w):
        with torch.device("meta"):
            return parameter_count(denoiser(make_config(FAMILY, {"model": {**model, "kind": kind, "width": w}}), 2, 1,
                                            sides))

    with torch.device("meta"):
        unet = parameter_count(denoiser(cfg, 2, 1, sides))
    gap = abs(count(width) - unet)
    assert gap <= abs(count(width + 2 * heads) - unet) and gap <= abs(count(width - 2 * heads) - unet)
    assert gap / unet < 0.05


@pytest.mark.parametrize("kind, dims", [("dit", 2), ("hdit", 2), ("uvit", 3)])
def test_each_kind_trains_through_the_loop(tmp_path, kind, dims):
    # in this process (LocalSession): the loop a TorchTrainer runs; feature perturbation and
    # self-conditioning hook the transformer's own blocks. 3D with UViT: the smoke volumes make one
    # step an epoch, and before its first step adaLN-Zero's output is 0 whatever the noise
    from losstune.trainables.engine.loop import train
    from losstune.trainables.engine.session import LocalSession

    overrides = merge(medgen.SMOKE, {"model": {"kind": kind, "spatial_dims": dims, **SMALL},
                                     "regularisation": {"feature_perturbation": True, "self_conditioning": True,
                                                        "self_conditioning_prob": 1.0},
                                     "train": {"batch_size": 2, "epochs": 1}})
    session = LocalSession(str(tmp_path))
    train(FAMILY, overrides, session)
    metrics = session.reports[-1]
    assert metrics["stop_reason"] == "" and math.isfinite(metrics["val/mse"]) and metrics["train/self_cond"] > 0


def test_the_architecture_space_compares_kinds_at_the_unets_size():
    import optuna

    space = FAMILY.space("architecture", config())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {}
    for _ in range(12):
        trial = study.ask()
        space(trial)
        seen[trial.params["model/kind"]] = trial.params.get("model/width")
        study.tell(trial, 0.0)
    assert seen["unet"] is None and set(seen) == {"unet", "dit", "hdit", "uvit"}
    assert all(seen[kind] == matched_width(config(), kind) for kind in ("dit", "hdit", "uvit"))
