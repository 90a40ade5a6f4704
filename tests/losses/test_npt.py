import math

import pytest
import torch

from losstune.losses import npt as L

T = torch.tensor


def out_of(**tensors):
    """An NPTModel output dict of [1, T, D] tensors given as [T, D] lists."""
    return {name: T(value, dtype=torch.float32).unsqueeze(0) for name, value in tensors.items()}


# one position, d_model 2, d_ffn 2
ONE = out_of(
    hidden=[[3.0, 4.0]], mlp_input=[[0.6, 0.8]], attention=[[1.0, 0.0]], mlp_with_attention=[[0.0, 1.0]],
    mlp_plain=[[0.0, 0.5]], mlp_modulated=[[1.0, 2.0]], v_a=[[2.0, 0.0]], v_b=[[1.0, 1.0]],
    npt_output=[[4.0, 6.0]], teacher_output=[[4.0, 5.0]])


@pytest.mark.parametrize("name, value, expected", [
    # MLP_mod (1, 2) vs a + MLP(h + a) = (1, 1): squared errors 0, 1 -> mean 0.5
    ("direct_mlp", lambda: L.direct_mlp(ONE), 0.5),
    # v_a (2, 0) and a (1, 0) point the same way: 1 - cos = 0
    ("attention_encoding", lambda: L.attention_encoding(ONE), 0.0),
    # npt (4, 6) vs teacher (4, 5): (0 + 1) / 2
    ("fidelity", lambda: L.fidelity(ONE), 0.5),
    # mean(v_a^2) = (4 + 0) / 2 = 2, mean(v_b^2) = 1 -> 3
    ("regularization", lambda: L.regularization(ONE), 3.0),
    # scalar v_a . n = 1.2; importance |a| / |n| = 1 / 1 = 1; (sigmoid(1.2) - sigmoid(1))^2; one
    # position: no variance term
    ("modulation_guidance", lambda: L.modulation_guidance(ONE),
     (1 / (1 + math.exp(-1.2)) - 1 / (1 + math.exp(-1.0))) ** 2),
    # |cos(v_a, h)| = 3/5 = 0.6; |cos(v_a, a)| = 1 -> 0.01 * 0.6 - 1
    ("info_bottleneck", lambda: L.info_bottleneck(ONE, beta=0.01), 0.006 - 1.0),
    # error e = MLP_mod - (a + MLP(h + a)) = (1, 2) - (1, 1) = (0, 1); u = (1, 0): along 0, across
    # (0, 1) -> mean 0.5; 0.5 x 0 + 0.5 x 0.5 = 0.25
    ("decomposed", lambda: L.decomposed_target(ONE), 0.25),
    # a = (2, 0), MLP(h + a) = (1, 1), MLP_mod = (3.3, 1.4): e = (0.3, 0.4), u = (1, 0). Along:
    # 0.3^2 = 0.09; across (0, 0.4): (0 + 0.16) / 2 = 0.08; 0.5 x 0.09 + 0.5 x 0.08 = 0.085
    ("decomposed along a", lambda: L.decomposed_target(out_of(
        attention=[[2.0, 0.0]], mlp_with_attention=[[1.0, 1.0]], mlp_plain=[[0.5, 0.5]],
        mlp_modulated=[[3.3, 1.4]])), 0.085),
])
def test_terms_by_hand(name, value, expected):
    assert float(value()) == pytest.approx(expected, rel=1e-5, abs=1e-7), name


def test_decomposed_target_is_zero_where_direct_mlp_is():
    # at direct_mlp's exact optimum, MLP_mod(h) = a + MLP(h + a), with an MLP correction that has a
    # part along a: the decomposed target agrees (the earlier reading left 1/2 mean((c . u)^2 u^2))
    torch.manual_seed(0)
    shape = (2, 5, 16)
    a, with_attention, plain = torch.randn(shape), torch.randn(shape), torch.randn(shape)
    out = {"attention": a, "mlp_with_attention": with_attention, "mlp_plain": plain,
           "mlp_modulated": a + with_attention}
    assert float(L.direct_mlp(out)) == 0.0
    assert float(L.decomposed_target(out)) == pytest.approx(0.0, abs=1e-12)
    out["mlp_modulated"] = out["mlp_modulated"] + 0.1 * torch.randn(shape)
    assert float(L.decomposed_target(out)) > 0


def test_modulation_guidance_variance_part_by_hand():
    # two positions, scalars v_a . n = 1 and 3 (n = (1, 0)); importance |a| / |n| = 0 for both.
    # fit: mean((sigmoid(1) - 0.5)^2, (sigmoid(3) - 0.5)^2); unbiased variance of (1, 3) = 2
    out = out_of(v_a=[[1.0, 0.0], [3.0, 0.0]], mlp_input=[[1.0, 0.0], [1.0, 0.0]], attention=[[0.0, 0.0], [0.0, 0.0]])
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    fit = ((s(1) - 0.5) ** 2 + (s(3) - 0.5) ** 2) / 2
    assert float(L.modulation_guidance(out)) == pytest.approx(fit - 0.1 * 2.0, rel=1e-6)


def test_projection_consistency_by_hand():
    # v_b at two positions (1, 0) and (1, 0): equal to their mean -> consistency 0. W_gate = I, so
    # the gate correction is a = (0, 1) and (1, 0): cosines 0 and 1 -> alignment 0.5 -> 0 + 0.5
    out = out_of(v_b=[[1.0, 0.0], [1.0, 0.0]], attention=[[0.0, 1.0], [1.0, 0.0]])
    assert float(L.projection_consistency(out, torch.eye(2))) == pytest.approx(0.5)


def test_orthogonality_penalises_v_a_along_the_main_direction_of_h():
    torch.manual_seed(0)
    hidden = torch.randn(1, 50, 4) * T([10.0, 0.1, 0.1, 0.1])  # h varies along axis 0
    along = {"hidden": hidden, "v_a": T([1.0, 0.0, 0.0, 0.0]).expand(1, 50, 4)}
    across = {"hidden": hidden, "v_a": T([0.0, 0.0, 0.0, 0.0]).expand(1, 50, 4)}
    # v_a = e0 projects fully on the first principal direction: 1 over q = 3 directions -> 1/3
    assert float(L.orthogonality(along, rank=3)) == pytest.approx(1 / 3, rel=1e-3)
    assert float(L.orthogonality(across, rank=3)) == 0.0


def test_masked_mean_keeps_only_the_masked_positions():
    values, mask = T([[1.0, 2.0, 3.0, 10.0]]), T([[True, True, True, False]])
    assert float(L.masked_mean(values, mask)) == 2.0 and float(L.masked_mean(values, None)) == 4.0


def test_curriculum_mask_at_the_boundary_steps():
    attention = torch.zeros(1, 10, 2)
    attention[0, :, 0] = torch.arange(10.0)  # norms 0 .. 9
    steps, quantiles = (500, 1000), (0.3, 0.7)
    # quantile 0.3 of 0..9 = 2.7: norms 0, 1, 2 kept; 0.7 -> 6.3: 0..6 kept; from step 1000 all
    assert int(L.curriculum_mask(attention, 0, steps, quantiles).sum()) == 3
    assert int(L.curriculum_mask(attention, 499, steps, quantiles).sum()) == 3
    assert int(L.curriculum_mask(attention, 500, steps, quantiles).sum()) == 7
    assert int(L.curriculum_mask(attention, 999, steps, quantiles).sum()) == 7
    assert L.curriculum_mask(attention, 1000, steps, quantiles) is None


def test_the_seeds_grad_of_loss_by_itself_is_always_one():
    # seed 2 computes torch.autograd.grad(loss, loss): d loss / d loss = 1 whatever the loss, so
    # its weights never move. Ours takes gradients w.r.t. the parameters.
    w = torch.nn.Parameter(T([1.0, 1.0]))
    small, large = (w * 0.001).sum(), (w * 100.0).sum()
    assert [float(torch.autograd.grad(x, x, retain_graph=True)[0]) for x in (small, large)] == [1.0, 1.0]
    norms = L.gradient_norms([small, large], [w])
    # d(0.001 (w0 + w1))/dw = (0.001, 0.001): norm 0.001 sqrt 2; likewise 100 sqrt 2
    torch.testing.assert_close(norms, T([0.001, 100.0]) * math.sqrt(2))


def test_balanced_weights_favour_the_term_with_small_gradients():
    # G = (1, 3): mean 2; 2/1 = 2 and 2/3; normalised: 2 / (8/3) = 0.75 and (2/3) / (8/3) = 0.25
    torch.testing.assert_close(L.balanced_weights(T([1.0, 3.0]), eps=0.0), T([0.75, 0.25]))
