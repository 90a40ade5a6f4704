import torch

from losstune.models.npt import (LayerShape, NPTTraining, TeacherLayer, plain_frequencies, random_teacher_model,
                                 rank_one_update, rotary)

SMALL = LayerShape(d_model=16, heads=2, d_ffn=24)


def test_rank_one_update_equals_the_explicit_modulated_gate_matrix():
    torch.manual_seed(0)
    gate = torch.nn.Linear(6, 10, bias=False)
    n, v_a, v_b = torch.randn(2, 3, 6), torch.randn(2, 3, 6), torch.randn(2, 3, 10)
    for b in range(2):
        for t in range(3):
            explicit = (gate.weight + torch.outer(v_b[b, t], v_a[b, t])) @ n[b, t]  # W' = W + v_b v_a^T
            fast = gate(n[b, t]) + rank_one_update(n[b, t], v_a[b, t], v_b[b, t])
            torch.testing.assert_close(fast, explicit)


def test_teacher_output_is_h_plus_attention_plus_mlp_of_h_plus_attention():
    torch.manual_seed(0)
    layer = TeacherLayer(SMALL)
    h = torch.randn(2, 5, 16)
    a = layer.attn(layer.attn_norm(h))
    n = layer.mlp_norm(h + a)
    mlp = layer.mlp.down(torch.nn.functional.silu(layer.mlp.gate(n)) * layer.mlp.up(n))
    torch.testing.assert_close(layer(h), h + a + mlp)


def test_attention_is_causal():
    torch.manual_seed(0)
    layer = TeacherLayer(SMALL)
    h = torch.randn(1, 6, 16)
    changed = h.clone()
    changed[0, 4:] += 1.0  # later positions must not change earlier outputs
    torch.testing.assert_close(layer.attention(h)[0, :4], layer.attention(changed)[0, :4])


def test_rotary_keeps_norms_and_makes_scores_depend_on_relative_position():
    q, k = torch.randn(1, 1, 1, 8).expand(1, 1, 6, 8), torch.randn(1, 1, 1, 8).expand(1, 1, 6, 8)
    rq, rk = rotary(q, plain_frequencies(8, 10000.0)), rotary(k, plain_frequencies(8, 10000.0))
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))
    scores = rq[0, 0] @ rk[0, 0].T
    torch.testing.assert_close(scores[1, 0], scores[4, 3])  # same offset, same score


def test_npt_output_has_no_attention_residual_and_the_teacher_is_frozen():
    model = random_teacher_model(20, SMALL, np_rank=3)
    out = model(torch.randint(0, 20, (2, 7)))
    torch.testing.assert_close(out["npt_output"], out["hidden"] + out["mlp_modulated"])
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"np.down.weight", "np.to_a.weight", "np.to_b.weight"}
    assert "teacher.mlp.gate.weight" in {n for n, p in random_teacher_model(20, SMALL, 3, train_mlp=True).named_parameters()
                                         if p.requires_grad}


def test_teacher_is_the_same_whatever_the_training_seed():
    torch.manual_seed(1)
    a = random_teacher_model(20, SMALL, np_rank=3)
    torch.manual_seed(2)
    b = random_teacher_model(20, SMALL, np_rank=3)
    torch.testing.assert_close(a.teacher.attn.q.weight, b.teacher.attn.q.weight)
    assert not torch.equal(a.np.down.weight, b.np.down.weight)


def test_training_container_checkpoints_the_step_and_the_gradient_norms():
    container = NPTTraining(random_teacher_model(20, SMALL, np_rank=3), num_terms=6)
    assert {"step", "ema_grad_norms"} <= set(container.state_dict())
