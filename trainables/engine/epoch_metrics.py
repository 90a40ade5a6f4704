"""What an epoch reports: the training stats, rates, gradient and memory figures, health, and the
validation metrics of the whole validation set, under the loop's own names."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING

import torch

from losstune.trainables.checkpoint_score import CHECKPOINT_SCORE
from losstune.trainables.engine.worker_setup import peak_memory_mb

if TYPE_CHECKING:
    from losstune.trainables.engine.step import Run


def epoch_metrics(run: Run, stats: dict, epoch: int, validation: dict) -> dict:
    """The epoch's report, under the loop's own names: training terms, rates, gradient and
    memory figures, health, the latest validation, and the family's stop reason."""
    terms = stats["terms"]
    metrics = {"epoch": epoch + 1, **{f"train/{name}": value for name, value in terms.items()}}
    metrics.update({("lr" if i == 0 else f"lr/{g.name}"): g.schedule.get_last_lr()[0]
                    for i, g in enumerate(g for g in run.groups if g.schedule is not None)})
    metrics.update(stats["grad_norms"], grad_norm_max=stats["grad_norm_max"], samples_per_s=stats["samples_per_s"],
                   peak_mem_mb=peak_memory_mb())
    metrics.update(stats.get("grad_norm_maxima", {}))
    if torch.cuda.is_available():  # seed 001's resource tags
        metrics.update({"VRAM/allocated_GB": torch.cuda.memory_allocated() / 2**30,
                        "VRAM/reserved_GB": torch.cuda.memory_reserved() / 2**30,
                        "VRAM/max_allocated_GB": torch.cuda.max_memory_allocated() / 2**30})
    weighted = [abs(v) for k, v in terms.items() if k.startswith("weighted/")]
    metrics["health/nonfinite"] = float(stats["stop_reason"] == "nonfinite_loss")
    metrics["health/max_term_share"] = max(weighted) / sum(weighted) if weighted and sum(weighted) > 0 else 0.0
    metrics["health/grad_norm_out_of_range"] = stats["grad_out_of_range"]
    metrics.update({f"health/{name}": value for name, value in stats["health"].items()})
    metrics.update(validation)
    metrics.update({f"health/{name}": metrics[f"val/{name}"] for name in run.family.watched_val_metrics})
    metrics["stop_reason"] = stats["stop_reason"] or run.family.stop_reason(metrics, run.cfg)
    fresh = validation["val_epoch"] == epoch + 1
    metrics[CHECKPOINT_SCORE] = metrics[run.family.objective_of(run.cfg).metric] if fresh else math.nan
    return metrics


@torch.no_grad()
def evaluate(run: Run, loader, extras: dict, epoch: int) -> dict:
    """Mean of each per-sample validation metric over the whole (all-worker) validation set, of
    the EMA weights where there are some; a family's `summarise_val(means, cfg)` may derive more
    from the means (e.g. pixel-weighted ratios from per-sample sums). A metric may also be a
    vector per sample ([B, K]: each VQ code's share of a sample's latent); its mean is then a list,
    which summarise_val must turn into numbers. The family's `model_metrics` adds what is measured
    of the model as a whole (epoch: the 1-based epoch just trained)."""
    model = run.ema.module if run.ema is not None else run.model
    model.eval()
    collected = defaultdict(list)
    for batch in loader:
        for name, values in run.family.val_metrics(model, batch, run.cfg, extras).items():
            collected[name].append(run.accelerator.gather_for_metrics(values.float()))
    means = {name: torch.cat(chunks).mean(0).tolist() for name, chunks in collected.items()}
    means = run.family.summarise_val(means, run.cfg)
    # on every worker alike (the same weights and seeds give the same numbers), outside DDP's wrapper
    means.update(run.family.model_metrics(run.accelerator.unwrap_model(model), run.cfg, extras, epoch))
    return {f"val/{name}": value for name, value in means.items()}
