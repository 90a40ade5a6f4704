"""npt on a real (tiny) Hugging Face checkpoint through a real TorchTrainer: the layer's hidden
states computed in the worker, two epochs, the seed's monitoring and the teacher metrics reported."""

import pytest

from losstune.trainables.config import merge
from tests.hf_checkpoints import text_file, tiny_checkpoint
from tests.trainables.test_loop_integration import fit, seen, smoke_config

pytestmark = pytest.mark.integration


def test_two_epochs_on_a_checkpoint_layer(local_ray, tmp_path):
    folder = tiny_checkpoint(tmp_path / "llama")
    config = merge(smoke_config("npt"), {"model": {"checkpoint_dir": str(folder), "layer_index": 1},
                                         "data": {"path": str(text_file(tmp_path))},
                                         "train": {"epochs": 2, "checkpoint_every": 1}})
    result = fit("npt", config, tmp_path, "run", tmp_path / "epochs.jsonl")
    metrics = result.metrics
    assert result.error is None and metrics["epoch"] == 2 and metrics["stop_reason"] == ""
    assert [s["epoch"] for s in seen(tmp_path / "epochs.jsonl")] == [1, 2]
    for name in ("val/fidelity_mse", "val/plain_fidelity_mse", "val/attn_cosine", "val/scalar_var",
                 "health/scalar_var", "health/va_norm", "health/vb_norm", "health/fidelity_vs_plain",
                 "train/direct_mlp", "train/weighted/info_bottleneck", "train/decomposed"):
        assert metrics[name] == metrics[name], name  # reported, and not NaN
    assert 0 < metrics["val/fidelity_mse"] and metrics["health/va_norm"] > 0
