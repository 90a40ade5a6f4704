"""latent_conditioner family (seed 000): SimulGenVAE's CNN latent conditioner, its current loss
and the seed's five loss enhancements, augmentations and schedule.

The default is the seed's *current* training ("Current Loss Function"): 10 * MSE(main) + 1 *
MSE(hier), every enhancement off (`loss.enhancements`); each enhancement's weight defaults to its
documented value and counts once the enhancement is on. The presets are the seed's
"Configuration Guidelines" (small dataset, large dataset, high resolution). Adaptive weighting is
`uncertainty` (Kendall et al. 2018, on top of the documented weights and bounded: each component's
weight moves at most `loss.adaptive_bound`-fold either way), which the presets use, or `softmax`
(the seed's, which collapses onto the smallest component: known bug 000), only when asked for.

Health (seed "Warning Signs"), each a stop after `health.grace_epochs`: one component over 90% of
the loss, an adaptive weight collapsed towards zero, gradient norms outside [1e-5, 50] on most
steps of an epoch, and val/train > 1000 (seed "Overfitting Detection"). TensorBoard files carry
the seed's names (`Enhanced_Loss/*`, `Adaptive_Weights/*`).
"""

from __future__ import annotations


import torch
from torch.utils.data import TensorDataset

from losstune.data import hold_out
from losstune.trainables.family_api import Objective, OptimizerGroup, Parts, adamw
from losstune.trainables.families import latent_conditioner_config as settings
from losstune.data.latent_conditioner import load_directory, mixup, outline_preserving, synthetic_set
from losstune.losses.latent import (FeatureCapture, consistency_term, frobenius_term, hier_scale, perceptual_term,
                                    robust_terms, smooth_targets)
from losstune.models.latent_conditioner import LatentConditioner, LatentConditionerTraining

OBJECTIVE = Objective("val/latent_mse", "min")
WATCHED_VAL_METRICS = ()
# each loss weight whose term only exists while a switch is on (a sweep warns when it tunes one that is off)
TERM_SWITCHES = {"loss.weights.mae": "loss.enhancements.robust", "loss.weights.huber": "loss.enhancements.robust",
                 "loss.weights.perceptual_main": "loss.enhancements.perceptual",
                 "loss.weights.perceptual_hier": "loss.enhancements.perceptual",
                 "loss.weights.consistency": "loss.enhancements.consistency",
                 "loss.weights.spectral": "loss.enhancements.spectral"}
COMPONENTS = ("latent", "perceptual", "consistency", "spectral")  # what adaptive weighting balances
# The seed's TensorBoard tags ("Enhanced TensorBoard logging"). It numbers the adaptive weights by
# position (component_0 ...), which shifts with what is enabled; they are named here instead, so a
# component's curve keeps its name across configs.
TAGS = {"train/loss": "Enhanced_Loss/total", "train/mse_main": "Enhanced_Loss/mse_main",
        "train/mse_hier": "Enhanced_Loss/mse_hier", "train/perceptual_main": "Enhanced_Loss/perceptual_main",
        "train/perceptual_hier": "Enhanced_Loss/perceptual_hier", "train/consistency": "Enhanced_Loss/consistency",
        "train/spectral": "Enhanced_Loss/spectral",
        **{f"health/weight_{name}": f"Adaptive_Weights/{name}" for name in COMPONENTS}}


# the family's settings, under the names the contract reads (trainables/family_api.py)
Config, PRESETS, SMOKE = settings.Config, settings.PRESETS, settings.SMOKE


def load_arrays(cfg):
    """(train images, y1, y2, val images, y1, y2) as numpy arrays."""
    d, m = cfg.data, cfg.model
    dims = (m.latent_dim_end, m.latent_dim * m.size2)
    if not d.path:
        return (*synthetic_set(d.num_train, d.image_size, d.seed, *dims),
                *synthetic_set(d.num_val, d.image_size, d.seed + 1, *dims))
    train = load_directory(d.path, d.image_size, *dims)
    if d.val_path:
        return (*train, *load_directory(d.val_path, d.image_size, *dims))
    return hold_out(train, d.val_fraction, d.path, "images")


def check_data(cfg) -> int:
    return len(load_arrays(cfg)[0])


def enabled_components(cfg) -> list[str]:
    e = cfg.loss.enhancements
    on = {"latent": True, "perceptual": e.perceptual, "consistency": e.consistency, "spectral": e.spectral}
    return [name for name in COMPONENTS if on[name]]


def build(cfg) -> Parts:
    arrays = [torch.from_numpy(a) for a in load_arrays(cfg)]
    m = cfg.model
    net = LatentConditioner(image_size=cfg.data.image_size, filters=m.filters, blocks_per_stage=m.blocks_per_stage,
                            latent_dim_end=m.latent_dim_end, latent_dim=m.latent_dim, size2=m.size2,
                            encoder_dim=m.encoder_dim, use_attention=m.use_attention, se_reduction=m.se_reduction,
                            drop_rate=m.drop_rate)
    model = LatentConditionerTraining(net, m.latent_dim_end, m.latent_dim * m.size2, cfg.loss.perceptual_hidden,
                                      cfg.loss.adaptive, len(enabled_components(cfg)), cfg.loss.adaptive_bound)
    return Parts(model, TensorDataset(*arrays[:3]), TensorDataset(*arrays[3:]), {})


def optimizer_groups(model, cfg) -> list[OptimizerGroup]:
    """AdamW over the network; seed enhancement 5: the adaptive weights have their own Adam
    (lr 1e-3), unscheduled and unclipped."""
    weights = list(model.weighter.parameters()) if model.weighter is not None else []
    taken = {id(p) for p in weights}
    network = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
    groups = [OptimizerGroup("model", adamw(network, cfg.optim))]
    if weights:
        groups.append(OptimizerGroup("loss_weights", torch.optim.Adam(weights, lr=cfg.loss.adaptive_lr),
                                     scheduled=False, clipped=False))
    return groups


def term_weights(cfg) -> dict:
    """Per-term weights: head weight (main 10 : hier 1) x error kind (mse / mae / huber), and the
    enhancements' own weights."""
    w = cfg.loss.weights
    weights = {f"{kind}_{head}": getattr(w, head) * getattr(w, kind)
               for head in ("main", "hier") for kind in ("mse", "mae", "huber")}
    weights.update(perceptual_main=w.perceptual_main, perceptual_hier=w.perceptual_hier,
                   consistency=w.consistency, spectral=w.spectral)
    return weights


def augment(x, y1, y2, a: settings.AugmentConfig):
    """Seed "Augmentation Strategy": each block drawn once per batch with its probability.
    Returns (x, y1, y2, whether the outline-preserving block ran)."""
    outlined = bool(torch.rand(()) < a.outline_p)
    if outlined:
        x = outline_preserving(x, a.flip_p, a.max_shift_px, a.max_degrees, (a.scale_min, a.scale_max))
    if x.shape[0] > 1 and bool(torch.rand(()) < a.mixup_p):
        x, y1, y2 = mixup(x, y1, y2, a.mixup_alpha)
    if bool(torch.rand(()) < a.noise_p):
        x = x + torch.randn_like(x) * a.noise_std
    return x, y1, y2, outlined


def loss_terms(model, batch, cfg):
    inner = getattr(model, "module", model)  # the LatentConditionerTraining under DDP
    e, ls = cfg.loss.enhancements, cfg.loss.label_smooth
    x, y1, y2 = batch
    original = x
    x, y1, y2, outlined = augment(x, y1, y2, cfg.augment)
    with FeatureCapture(inner.net.blocks) as capture:
        pred1, pred2 = model(x)
    terms = {}
    for head, pred, target in (("main", pred1, y1), ("hier", pred2, y2)):
        for kind, value in robust_terms(pred, smooth_targets(target, ls), cfg.loss.huber_beta, e.robust).items():
            terms[f"{kind}_{head}"] = value
    if e.perceptual:
        terms["perceptual_main"] = perceptual_term(inner.perceptual_main, pred1, y1)
        terms["perceptual_hier"] = perceptual_term(inner.perceptual_hier, pred2, y2)
    if e.consistency:
        # Every batch, as the seed's training loop (where no augmentation fired it measures
        # only the network's own noise). The reference runs on the network, not its DDP wrapper:
        # a DDP forward is a collective, and the other workers' batches may not take this branch.
        with torch.no_grad():
            reference = inner(original)
        terms["consistency"] = consistency_term((pred1, pred2), reference)
    if e.spectral:
        terms["spectral"] = frobenius_term(capture.features)
    return terms, {"outline_augmented": torch.tensor(float(outlined))}


def combine(model, weighted: dict, cfg):
    """The total loss from the weighted terms: the seed's adaptive hierarchical weight, then the
    adaptive weighting of the enabled components. Returns (total, health stats)."""
    health = {}
    main = sum(v for k, v in weighted.items() if k.endswith("_main") and not k.startswith("perceptual"))
    hier = sum(v for k, v in weighted.items() if k.endswith("_hier") and not k.startswith("perceptual"))
    if cfg.loss.enhancements.robust and cfg.loss.adaptive_hier:
        scale = hier_scale(main / cfg.loss.weights.main, hier / cfg.loss.weights.hier)
        hier = hier * scale
        health["hier_scale"] = scale
    parts = {"latent": main + hier,
             "perceptual": weighted.get("perceptual_main", 0.0) + weighted.get("perceptual_hier", 0.0),
             "consistency": weighted.get("consistency"), "spectral": weighted.get("spectral")}
    names = enabled_components(cfg)
    components = torch.stack([torch.as_tensor(parts[name]) for name in names])
    inner = getattr(model, "module", model)
    if inner.weighter is None:
        total, weights = components.sum(), torch.ones_like(components)
    else:
        total, weights = inner.weighter(components)
        health.update({f"weight_{name}": value for name, value in zip(names, weights)})
        health["min_adaptive_weight"] = weights.min()
    if len(names) > 1:  # one component alone is all of the loss by definition
        share = (weights * components.detach()).abs()
        health["max_component_share"] = share.max() / share.sum().clamp_min(1e-12)
    return total, health


@torch.no_grad()
def val_metrics(model, batch, cfg, extras):
    """Per sample: the objective latent_mse (main + hier, unweighted, so trials that tune the
    weights compare), its parts, the cosine of the main latent, and the seed's own validation
    loss, weighted main : hier = 10 : 1 at the documented default (not comparable across trials
    that tune those two weights)."""
    x, y1, y2 = batch
    pred1, pred2 = model(x)
    mse_main = (pred1.float() - y1).pow(2).mean(1)
    mse_hier = (pred2.float() - y2).pow(2).mean(1)
    w = cfg.loss.weights
    return {"latent_mse": mse_main + mse_hier, "mse_main": mse_main, "mse_hier": mse_hier,
            "cosine_main": torch.nn.functional.cosine_similarity(pred1.float(), y1, dim=1),
            "weighted_loss": w.main * mse_main + w.hier * mse_hier}


def stop_reason(metrics, cfg) -> str:
    """The seed's warning signs, after the grace epochs; overfitting at once (it needs a trained
    model to happen)."""
    h = cfg.health
    train_mse = metrics.get("train/mse_main", 0.0) + metrics.get("train/mse_hier", 0.0)
    if train_mse > 0 and metrics["val/latent_mse"] / train_mse > h.max_val_train_ratio:
        return "overfitting"
    if metrics["epoch"] <= h.grace_epochs:
        return ""
    if metrics.get("health/max_component_share", 0.0) > h.max_component_share:
        return "loss_imbalance"
    if metrics.get("health/min_adaptive_weight", 1.0) < h.min_adaptive_weight:
        return "weight_collapse"
    if metrics["health/grad_norm_out_of_range"] > h.max_bad_grad_share:
        return "grad_norm_out_of_range"
    return ""
