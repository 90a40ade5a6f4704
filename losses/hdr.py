"""hdr_patch loss terms (seed 004), each returned unweighted under its own name.

The seed's proposed KL term (section 3) is not offered: softmax over a patch's residuals turns
signed, spatially placed corrections into a pseudo-distribution, losing sign, magnitude and
position. Its own alternatives are here instead: histogram (sorted-value) and moment matching.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

def tonemap(x: torch.Tensor) -> torch.Tensor:
    """Reinhard x / (1 + x), written as 1 - 1 / (1 + x) so that x = inf maps to 1, not NaN."""
    return 1.0 - 1.0 / (1.0 + torch.clamp(x, min=0.0))


def log_supervision(ln_hat, log_target, kind: str, huber_delta: float) -> torch.Tensor:
    """Seed 5.4 C / 6.1: supervision in the log domain, L1 or Huber(delta)."""
    if kind == "l1":
        return F.l1_loss(ln_hat, log_target)
    return F.huber_loss(ln_hat, log_target, delta=huber_delta)


def sparsity(delta_log) -> torch.Tensor:
    """Seed 5.4 A: mean |delta_log|: most pixels should barely change."""
    return delta_log.abs().mean()


def range_penalty(delta_log, safe_range: float) -> torch.Tensor:
    """Seed 5.4 B: mean of relu(|delta_log| - safe_range)."""
    return F.relu(delta_log.abs() - safe_range).mean()


def histogram_matching(delta_log, gt_delta_log) -> torch.Tensor:
    """Seed 3.4 A / A.3: L1 between each patch's sorted residuals and the sorted true ones."""
    batch = delta_log.shape[0]
    pred_sorted = torch.sort(delta_log.reshape(batch, -1), dim=1).values
    gt_sorted = torch.sort(gt_delta_log.reshape(batch, -1), dim=1).values
    return F.l1_loss(pred_sorted, gt_sorted)


def moment_matching(delta_log, gt_delta_log) -> torch.Tensor:
    """Seed 3.4 B: L1 between per-patch means plus L1 between per-patch variances."""
    dims = tuple(range(1, delta_log.dim()))
    mean_term = F.l1_loss(delta_log.mean(dim=dims), gt_delta_log.mean(dim=dims))
    var_term = F.l1_loss(delta_log.var(dim=dims), gt_delta_log.var(dim=dims))
    return mean_term + var_term


def hdr_terms(out: dict, target: torch.Tensor, *, eps: float, kind: str, huber_delta: float,
              safe_range: float) -> dict[str, torch.Tensor]:
    """All terms for a model output dict (see models.hdr_patch) and linear targets."""
    log_target = torch.log(torch.clamp(target, min=0.0) + eps)
    gt_delta_log = log_target - out["log_img"]
    delta_log = out["delta_log"]
    return {
        # display-referred error: linear L1 would be all highlights, so compare tonemapped values
        "recon": F.l1_loss(tonemap(out["pred"]), tonemap(target)),
        "log_supervision": log_supervision(out["log_img"] + delta_log, log_target, kind, huber_delta),
        "sparsity": sparsity(delta_log),
        "range": range_penalty(delta_log, safe_range),
        "histogram": histogram_matching(delta_log, gt_delta_log),
        "moment": moment_matching(delta_log, gt_delta_log),
    }
