"""Latent diffusion's space: a medgen_compression checkpoint read, checked and frozen."""

import json
import os

import pytest
import torch
from torch.utils.data import DataLoader

from losstune.trainables.families.medgen import representations as diffusion_spaces
from losstune.trainables.families.medgen import latent_representation as latent_space
from losstune.trainables.families.medgen import compression
from losstune.trainables.config import ConfigError, merge, to_dict
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family

DIFFUSION = load_family("medgen_diffusion")
COMPRESSION = load_family("medgen_compression")


def checkpoint(folder, overrides=None, family="medgen_compression"):
    """A checkpoint folder as the loop writes one: the model's weights and the run's config."""
    from safetensors.torch import save_file

    cfg = make_config(COMPRESSION, merge(COMPRESSION.smoke, overrides or {}))
    os.makedirs(folder, exist_ok=True)
    save_file(compression.make_model(cfg).state_dict(), os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "losstune_state.json"), "w") as f:
        json.dump({"family": family, "config": to_dict(cfg), "epochs_done": 2}, f)
    return str(folder)


def diffusion(folder, overrides=None):
    return make_config(DIFFUSION, merge(merge(DIFFUSION.smoke, {"representation": {"name": "latent", "checkpoint": folder}}),
                                        overrides or {}))


@pytest.fixture(autouse=True)
def fresh_caches():
    latent_space.autoencoder.cache_clear()
    latent_space.space_of.cache_clear()
    diffusion_spaces.space_of.cache_clear()
    yield


def test_latent_diffusion_needs_a_checkpoint_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"representation\.checkpoint is required for representation\.name=latent"):
        make_config(DIFFUSION, {"representation": {"name": "latent"}})
    with pytest.raises(ConfigError, match=r"representation\.checkpoint /nowhere: no such folder"):
        make_config(DIFFUSION, {"representation": {"name": "latent", "checkpoint": "/nowhere"}})
    with pytest.raises(ConfigError, match=r"loss\.perceptual_weight is pixel space only"):
        diffusion(checkpoint(tmp_path / "vae"), {"loss": {"perceptual_weight": 0.001}})


@pytest.mark.parametrize("overrides, family, message", [
    ({}, "hdr_patch", "is a checkpoint of hdr_patch, not of medgen_compression"),
    ({"data": {"mode": "dual"}}, "medgen_compression", "compresses dual images; data.mode bravo needs a bravo or multi_modality checkpoint"),
    ({"model": {"spatial_dims": 3}}, "medgen_compression", "is 3D; model.spatial_dims is 2"),
])
def test_a_checkpoint_that_does_not_fit_is_one_line_naming_it(tmp_path, overrides, family, message):
    folder = checkpoint(tmp_path / "ck", overrides, family)
    with pytest.raises(ConfigError, match=message) as error:
        DIFFUSION.check_data(diffusion(folder))
    assert str(error.value).startswith(f"representation.checkpoint {folder}") and "\n" not in str(error.value)


def test_a_checkpoint_of_a_run_stopped_unhealthy_is_refused_unless_accepted(tmp_path):
    folder = checkpoint(tmp_path / "ck")
    state = json.loads((tmp_path / "ck" / "losstune_state.json").read_text())
    state["metrics"] = {"stop_reason": "kl_collapse"}
    (tmp_path / "ck" / "losstune_state.json").write_text(json.dumps(state))
    with pytest.raises(ConfigError) as error:
        DIFFUSION.check_data(diffusion(folder))
    assert str(error.value) == (f"representation.checkpoint {folder} is from a run that stopped unhealthy (kl_collapse at "
                                "epoch 2); retrain it, or --set representation.accept_unhealthy=true")
    DIFFUSION.check_data(diffusion(folder, {"representation": {"accept_unhealthy": True}}))  # said, then taken


def test_a_folder_without_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no losstune_state.json"):
        DIFFUSION.check_data(diffusion(str(tmp_path)))


def test_latents_too_small_for_the_unets_levels_are_refused_before_ray(tmp_path):
    folder = checkpoint(tmp_path / "dcae", {"model": {"kind": "dcae"}})  # 32 px -> a 1x1 latent
    with pytest.raises(ConfigError, match=r"model\.widths the autoencoder of .* makes latents of \[1, 1\] from \[32, 32\], which do not fit "
                                          r"model\.widths \[16, 32, 32\]: its 3 levels halve them 2 times"):
        DIFFUSION.check_data(diffusion(folder))


def test_images_the_checkpoints_autoencoder_cannot_shrink_exactly_are_refused_before_ray(tmp_path):
    # DC-AE f32 shrinks a side 32x: 48 px stops at 1.5 (its pixel_unshuffle raised inside check_data)
    folder = checkpoint(tmp_path / "dcae", {"model": {"kind": "dcae"}})
    two_widths = {"model": {"widths": [16, 16], "attention": [False, False]}}
    with pytest.raises(ConfigError, match=rf"data\.image_size 48: 48x48 images do not fit the dcae of {folder}, which "
                                          r"shrinks every side 32x: each must be a multiple of 32"):
        DIFFUSION.check_data(diffusion(folder, merge(two_widths, {"data": {"image_size": 48}})))
    assert DIFFUSION.check_data(diffusion(folder, merge(two_widths, {"data": {"image_size": 64}}))) > 0


def test_the_dc_ae_keeps_its_documented_scale_and_others_are_measured(tmp_path):
    dcae = latent_space.space_of(diffusion(checkpoint(tmp_path / "dcae", {"model": {"kind": "dcae"}})))
    assert dcae.scale == pytest.approx(0.3189)  # seed "DC-AE": f32c32
    cfg = diffusion(checkpoint(tmp_path / "vae"))
    vae = latent_space.space_of(cfg)
    assert vae.scale == pytest.approx(1.0 / latent_space.latent_std(cfg, vae.autoencoder))
    assert latent_space.space_of(diffusion(checkpoint(tmp_path / "vae"), {"representation": {"scale_factor": 0.5}})).scale == 0.5


def test_the_unet_denoises_scaled_latents_and_validation_decodes_to_pixels(tmp_path):
    cfg = diffusion(checkpoint(tmp_path / "vae"))
    space = latent_space.space_of(cfg)
    parts = DIFFUSION.build(cfg)
    x0, cond, seg = next(iter(DataLoader(parts.train_set, batch_size=2)))
    z0 = space.encode(x0)
    assert z0.shape == (2, 3, 16, 16)  # smoke VAE: one 2x downsampling, latent 3
    assert parts.model.unet.conv_in.conv.in_channels == 3 + 1  # the latent and the pooled mask
    pooled = space.condition(cond, z0)
    assert pooled.shape == (2, 1, 16, 16) and torch.allclose(pooled.mean(), cond.mean(), atol=1e-6)
    terms, _ = DIFFUSION.loss_terms(parts.model, (x0, cond, seg), cfg)
    assert torch.isfinite(terms["mse"])
    batch = next(iter(DataLoader(parts.val_set, batch_size=2)))
    assert batch[3].shape[2:] == (3, 16, 16)  # the fixed validation noise is latent-shaped
    metrics = DIFFUSION.val_metrics(parts.model.eval(), batch, cfg, {})
    # MS-SSIM lies in [-1, 1]; with an untrained autoencoder its sign is chance (> 0 failed now and then)
    assert metrics["psnr"].shape == (2,) and torch.isfinite(metrics["psnr"]).all()
    assert metrics["msssim"].shape == (2,) and (metrics["msssim"].abs() <= 1).all()
    assert all(not p.requires_grad for p in space.autoencoder.parameters())


def test_latent_samples_are_denoised_at_the_latents_size_and_decoded_to_pixels(tmp_path):
    from losstune.trainables.families.medgen.generation import generate

    cfg = diffusion(checkpoint(tmp_path / "vae"), {"generation": {"num_steps": 2}})
    parts = DIFFUSION.build(cfg)
    seen = []
    parts.model.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    masks = torch.stack([parts.val_set.items[k][1] for k in range(2)])  # 32 x 32 pixel masks
    samples = generate(parts.model, cfg, masks, parts.val_set.noise_shape)
    # the UNet saw the 3-channel 16 x 16 latent and the mask pooled to it; the samples are pixels
    assert seen == [(2, 3 + 1, 16, 16)] * 2
    assert samples.shape == (2, 1, 32, 32) and torch.isfinite(samples).all()
    assert 0 <= samples.min() and samples.max() <= 1


STRUCTURED = {"model": {"kind": "dcae", "dcae": {"structured_latent": True}}, "gan": {"enabled": False},
              "loss": {"weights": {"adversarial": 0.0}}}
# the smoke DC-AE (f32c32) makes 2x2 latents of 64x64 slices: a UNet of two levels takes them
LATENT_UNET = {"data": {"image_size": 64}, "model": {"widths": [16, 32], "attention": [False, True]}}


def test_augmented_diffusion_is_latent_and_needs_a_structured_dc_ae(tmp_path):
    with pytest.raises(ConfigError, match=r"representation\.augmented_diffusion masks latent channels; representation\.name=pixel has "
                                          r"none"):
        make_config(DIFFUSION, {"representation": {"augmented_diffusion": True}})
    plain = checkpoint(tmp_path / "vae")
    with pytest.raises(ConfigError) as error:
        DIFFUSION.check_data(diffusion(plain, {"representation": {"augmented_diffusion": True}}))
    assert str(error.value) == (f"representation.augmented_diffusion needs a structured latent: {plain} is a vae trained "
                                "without model.dcae.structured_latent=true (DC-AE 1.5)")


def test_augmented_diffusion_draws_the_checkpoints_channel_counts_and_trains(tmp_path):
    folder = checkpoint(tmp_path / "dcae", merge(STRUCTURED, {"data": {"image_size": 64}}))
    cfg = diffusion(folder, merge(LATENT_UNET, {"representation": {"augmented_diffusion": True}}))
    DIFFUSION.check_data(cfg)
    assert latent_space.augmented_counts(cfg) == (16, 20, 24, 28, 32)  # the autoencoder's own
    narrower = diffusion(folder, merge(LATENT_UNET, {"representation": {"augmented_diffusion": True, "min_channels": 24,
                                                               "channel_step": 8}}))
    assert latent_space.augmented_counts(narrower) == (24, 32)
    with pytest.raises(ConfigError, match=r"representation\.min_channels 30 with channel_step 4 does not step up to the "
                                          r"autoencoder's 32 latent channels"):
        latent_space.augmented_counts(diffusion(folder, merge(LATENT_UNET, {"representation": {
            "augmented_diffusion": True, "min_channels": 30}})))
    parts = DIFFUSION.build(cfg)
    terms, _ = DIFFUSION.loss_terms(parts.model, next(iter(DataLoader(parts.train_set, batch_size=4))), cfg)
    assert torch.isfinite(terms["mse"]) and terms["mse"] > 0


def test_bravo_seg_cond_diffuses_bravo_latents_beside_the_masks_latents(tmp_path):
    # seed "Diffusion Modes": bravo_seg_cond, [bravo latent, seg latent] -> bravo latent; here VAEs of
    # 3 latent channels each (the seed's VQ-VAEs have 4: 8 -> 4), so 6 -> 3
    images = checkpoint(tmp_path / "bravo")
    masks = checkpoint(tmp_path / "seg", {"data": {"mode": "seg"}})
    cfg = diffusion(images, {"data": {"mode": "bravo_seg_cond"}, "representation": {"seg_checkpoint": masks}})
    DIFFUSION.check_data(cfg)
    parts = DIFFUSION.build(cfg)
    assert parts.model.unet.conv_in.conv.in_channels == 6 and parts.model.unet.out[2].conv.out_channels == 3
    batch = next(iter(DataLoader(parts.train_set, batch_size=4)))
    space = diffusion_spaces.space_of(cfg)
    assert torch.allclose(space.condition(batch[1], None), space.seg.encode(batch[1]))  # the mask's own latent
    terms, _ = DIFFUSION.loss_terms(parts.model, batch, cfg)
    assert torch.isfinite(terms["mse"])


def test_bravo_seg_cond_is_refused_without_a_fitting_mask_autoencoder(tmp_path):
    images = checkpoint(tmp_path / "bravo")
    with pytest.raises(ConfigError, match=r"data\.mode bravo_seg_cond is latent diffusion conditioned on the mask's "
                                          r"latent"):
        diffusion(images, {"data": {"mode": "bravo_seg_cond"}})
    with pytest.raises(ConfigError, match=r"representation\.seg_checkpoint encodes the masks of data\.mode=bravo_seg_cond"):
        diffusion(images, {"representation": {"seg_checkpoint": images}})
    with pytest.raises(ConfigError) as error:
        DIFFUSION.check_data(diffusion(images, {"data": {"mode": "bravo_seg_cond"}, "representation": {"seg_checkpoint": images}}))
    assert str(error.value).startswith(f"representation.seg_checkpoint {images} compresses bravo images")
    coarser = checkpoint(tmp_path / "vq", {"data": {"mode": "seg"}, "model": {"kind": "vqvae"}})
    with pytest.raises(ConfigError, match=r"makes latents of \[8, 8\] from \[32, 32\], the image autoencoder "
                                          r"\[16, 16\]: they must match"):
        DIFFUSION.check_data(diffusion(images, {"data": {"mode": "bravo_seg_cond"}, "representation": {"seg_checkpoint": coarser}}))
