"""hdr_patch family (seed 004): the functions the shared loop calls (its config, with the seed's
documented values: hdr_patch_config.py). Defaults are the seed's *current* setting (section 1.4 /
6.1 "before"): Mode A, abs_max 16, alpha 1.2, L1 log supervision weight 1, no clamp. Preset `phase1` is the seed's
recommended immediate fix (6.1 / 7.2); `phase2` adds its learnable output scale (6.2);
`phase3_adaptive` and `phase3_layernorm` are its research direction (7.2 Phase 3): the
input-conditioned scaler (6.3), or the output normalisation with the fixed x8 (5.2).

Objective: `val/log_l1`, the mean |log error| over every pixel of the repaired patch. A warped
frame's holes (radiance 0, log(eps) = -13.8) are part of the seed's pipeline and of the frame the
model outputs, so they count; a cap below their log distance to the target (about 14) cannot fill
them, which is the seed's own warning that small caps underfit dark content. Beside it every epoch
reports `val/log_l1_valid` (pixels the warp filled) and `val/log_l1_holes` (the hole mask's
pixels), pixel-weighted over the validation set, so a sweep shows which of the two a setting wins
or loses on.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import TensorDataset

from losstune.data import hold_out
from losstune.trainables.config import ConfigError
from losstune.trainables.family_api import Objective, Parts
from losstune.trainables.engine.loop_config import unet_misfit
from losstune.trainables.families import hdr_patch_config as settings
from losstune.data.hdr_patch import load_patches, synthetic_patches
from losstune.losses.hdr import hdr_terms
from losstune.models.hdr_patch import HDRPatchModel

OBJECTIVE = Objective("val/log_l1", "min")
HOLE_CHANNEL = 3  # the input's hole mask (models/hdr_patch.py)
WATCHED_VAL_METRICS = ("overflow_frac",)  # also reported as health/overflow_frac


# the family's settings, under the names the contract reads (trainables/family_api.py)
Config, PRESETS, SMOKE = settings.Config, settings.PRESETS, settings.SMOKE


def load_arrays(cfg):
    """(train inputs, train targets, val inputs, val targets) as numpy arrays."""
    d = cfg.data
    if not d.path:
        return (*synthetic_patches(d.num_train, d.patch_size, d.seed),
                *synthetic_patches(d.num_val, d.patch_size, d.seed + 1))
    inputs, targets = load_patches(d.path)
    if d.val_path:
        return (inputs, targets, *load_patches(d.val_path))
    return hold_out((inputs, targets), d.val_fraction, d.path, "patches")


def check_data(cfg) -> int:
    train_x, _, val_x, _ = load_arrays(cfg)
    for name, x in (("data.path", train_x), ("data.val_path", val_x)):
        if x.shape[1] != cfg.model.in_channels:
            raise ConfigError(name, f"has {x.shape[1]} input channels but model.in_channels is {cfg.model.in_channels}")
        if why := unet_misfit(x.shape[-2:], cfg.model.channels, "model.channels"):
            raise ConfigError(name, f"has {x.shape[-2]}x{x.shape[-1]} patches, which {why} (crop them, or use fewer "
                                    "model.channels)")
    return len(train_x)


def build(cfg) -> Parts:
    train_x, train_y, val_x, val_y = (torch.from_numpy(a) for a in load_arrays(cfg))
    m, caps = cfg.model, cfg.caps
    model = HDRPatchModel(
        in_channels=m.in_channels, channels=m.channels, num_res_units=m.num_res_units,
        mode=caps.mode, abs_max=caps.abs_max, alpha=caps.alpha, log_delta_scale=caps.log_delta_scale,
        eps=caps.eps, residual_scale=caps.residual_scale,
        clamp_value=caps.clamp_value if caps.clamp_enabled else None,
        output_norm=m.output_norm, learnable_scale=m.learnable_scale, scale_init=m.scale_init,
        scale_per_channel=m.scale_per_channel, adaptive_scaler=m.adaptive_scaler, scaler_range=(m.scaler_min, m.scaler_max),
    )
    # the data's HDR ceiling: predictions far above the brightest target are overflow
    ceiling = float(train_y.max()) * cfg.health.overflow_margin
    return Parts(model, TensorDataset(train_x, train_y), TensorDataset(val_x, val_y), {"ceiling": ceiling})


def loss_terms(model, batch, cfg):
    inputs, target = batch
    out = model(inputs)
    terms = hdr_terms(out, target, eps=cfg.caps.eps, kind=cfg.loss.log_supervision_type,
                      huber_delta=cfg.loss.huber_delta, safe_range=cfg.loss.safe_range)
    health = {"tanh_saturation": (out["tanh"].detach().abs() > 0.99).float().mean()}
    return terms, {**health, **scale_readings(out["cap"].detach(), cfg.model)}


def scale_readings(cap: torch.Tensor, m: settings.ModelConfig) -> dict:
    """What the seed asks to monitor where the cap is learnt: the learnable residual_output_scale
    ("should stabilize around 4-8", 6.2), per channel where it has one per channel, or the
    adaptive scaler's mean over the batch's patches."""
    if m.learnable_scale:
        readings = {"residual_output_scale": cap.mean()}
        if m.scale_per_channel:
            readings.update({f"residual_output_scale_{c}": value for c, value in zip("rgb", cap.flatten())})
        return readings
    if m.adaptive_scaler:
        return {"adaptive_scale": cap.mean()}
    return {}


def val_metrics(model, batch, cfg, extras):
    """Per patch: the mean |log error| over all its pixels, the error summed over its filled and
    its hole pixels with their counts (pixel-weighted over the set by `summarise_val`), and the
    share of overflowing pixels."""
    inputs, target = batch
    out = model(inputs)
    log_target = torch.log(torch.clamp(target, min=0.0) + cfg.caps.eps)
    error = ((out["log_img"] + out["delta_log"]).float() - log_target).abs()
    holes = (inputs[:, HOLE_CHANNEL:HOLE_CHANNEL + 1] > 0.5).expand_as(error)
    pred = out["pred"].float()
    overflow = ~torch.isfinite(pred) | (pred > extras["ceiling"])
    return {
        "log_l1": error.flatten(1).mean(1),
        "log_l1_valid_sum": (error * ~holes).flatten(1).sum(1), "valid_count": (~holes).flatten(1).sum(1),
        "log_l1_holes_sum": (error * holes).flatten(1).sum(1), "holes_count": holes.flatten(1).sum(1),
        "overflow_frac": overflow.flatten(1).float().mean(1),
    }


def summarise_val(means: dict, cfg) -> dict:
    """The hole / non-hole split, pixel-weighted: a ratio of means of per-patch sums is the ratio
    of the sums. NaN where the validation set has no such pixel."""
    out = {"log_l1": means["log_l1"]}
    for part, count in (("valid", "valid_count"), ("holes", "holes_count")):
        out[f"log_l1_{part}"] = means[f"log_l1_{part}_sum"] / means[count] if means[count] > 0 else math.nan
    out["overflow_frac"] = means["overflow_frac"]
    return out


def stop_reason(metrics, cfg) -> str:
    past_grace = metrics["epoch"] > cfg.health.grace_epochs
    if past_grace and metrics["val/overflow_frac"] > cfg.health.max_overflow_frac:
        return "overflow"
    return ""
