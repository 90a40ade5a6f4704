import pytest
import torch

from losstune.models import medgen_compression as nets


def tiny(kind: str, spatial_dims: int, channels: int = 1) -> nets.Compression:
    if kind == "vae":
        autoencoder = nets.vae(spatial_dims, channels, 3, (8, 16), 1, 8, False, False)
    elif kind == "vqvae":
        autoencoder = nets.vqvae(spatial_dims, channels, 16, 3, (8, 16), 1, 0.5, False)
    else:
        autoencoder = nets.dcae(channels, 8, (8, 16, 32, 32, 64, 64), 1, 0.3189, False)
    return nets.Compression(kind, autoencoder, nets.patch_discriminator(spatial_dims, channels, 8, 2))


@pytest.mark.parametrize("kind, spatial_dims, latent_side", [
    ("vae", 2, 8), ("vae", 3, 8), ("vqvae", 2, 8), ("vqvae", 3, 8), ("dcae", 2, 1)])
def test_forward_encode_decode_in_2d_and_3d(kind, spatial_dims, latent_side):
    # VAE: 2 levels -> one 2x downsampling (16 -> 8); VQ-VAE: 2x per level (32 -> 8); DC-AE f32 layout: 32x
    model = tiny(kind, spatial_dims, channels=2).eval()
    x = torch.rand(2, 2, *(32,) * spatial_dims) if kind != "vae" else torch.rand(2, 2, *(16,) * spatial_dims)
    reconstruction, extras = model(x)
    assert reconstruction.shape == x.shape
    z = model.encode(x)
    assert tuple(z.shape[2:]) == (latent_side,) * spatial_dims
    assert model.decode(z).shape == x.shape
    if kind == "vae":
        assert extras["z_mu"].shape == extras["z_sigma"].shape == z.shape and (extras["z_sigma"] > 0).all()
    if kind == "vqvae":
        assert extras["quantization_loss"].ndim == 0
        assert extras["codes"].shape == (2, *(latent_side,) * spatial_dims) and extras["codes"].max() < 16
    logits = model.discriminator(x)[-1]
    assert logits.shape[0] == 2 and logits.shape[1] == 1  # one logit per patch


def test_the_vq_vae_encoding_is_snapped_to_the_codebook():
    model = tiny("vqvae", 2).eval()
    z = model.encode(torch.rand(1, 1, 32, 32))
    codebook = model.autoencoder.quantizer.quantizer.embedding.weight  # [codes, dim]
    vectors = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    assert torch.cdist(vectors, codebook, compute_mode="donot_use_mm_for_euclid_dist").min(1).values.max() < 1e-5


def test_a_pretrained_dc_ae_loads_from_a_local_folder_with_new_channel_convolutions(tmp_path):
    source = nets.dcae(3, 8, (8, 16, 32, 32, 64, 64), 1, 0.3189, False)
    source.save_pretrained(tmp_path / "dcae")
    loaded = nets.pretrained_dcae(str(tmp_path / "dcae"), 1, False)
    assert loaded.config.in_channels == 1
    # everything but the first and last convolutions keeps the saved weights
    kept = [k for k, v in source.state_dict().items()
            if k in loaded.state_dict() and loaded.state_dict()[k].shape == v.shape]
    assert len(kept) == len(source.state_dict()) - 3  # conv_in's weight, conv_out's weight and bias
    assert all(torch.equal(source.state_dict()[k], loaded.state_dict()[k]) for k in kept)
    assert loaded(torch.rand(1, 1, 32, 32)).sample.shape == (1, 1, 32, 32)


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        nets.Compression("gan", torch.nn.Identity())


def test_the_vq_term_is_the_unweighted_commitment_mse():
    # built at commitment cost 1, MONAI's quantisation loss is mean((z_e - sg(e))^2): the family's
    # `vq` term, which loss.weights.vq (the seed's 0.25) then weighs
    model = tiny("vqvae", 2).eval()
    x = torch.rand(2, 1, 32, 32)
    encoded = model.autoencoder.encode(x)
    quantized, _ = model.autoencoder.quantize(encoded)
    _, extras = model(x)
    assert extras["quantization_loss"].item() == pytest.approx((encoded - quantized).pow(2).mean().item(), rel=1e-5)


def test_dc_ae_1_5_channel_counts_and_masks_by_hand():
    # seed: "[16, 20, 24, ..., c]"; for c = 32: 16, 20, 24, 28, 32
    assert nets.channel_counts(32, 16, 4) == (16, 20, 24, 28, 32)
    torch.manual_seed(0)
    mask = nets.channel_mask(torch.zeros(64, 8, 2, 2), (2, 5, 8))
    assert mask.shape == (64, 8, 1, 1)
    kept = mask.flatten(1).sum(1)
    assert set(kept.tolist()) == {2.0, 5.0, 8.0}  # each sample keeps one of the counts ...
    # ... as its leading channels: [1, 1, 0, 0, 0, 0, 0, 0] for 2
    assert all(mask[i].flatten().tolist() == [1.0] * int(k) + [0.0] * (8 - int(k)) for i, k in enumerate(kept))


def test_a_structured_dc_ae_masks_its_latent_while_training_only():
    torch.manual_seed(0)
    autoencoder = nets.dcae(1, 8, (8, 16, 32, 32, 64, 64), 1, 0.3189, False)
    model = nets.Compression("dcae", autoencoder, structured=(2, 4, 8))
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        full = autoencoder.decode(autoencoder.encode(x).latent).sample
        model.eval()
        assert torch.equal(model(x)[0], full)  # judged (and encoded for diffusion) with every channel
        model.train()
        masked = model(x)[0]
    assert not torch.allclose(masked, full)
    with pytest.raises(ValueError, match="DC-AE 1.5"):
        nets.Compression("vae", nets.vae(2, 1, 3, (8, 16), 1, 8, False, False), structured=(1, 2))
