"""lgt family (seed 002): latent style transfer by a style-conditioned ODE flow, trained on the
energy E = w_style * SWD(x1, x_style_ref) + w_content * SSM(x1, x_src).

The seed is a change log; its "after" values are the defaults here. x_style_ref are real latents
of the target style, never x_src (the seed's identity-mapping bug, section 1). The target style of
each sample is drawn from the styles other than its own; with probability `label_drop_prob` the
flow sees the null style instead (classifier-free guidance training); validation integrates with
guidance `cfg_scale`.

Two objectives, both min: `val/style_swd` (x1 against held-out latents of the target style) and
`val/content_ssm` (x1 against its source), measured with fixed projections and all patches and
positions, so they do not depend on the tuned caps; `val/energy` is their unweighted sum, the
scalar that ASHA and single-objective sweeps rank by.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from losstune.data.lgt import (build_style_indices_cache, hold_out_per_style, load_latents, other_styles,
                               sample_style_batch, synthetic_latents)
from losstune.trainables.config import ConfigError
from losstune.trainables.family_api import Objective, Parts
from losstune.trainables.engine.loop_config import unet_misfit
from losstune.trainables.families import lgt_config as settings
from losstune.losses.energy import patch_swd, ssm_distance
from losstune.models.lgt import StyleFlow, divergence_hutchinson

OBJECTIVE = Objective("val/energy", "min")
OBJECTIVES = (Objective("val/style_swd", "min"), Objective("val/content_ssm", "min"))  # the Pareto front
WATCHED_VAL_METRICS = ("identity_ratio",)
# each loss weight whose term only exists while a switch is on (a sweep warns when it tunes one that is off)
TERM_SWITCHES = {"loss.weights.velocity": "loss.use_velocity_reg", "loss.weights.divergence": "loss.use_divergence_reg"}
VAL_REFERENCES = 4  # target-style latents a validation output is compared against


# the family's settings, under the names the contract reads (trainables/family_api.py)
Config, PRESETS, SMOKE = settings.Config, settings.PRESETS, settings.SMOKE


class StylePairs(Dataset):
    """Items (x_src, source style, target style, references [R, C, H, W] of the target style).

    The target is one of the other styles; the references are real latents of it drawn through the
    seed's style index cache. With `fixed_seed` (validation) every item's draw is the same in every
    epoch and trial."""

    def __init__(self, latents, style_ids, num_styles: int, references: int = 1, fixed_seed: int | None = None):
        self.latents, self.style_ids = torch.as_tensor(latents), torch.as_tensor(style_ids)
        self.num_styles, self.references, self.fixed_seed = num_styles, references, fixed_seed
        self.cache = build_style_indices_cache(self.style_ids)

    def __len__(self):
        return len(self.latents)

    def __getitem__(self, index):
        generator = None if self.fixed_seed is None else torch.Generator().manual_seed(self.fixed_seed + index)
        style = self.style_ids[index]
        target = other_styles(style.view(1), self.num_styles, generator)[0]
        refs = sample_style_batch(self.latents, self.cache, target.repeat(self.references), generator)
        return self.latents[index], style, target, refs


def load_arrays(cfg):
    """(train latents, ids, val latents, ids) as numpy arrays."""
    d = cfg.data
    if not d.path:
        return (*synthetic_latents(d.num_train, d.num_styles, d.size, d.channels, d.seed),
                *synthetic_latents(d.num_val, d.num_styles, d.size, d.channels, d.seed + 1))
    train = load_latents(d.path, d.num_styles, d.channels)
    if d.val_path:
        return (*train, *load_latents(d.val_path, d.num_styles, d.channels))
    return hold_out_per_style(*train, d.val_fraction, d.path)


def check_data(cfg) -> int:
    train_x, _, val_x, _ = load_arrays(cfg)
    for name, x in (("data.path", train_x), ("data.val_path", val_x)):
        if why := unet_misfit(x.shape[-2:], cfg.model.widths, "model.widths"):
            raise ConfigError(name, f"has {x.shape[-2]}x{x.shape[-1]} latents, which {why} (crop or pad them, or use "
                                    "fewer model.widths)")
    return len(train_x)


def build(cfg) -> Parts:
    train_x, train_ids, val_x, val_ids = load_arrays(cfg)
    m, d = cfg.model, cfg.data
    model = StyleFlow(d.num_styles, d.channels, m.widths, m.attention, m.res_blocks, m.norm_groups, m.head_channels)
    return Parts(model, StylePairs(train_x, train_ids, d.num_styles),
                 StylePairs(val_x, val_ids, d.num_styles, VAL_REFERENCES, fixed_seed=cfg.eval.seed), {})


def term_weights(cfg) -> dict:
    w = cfg.loss.weights
    style, content = w.style_and_content()
    return {"style": style, "content": content, "velocity": w.velocity, "divergence": w.divergence}


def loss_terms(model, batch, cfg):
    x_src, _, target, refs = batch
    inner = getattr(model, "module", model)  # the StyleFlow under DDP
    dropped = torch.rand(target.shape, device=target.device) < cfg.flow.label_drop_prob
    condition = torch.where(dropped, torch.full_like(target, inner.null_style), target)
    f, loss = cfg.flow, cfg.loss
    x1, velocity_sq = model(x_src, condition, steps=f.ode_steps, method=f.method,
                            checkpoint=f.use_gradient_checkpointing)
    terms = {"style": patch_swd(x1, refs[:, 0], loss.projections, loss.max_samples, loss.stratified),
             "content": ssm_distance(x1, x_src, loss.max_spatial_samples)}
    if loss.use_velocity_reg:
        terms["velocity"] = velocity_sq
    if loss.use_divergence_reg:
        # at a random time on the straight line x_src -> x1 (the trajectory for a constant v);
        # not under DDP: autograd.grad with create_graph bypasses DDP's gradient hooks
        t = torch.rand(len(x_src), device=x_src.device)
        x_t = x_src + t.view(-1, 1, 1, 1) * (x1 - x_src).detach()
        terms["divergence"] = divergence_hutchinson(inner, x_t, t, condition).pow(2).mean()
    return terms, {"velocity_norm": velocity_sq.detach().sqrt()}


@torch.no_grad()
def val_metrics(model, batch, cfg, extras):
    """Per sample: SWD of x1 (and of x_src) to the target style's references, SSM of x1 to x_src,
    all patches and positions and the same projections for every trial."""
    x_src, _, target, refs = batch
    f = cfg.flow
    x1, _ = model(x_src, target, steps=f.ode_steps, method=f.method, cfg_scale=f.cfg_scale)
    style_swd, source_swd = [], []
    for i in range(len(x_src)):
        for out, values in ((x1, style_swd), (x_src, source_swd)):
            generator = torch.Generator(device=x_src.device).manual_seed(cfg.eval.seed)
            values.append(patch_swd(out[i:i + 1], refs[i], cfg.eval.projections, max_samples=2**31,
                                    generator=generator))
    style_swd, source_swd = torch.stack(style_swd), torch.stack(source_swd)
    content = torch.cat([ssm_distance(x1[i:i + 8], x_src[i:i + 8], 0, reduce=False) for i in range(0, len(x1), 8)])
    return {"style_swd": style_swd, "content_ssm": content, "energy": style_swd + content,
            "identity_ratio": style_swd / source_swd.clamp_min(1e-12), "source_style_swd": source_swd}


def stop_reason(metrics, cfg) -> str:
    h = cfg.health
    if metrics["epoch"] <= h.grace_epochs:
        return ""
    if metrics["health/identity_ratio"] > h.max_identity_ratio:
        return "identity_mapping"
    if metrics.get("health/velocity_norm", math.inf) < h.min_velocity_norm:
        return "velocity_collapse"
    return ""
