"""npt on a real (tiny) Hugging Face checkpoint through the loop, in this process (LocalSession;
the reporting and checkpoints are the same under Ray Train): the layer's hidden states computed
where the run trains, two epochs, the seed's monitoring and the teacher metrics reported."""

from losstune.trainables.config import merge
from losstune.trainables.registry import load_family
from losstune.trainables.engine.loop import train
from losstune.trainables.engine.session import LocalSession
from tests.hf_checkpoints import text_file, tiny_checkpoint
from tests.trainables.smoke_runs import smoke_config


def test_two_epochs_on_a_checkpoint_layer(tmp_path):
    folder = tiny_checkpoint(tmp_path / "llama")
    config = merge(smoke_config("npt"), {"model": {"checkpoint_dir": str(folder), "layer_index": 1},
                                         "data": {"path": str(text_file(tmp_path))},
                                         "train": {"epochs": 2, "checkpoint_every": 1}})
    session = LocalSession(str(tmp_path / "run"))
    train(load_family("npt"), config, session)
    metrics = session.reports[-1]
    assert metrics["epoch"] == 2 and metrics["stop_reason"] == ""
    assert [r["epoch"] for r in session.reports] == [1, 2] and all(session.checkpointed)
    for name in ("val/fidelity_mse", "val/plain_fidelity_mse", "val/attn_cosine", "val/scalar_var",
                 "health/scalar_var", "health/va_norm", "health/vb_norm", "health/fidelity_vs_plain",
                 "train/direct_mlp", "train/weighted/info_bottleneck", "train/decomposed"):
        assert metrics[name] == metrics[name], name  # reported, and not NaN
    assert 0 < metrics["val/fidelity_mse"] and metrics["health/va_norm"] > 0
