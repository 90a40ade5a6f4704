"""latent_conditioner losses (seed 000). Every function returns unweighted terms; the family turns
config weights into per-term weights in one place (trainables/families/latent_conditioner.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smooth_targets(target: torch.Tensor, label_smooth: float) -> torch.Tensor:
    """The seed's optional label smoothing (disabled, 0.0), for regression targets in [-1, 1]:
    shrink them towards 0 by the factor (1 - label_smooth). The seed names but never shows it."""
    return target * (1.0 - label_smooth) if label_smooth else target


def robust_terms(pred: torch.Tensor, target: torch.Tensor, huber_beta: float = 0.1, robust: bool = True) -> dict:
    """Seed "Multi-Scale Robust Loss": MSE, and with `robust` also MAE and Huber (smooth L1, beta)."""
    terms = {"mse": F.mse_loss(pred, target)}
    if robust:
        terms["mae"] = F.l1_loss(pred, target)
        terms["huber"] = F.smooth_l1_loss(pred, target, beta=huber_beta)
    return terms


def hier_scale(loss_main: torch.Tensor, loss_hier: torch.Tensor) -> torch.Tensor:
    """Seed's adaptive hierarchical weight max(1, 0.5 * main / hier), from detached values: the
    hierarchical head is never weighted below its fixed weight, more when it lags far behind."""
    ratio = loss_main.detach() / loss_hier.detach().clamp_min(1e-12)
    return torch.clamp(0.5 * ratio, min=1.0)


def perceptual_term(feature_nets, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Seed "PerceptualLatentLoss": mean over the feature MLPs of 1 - mean cosine similarity."""
    losses = [1.0 - F.cosine_similarity(p, t, dim=1).mean()
              for p, t in zip(feature_nets(pred), feature_nets(target))]
    return torch.stack(losses).mean()


def consistency_term(pred_aug: tuple, pred_orig: tuple) -> torch.Tensor:
    """Seed "Consistency Regularization": MSE(main) + MSE(hier) between predictions on augmented
    inputs and on the originals (the latter computed without gradients)."""
    return sum(F.mse_loss(a, o.detach()) for a, o in zip(pred_aug, pred_orig))


def frobenius_term(feature_maps: list[torch.Tensor]) -> torch.Tensor:
    """Seed "Spectral Regularization": sum(S^2) of each feature map viewed as [B, -1] is its squared
    Frobenius norm, so no SVD is needed. Summed over the batch and averaged over the maps, as the
    seed's `torch.sum(S**2)` / len(feature_maps) is, so that its reg_weight (1e-4, and the
    guidelines' 1e-3 / 1e-5) means what the seed means; the term therefore grows with the batch
    and the image (at 256x256, batch 32, about 3e6 at initialisation: benchmarks/history.md)."""
    if not feature_maps:
        raise ValueError("frobenius_term: no feature maps were captured")
    per_map = [f.float().pow(2).sum() for f in feature_maps]
    return torch.stack(per_map).mean()


class FeatureCapture:
    """Forward hooks, for the duration of a `with` block, that keep the residual blocks'
    intermediate features: the output of each block's first activation and of its pre-residual
    branch (attention), the two maps the seed's `ResidualBlock.forward` lists as
    `intermediate_features` (the seed's loop then passes an empty list instead)."""

    def __init__(self, blocks):
        self.blocks = list(blocks)
        self.features: list[torch.Tensor] = []
        self._handles = []

    def _keep(self, module, inputs, output):
        self.features.append(output)

    def __enter__(self):
        self.features = []
        for block in self.blocks:
            self._handles += [block.act1.register_forward_hook(self._keep),
                              block.attention.register_forward_hook(self._keep)]
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []
