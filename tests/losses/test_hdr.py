import math

import pytest
import torch

from losstune.losses.hdr import (hdr_terms, histogram_matching, log_supervision, moment_matching, range_penalty, sparsity,
                                 tonemap)

T = torch.tensor


@pytest.mark.parametrize("name, value, expected", [
    # tonemap x / (1 + x): 0 -> 0, 1 -> 0.5, 3 -> 0.75, inf -> 1 (not NaN)
    ("tonemap 0", lambda: tonemap(T([0.0])), 0.0),
    ("tonemap 1", lambda: tonemap(T([1.0])), 0.5),
    ("tonemap 3", lambda: tonemap(T([3.0])), 0.75),
    ("tonemap inf", lambda: tonemap(T([math.inf])), 1.0),
    # L1: |0 - 0.5| and |1 - 0.5| -> mean 0.5
    ("log l1", lambda: log_supervision(T([0.0, 1.0]), T([0.5, 0.5]), "l1", 0.2), 0.5),
    # Huber delta 0.2, |d| = 0.5 > 0.2: 0.2 * (0.5 - 0.1) = 0.08 per element
    ("log huber", lambda: log_supervision(T([0.0, 1.0]), T([0.5, 0.5]), "huber", 0.2), 0.08),
    # Huber inside delta: 0.5 * 0.1^2 = 0.005
    ("log huber small", lambda: log_supervision(T([0.1]), T([0.0]), "huber", 0.2), 0.005),
    # mean |[-2, 1, 0, 3]| = 6 / 4
    ("sparsity", lambda: sparsity(T([-2.0, 1.0, 0.0, 3.0])), 1.5),
    # relu(|[-8, 7, 2, 0]| - 6) = [2, 1, 0, 0] -> mean 0.75
    ("range", lambda: range_penalty(T([-8.0, 7.0, 2.0, 0.0]), 6.0), 0.75),
    # sorted [1, 2, 3] vs sorted [0, 2, 4]: (1 + 0 + 1) / 3
    ("histogram", lambda: histogram_matching(T([[3.0, 1.0, 2.0]]), T([[0.0, 2.0, 4.0]])), 2 / 3),
    # the same values in another order match perfectly
    ("histogram perm", lambda: histogram_matching(T([[3.0, 1.0, 2.0]]), T([[2.0, 3.0, 1.0]])), 0.0),
    # means 2 vs 0 -> 2; unbiased variances of [1, 3] = 2 vs 0 -> 2; total 4
    ("moment", lambda: moment_matching(T([[1.0, 3.0]]), T([[0.0, 0.0]])), 4.0),
])
def test_terms_hand_worked(name, value, expected):
    assert value().item() == pytest.approx(expected, abs=1e-6), name


@pytest.mark.filterwarnings("ignore:var\\(\\)")  # one pixel has no variance; moment is checked below
def test_hdr_terms_hand_worked():
    eps = 1e-6
    # one pixel: input log 0 (radiance 1), prediction delta +1 -> log 1, target radiance e^2 - eps -> log 2
    log_img = T([[0.0]])
    delta = T([[1.0]])
    out = {"log_img": log_img, "delta_log": delta, "pred": torch.exp(log_img + delta) - eps}
    target = torch.exp(T([[2.0]])) - eps
    terms = hdr_terms(out, target, eps=eps, kind="l1", huber_delta=0.2, safe_range=0.5)
    e, e2 = math.e, math.e ** 2
    expected = {
        "recon": abs(e / (1 + e) - e2 / (1 + e2)),  # tonemapped e vs e^2
        "log_supervision": 1.0,  # |1 - 2|
        "sparsity": 1.0,  # |1|
        "range": 0.5,  # relu(1 - 0.5)
        "histogram": 1.0,  # one value: |1 - 2|
    }
    for name in ("recon", "log_supervision", "sparsity", "range", "histogram"):
        assert terms[name].item() == pytest.approx(expected[name], abs=1e-5), name
    assert set(terms) == {"recon", "log_supervision", "sparsity", "range", "histogram", "moment"}


def test_hdr_terms_moment_over_a_patch():
    eps = 1e-6
    log_img = torch.zeros(1, 1, 1, 2)
    delta = T([1.0, 3.0]).view(1, 1, 1, 2)
    out = {"log_img": log_img, "delta_log": delta, "pred": torch.exp(delta) - eps}
    target = torch.full((1, 1, 1, 2), 1.0 - eps)  # log target 0: true residuals [0, 0]
    # means 2 vs 0, variances 2 vs 0 -> 4 (as in the table above)
    assert hdr_terms(out, target, eps=eps, kind="l1", huber_delta=0.2, safe_range=6.0)["moment"].item() == pytest.approx(4.0, abs=1e-5)
