"""medgen_compression's networks (models/medgen_compression.py): the autoencoder of the run's
`model` section (VAE, VQ-VAE or DC-AE, with DC-AE 1.5's structured latent) and, where the GAN is on,
its patch discriminator."""

from __future__ import annotations

from losstune.trainables.config import ConfigError
from losstune.trainables.families.medgen.compression_modes import gan_on, images_of, pooled
from losstune.trainables.families.medgen.shapes import DCAE_VARIANTS, DCAE_WIDTHS

def make_model(cfg):
    # here, not at the top: loads torch only where this runs
    from losstune.models import medgen_compression as nets

    m, channels = cfg.model, 1 if pooled(cfg) else len(images_of(cfg))
    if m.kind == "vae":
        v = m.vae
        autoencoder = nets.vae(m.spatial_dims, channels, v.latent_channels, v.channels, v.res_blocks, v.norm_groups,
                               v.attention, m.gradient_checkpointing)
    elif m.kind == "vqvae":
        q = m.vqvae
        autoencoder = nets.vqvae(m.spatial_dims, channels, q.num_embeddings, q.embedding_dim, q.channels,
                                 q.res_layers, q.decay, m.gradient_checkpointing)
    elif m.dcae.pretrained:
        autoencoder = nets.pretrained_dcae(m.dcae.pretrained, channels, m.gradient_checkpointing)
    else:
        latent, stages, scaling = DCAE_VARIANTS[m.dcae.variant]
        widths = tuple(max(8, int(w * m.dcae.width_factor)) for w in DCAE_WIDTHS[:stages])
        autoencoder = nets.dcae(channels, latent, widths, m.dcae.layers_per_block, scaling, m.gradient_checkpointing)
    discriminator, structured = None, ()
    if m.kind == "dcae" and m.dcae.structured_latent:
        structured = structured_counts(m.dcae.min_channels, m.dcae.channel_step, autoencoder.config.latent_channels,
                                       "model.dcae.min_channels")
    if gan_on(cfg):
        discriminator = nets.patch_discriminator(m.spatial_dims, channels, cfg.gan.disc_channels, cfg.gan.disc_layers)
        if m.kind == "dcae":  # seed "DC-AE Phase 3": GAN fine-tuning with the encoder frozen
            autoencoder.encoder.requires_grad_(False)
    return nets.Compression(m.kind, autoencoder, discriminator, structured)


def structured_counts(least: int, step: int, latent: int, field: str) -> tuple[int, ...]:
    """DC-AE 1.5's channel counts for an autoencoder of `latent` channels (a pretrained one's own);
    ConfigError naming `field` where `least` and `step` do not reach `latent` exactly."""
    # here, not at the top: loads torch only where this runs
    from losstune.models.medgen_compression import channel_counts

    if least >= latent or (latent - least) % step:
        raise ConfigError(field, f"{least} with channel_step {step} does not step up to the autoencoder's "
                                 f"{latent} latent channels")
    return channel_counts(latent, least, step)
