"""Bad input: one line naming the flag, field or file, exit status 2, before Ray starts, nothing
overwritten."""

import json

import numpy as np
import optuna
import pytest

from losstune.ray_jobs.core import cluster
from losstune.ray_jobs.core import plan as sweep_plan
from losstune.ray_jobs import sweep
from losstune.ray_jobs.cli import sweep_checks
from losstune.ray_jobs.cli import sweep_flags
from losstune.ray_jobs import train as train_job
from losstune.ray_jobs.core.usage import UsageError
from losstune.trainables.registry import FAMILIES


@pytest.fixture(autouse=True)
def ray_starts(monkeypatch):
    """Every call that would start or join Ray, recorded and refused: whether another test of the
    session has a Ray running or not, none of these commands may get that far."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("a refused command reached Ray's start")

    monkeypatch.setattr(cluster, "start_ray", refuse)
    monkeypatch.setattr(cluster, "start_local_ray", refuse)
    return calls


def run_sweep(capsys, tmp_path, *argv):
    try:
        code = sweep.main(["--storage", str(tmp_path / "results"), *argv])
    except SystemExit as exit_:  # argparse's own refusals (a flag's type)
        code = exit_.code
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.fixture
def bad_npz(tmp_path):
    path = tmp_path / "mismatched.npz"
    np.savez(path, input=np.ones((4, 7, 8, 8), np.float32), target=np.ones((4, 3, 4, 4), np.float32))
    return path


@pytest.mark.parametrize("argv, expected", [
    (["no_such_family"], "family is unknown: 'no_such_family'"),
    (["hdr_patch", "--space", "nope"], "--space: unknown space 'nope'"),
    (["hdr_patch", "--set", "loss.bogus=1"], "loss.bogus is not a config key"),
    (["hdr_patch", "--set", "loss.weights.sparsity=-1"], "loss.weights.sparsity must be >= 0.0, got -1.0"),
    (["hdr_patch", "--set", "caps.abs_max=0"], "caps.abs_max must be > 0.0, got 0.0"),
    (["hdr_patch", "--set", "train.mixed_precision=fp16"], "train.mixed_precision fp16 needs a GPU"),
    (["hdr_patch", "--data", "/nonexistent/patches.npz"], "/nonexistent/patches.npz: no such file"),
    (["hdr_patch", "--preset", "phase7"], "preset is unknown: 'phase7'"),
    (["hdr_patch", "--trials", "0"], "--trials: must be >= 1, got 0"),
    (["hdr_patch", "--startup-trials", "0"], "--startup-trials: must be >= 1, got 0"),
    (["hdr_patch", "--max-concurrent", "0"], "--max-concurrent: must be >= 1, got 0"),
    (["hdr_patch", "--keep-checkpoints", "0"], "--keep-checkpoints: must be >= 1, got 0"),
    (["hdr_patch", "--max-failures", "-2"], "--max-failures: must be >= -1, got -2"),
    (["hdr_patch", "--cpus-per-worker", "0"], "--cpus-per-worker: must be at least 0.0001 (Ray's resolution), got 0"),
    (["hdr_patch", "--gpus-per-worker", "-1"], "--gpus-per-worker: must be >= 0, got -1.0"),
    (["hdr_patch", "--driver-cpus", "-0.5"], "--driver-cpus: must be >= 0, got -0.5"),
    # a resumed sweep takes these flags from the command line, so they are checked there too
    (["hdr_patch", "--name", "mine", "--resume", "--keep-checkpoints", "0"], "--keep-checkpoints: must be >= 1"),
    (["hdr_patch", "--set", "novalue"], "--set: expected KEY=VALUE"),
    (["latent_conditioner", "--data", "/nonexistent/images"], "/nonexistent/images: no such directory"),
    (["latent_conditioner", "--set", "loss.adaptive=magic"], "loss.adaptive"),
    (["latent_conditioner", "--set", "augment.mixup_p=2"], "augment.mixup_p must be in [0.0, 1.0], got 2.0"),
    (["latent_conditioner", "--preset", "huge"], "preset is unknown: 'huge'"),
    (["hdr_patch", "--objective", "pareto"], "--objective: hdr_patch declares a single objective (val/log_l1)"),
    (["lgt", "--data", "/nonexistent/latents.npz"], "/nonexistent/latents.npz: no such file"),
    (["lgt", "--set", "data.num_styles=1"], "data.num_styles must be >= 2, got 1"),
    (["lgt", "--set", "flow.method=rk4"], "flow.method must be one of ['euler', 'midpoint']"),
    (["npt", "--data", "/nonexistent/corpus.txt"], "/nonexistent/corpus.txt: no such file"),
    (["npt", "--set", "model.checkpoint_dir=/models/llama"], "model.checkpoint_dir /models/llama: no such directory"),
    (["npt", "--set", "stages.curriculum_step2=10"], "stages.curriculum_step2 must be >= 500"),
    (["hdr_patch", "--search", "gp"], "--search gp: space 'caps' has categorical parameters (caps/clamp_enabled, "
                                      "caps/mode, model/adaptive_scaler"),
    (["hdr_patch", "--search", "gp"], "model/scale_per_channel), which GP cannot model; use --search optuna (TPE)"),
    (["npt", "--search", "cmaes", "--space", "weights"], "--search cmaes: space 'weights' has categorical parameters"),
    (["lgt", "--search", "prior"], "--search prior: piBO searches one objective; this family's are several"),
    (["hdr_patch", "--prior-confidence", "high"], "--prior-confidence: only --search prior has a prior (got --search optuna)"),
    (["hdr_patch", "--search", "random", "--startup", "random"], "--startup: TPE's start-up (--search optuna or "
                                                                 "optuna-grouped; got --search random)"),
    # non-finite numbers, as JSON parses them
    (["hdr_patch", "--set", "optim.lr=Infinity"], "optim.lr must be a finite number, got inf"),
    (["hdr_patch", "--set", "optim.lr=1e999"], "optim.lr must be a finite number, got inf"),
    (["hdr_patch", "--set", "caps.abs_max=Infinity"], "caps.abs_max must be a finite number, got inf"),
    (["hdr_patch", "--set", "loss.weights.log_supervision=NaN"], "loss.weights.log_supervision must be a finite"),
    (["hdr_patch", "--seed", "-1"], "--seed: must be >= 0, got -1"),
    (["hdr_patch", "--name", "../escaped"], "--name: must be a plain folder name inside --storage"),
    (["hdr_patch", "--name", "a/b"], "--name: must be a plain folder name inside --storage"),
    (["hdr_patch", "--name", ".."], "--name: must be a plain folder name inside --storage"),
    # a batch larger than the data: refused here, not inside a trial (Ray lost that error)
    (["hdr_patch", "--smoke-test", "--set", "train.batch_size=10000"],
     "train.batch_size 10000 (the sweep's config) is larger than the training set"),
    (["lgt", "--smoke-test", "--space", "caps"], "train.batch_size 240 (--space caps samples it) is larger than"),
    (["hdr_patch", "--scheduler", "pbt"], "--scheduler pbt: space 'caps' is define-by-run (branches), which PBT "
                                          "cannot mutate; use a space of distributions, e.g. --space schedule"),
    (["hdr_patch", "--scheduler", "pb2", "--space", "schedule", "--search", "gp"],
     "--search gp: --scheduler pb2 samples its first population at random"),
    (["hdr_patch", "--scheduler", "pbt", "--space", "schedule", "--warm-start", "/an/earlier/sweep"],
     "--warm-start: --scheduler pbt has no Optuna study to give earlier trials to"),
    (["hdr_patch", "--scheduler", "pbt", "--space", "schedule", "--confirm-top", "2"],
     "--confirm-top: a pbt trial followed a schedule that changed mid-run"),
    (["hdr_patch", "--population-sync"], "--population-sync: only --scheduler pbt or pb2 perturb a population, "
                                          "got --scheduler asha"),
    (["hdr_patch", "--confirm-top", "-1"], "--confirm-top: must be >= 0, got -1"),
    (["hdr_patch", "--confirm-seeds", "1"], "--confirm-seeds: must be >= 2, got 1"),
    (["hdr_patch", "--confirm-seeds", "auto", "--max-seeds", "2"], "--max-seeds: must be >= 3, got 2"),
    (["hdr_patch", "--config", "/nonexistent/best_config.json"],
     "--config: /nonexistent/best_config.json: No such file or directory"),
    # issue 55, items 10-12: bounds, names and resources that Ray, Optuna or the file system refused late
    (["hdr_patch", "--seed", "4294967296"], "--seed: must be <= 4,294,967,295, got 4,294,967,296"),
    (["hdr_patch", "--trials", "99999999999999999999"], "--trials: must be <= 100,000"),
    (["hdr_patch", "--epochs", "1000000000000"], "--epochs: must be <= 1,000,000"),
    (["hdr_patch", "--min-free-mb", "-5"], "--min-free-mb: must be >= 0, got -5"),
    (["hdr_patch", "--min-free-mb", "1e12"], "--min-free-mb: 1e+12 MB is more than the disk of"),
    (["hdr_patch", "--name", "ab\ncd"], "--name: must not hold control characters"),
    (["hdr_patch", "--name", "n" * 300], "--name: 300 bytes long; at most 200"),
    (["hdr_patch", "--workers-per-trial", "64"], "--workers-per-trial: 64 workers and the driver need"),
    (["hdr_patch", "--gpus-per-worker", "2"], "--gpus-per-worker: 2 GPU per worker, this machine has 0"),
    (["hdr_patch", "--cpus-per-worker", "100"], "--cpus-per-worker: 100 CPUs per worker, this machine has"),
    (["hdr_patch", "--driver-cpus", "16"], "--driver-cpus: 16 CPUs per trial's driver, this machine has"),
    # issue 73, item 15: NaN resources hung Ray's scheduler or failed inside Tune; a share Ray rounds to 0
    (["hdr_patch", "--cpus-per-worker", "nan"], "argument --cpus-per-worker: expected a finite number, got 'nan'"),
    (["hdr_patch", "--gpus-per-worker", "nan"], "argument --gpus-per-worker: expected a finite number, got 'nan'"),
    (["hdr_patch", "--driver-cpus", "nan", "--worker-group"], "argument --driver-cpus: expected a finite number"),
    (["hdr_patch", "--min-free-mb", "nan"], "argument --min-free-mb: expected a finite number, got 'nan'"),
    (["hdr_patch", "--cpus-per-worker", "1e-9"], "--cpus-per-worker: must be at least 0.0001 (Ray's resolution)"),
    (["hdr_patch", "--gpus-per-worker", "1e-9"], "--gpus-per-worker: must be 0 or at least 0.0001"),
    # issue 73, item 17: an empty value (an unset shell variable) is not "not given": --data '' trained
    # on the embedded synthetic data
    *[(["hdr_patch", flag, ""], f"argument {flag}: empty (an unset shell variable?)")
      for flag in ("--data", "--config", "--enqueue", "--warm-start", "--preset", "--space")],
    # issue 73, item 27: PBT ranked a Pareto family by one objective without a word
    (["lgt", "--scheduler", "pbt", "--space", "schedule"], "--objective: --scheduler pbt ranks its population by one "
                                                           "objective and lgt declares several; give --objective scalar"),
    # issue 73, item 21: storage URIs pyarrow cannot open were tracebacks
    (["hdr_patch", "--storage", "ftp://host/x"], "--storage: 'ftp://host/x': no store for 'ftp://'"),
    (["hdr_patch", "--storage", "s3://"], "--storage: 's3://' names no bucket, e.g. s3://my-bucket/losstune"),
    (["hdr_patch", "--storage", "s3:///x"], "--storage: 's3:///x' names no bucket"),
    # issue 73, item 18: a held-out file alone was ignored (synthetic data trained), a missing one a traceback
    (["hdr_patch", "--set", "data.val_path=/nonexistent.npz"],
     "data.val_path is set (/nonexistent.npz) but data.path is not: a held-out set is read beside the training data"),
    # issue 73, item 23: an MLflow traceback after Ray started
    (["hdr_patch", "--mlflow", "bogus://x"], "--mlflow: 'bogus://x': MLflow has no tracking store for 'bogus://'"),
    # the default 10 epochs: ASHA's first rung, or PBT's first perturbation, would never come
    (["hdr_patch", "--grace-epochs", "11"], "--grace-epochs: 11 is more than the 10 epochs a trial runs (train.epochs); "
                                            "give at most 10"),
])
def test_bad_input_exits_2_with_one_line(ray_starts, capsys, tmp_path, argv, expected):
    if "--driver-cpus" in argv or "--cpus-per-worker" in argv:
        assert (__import__("os").cpu_count() or 1) < 16  # the machine these cases assume: fewer cores
    code, err = run_sweep(capsys, tmp_path, *argv)
    assert code == 2
    assert expected in err and len(err.splitlines()) == 1
    assert not ray_starts
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    from tests.hf_checkpoints import text_file, tiny_checkpoint

    folder = tmp_path_factory.mktemp("hf")
    return tiny_checkpoint(folder / "llama"), text_file(folder)


@pytest.mark.parametrize("breaks, flags, expected", [
    ("", ["--set", "model.layer_index=7"], r"model.layer_index 7 is out of range: .* has 3 layers \(0 to 2\)"),
    ("", ["--set", "data.seq_len=100"], r"data.seq_len 100 is longer than .*max_position_embeddings 64"),
    ("model_type", [], r"architecture 'gpt_neox' is not supported \(supported: llama, mistral, qwen2"),
    ("tokenizer.json", [], r"no tokenizer: none of tokenizer.json, tokenizer.model, vocab.json"),
    ("config.json", [], r"copy: no config.json: not a Hugging Face checkpoint folder"),
    ("", ["--set", "data.path="], r"error: data.path: a model.checkpoint_dir layer trains on real text"),
])
def test_a_bad_checkpoint_exits_2_with_one_line(ray_starts, capsys, tmp_path, hf_folder, breaks, flags, expected):
    import re
    import shutil

    folder, text = hf_folder
    if breaks:
        folder = shutil.copytree(folder, tmp_path / "copy")
        if breaks == "model_type":
            config = json.loads((folder / "config.json").read_text())
            (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt_neox"}))
        else:
            (folder / breaks).unlink()
    data = [] if "data.path=" in flags else ["--data", str(text)]  # the synthetic data, set as a config key
    code, err = run_sweep(capsys, tmp_path, "npt", "--smoke-test", *data, "--set", f"model.checkpoint_dir={folder}",
                          *flags)
    assert code == 2 and len(err.splitlines()) == 1 and not ray_starts
    assert re.search(expected, err), err


def test_gp_and_cmaes_refuse_a_space_with_branches_and_take_a_continuous_one():
    def branching(trial):
        if trial.suggest_float("a", 0.0, 1.0) > 0.5:
            trial.suggest_float("b", 0.0, 1.0)

    with pytest.raises(UsageError, match=r"--search cmaes: space 'mine' has parameters that only some points have "
                                         r"\(b\), which CMA-ES cannot model"):
        sweep_checks.check_search_fits_space("cmaes", branching, "mine")
    sweep_checks.check_search_fits_space("gp", lambda trial: trial.suggest_float("a", 0.0, 1.0), "mine")
    plan = sweep_flags.make_plan(sweep_flags.parse_args(["latent_conditioner", "--search", "gp", "--space", "weights",
                                                         "--smoke-test"]))
    assert plan.search == "gp"


def test_the_prior_search_and_tpes_start_up_are_part_of_the_plan(monkeypatch):
    from losstune.ray_jobs.search import tuning
    from losstune.ray_jobs.search.branch_fair import BranchFairTPESampler
    from losstune.ray_jobs.search.prior_search import PriorSampler

    plan = sweep_flags.make_plan(sweep_flags.parse_args(["hdr_patch", "--search", "prior", "--prior-confidence", "high",
                                                         "--space", "all", "--smoke-test", "--trials", "20"]))
    assert (plan.search, plan.prior_confidence) == ("prior", "high")
    sampler = tuning.make_sampler(plan)
    assert isinstance(sampler, PriorSampler)
    mode = sampler.coded["caps/mode"].hyperparameter  # hdr_patch's documented default: cap mode A
    assert list(mode.weights) == [6.0, 1.0] and "caps/log_delta_scale" in sampler.coded  # mode B's, flat
    tpe = sweep_flags.make_plan(sweep_flags.parse_args(["hdr_patch", "--smoke-test"]))
    assert tpe.startup == "fair" and isinstance(tuning.make_sampler(tpe), BranchFairTPESampler)
    plain = sweep_flags.make_plan(sweep_flags.parse_args(["hdr_patch", "--smoke-test", "--startup", "random"]))
    assert type(tuning.make_sampler(plain)) is optuna.samplers.TPESampler


def test_corrupt_and_mismatched_data_files(capsys, tmp_path, bad_npz):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"\x00garbage")
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, input=np.array([{"a": 1}], dtype=object), target=np.ones((1, 3, 4, 4)))
    truncated = tmp_path / "truncated.npz"
    np.savez(truncated, input=np.ones((4, 7, 8, 8), np.float32), target=np.ones((4, 3, 8, 8), np.float32))
    truncated.write_bytes(truncated.read_bytes()[:300])
    for path, expected in ((corrupt, "corrupt, truncated or not an .npz archive"),
                           (truncated, "corrupt, truncated or not an .npz archive"),
                           (pickled, "holds object arrays (pickled Python objects), which are never loaded"),
                           (bad_npz, "differ in N, H or W")):
        code, err = run_sweep(capsys, tmp_path, "hdr_patch", "--data", str(path))
        assert code == 2 and str(path) in err and expected in err and len(err.splitlines()) == 1
        assert "allow_pickle" not in err and "unsafe" not in err  # never advise unsafe loading


def test_existing_sweep_name_is_refused_and_left_alone(capsys, tmp_path):
    existing = tmp_path / "results" / "mine"
    existing.mkdir(parents=True)
    (existing / "trials.parquet").write_bytes(b"precious")
    code, err = run_sweep(capsys, tmp_path, "hdr_patch", "--name", "mine")
    assert code == 2 and "--name: sweep 'mine' already exists" in err
    assert (existing / "trials.parquet").read_bytes() == b"precious"
    code, err = run_sweep(capsys, tmp_path, "hdr_patch", "--name", "other", "--resume")
    assert code == 2 and "--resume: no sweep 'other'" in err


@pytest.mark.parametrize("flag, value, expected", [
    ("--epochs", "0", "--epochs: must be >= 1, got 0"),
    ("--workers", "0", "--workers: must be >= 1, got 0"),  # Ray would run its local mode instead
    ("--cpus-per-worker", "0", "--cpus-per-worker: must be at least 0.0001 (Ray's resolution), got 0"),
    ("--gpus-per-worker", "-1", "--gpus-per-worker: must be >= 0, got -1.0"),
    ("--keep-checkpoints", "0", "--keep-checkpoints: must be >= 1, got 0"),
    ("--max-failures", "-2", "--max-failures: must be >= -1, got -2"),
])
def test_train_job_refuses_bad_counts_before_ray_starts(ray_starts, capsys, tmp_path, flag, value, expected):
    assert train_job.main(["hdr_patch", flag, value, "--storage", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1
    assert not ray_starts
    assert not (tmp_path / "results").exists()


def test_train_job_bad_input(capsys, tmp_path):
    assert train_job.main(["hdr_patch", "--set", "caps.alpha=-2", "--storage", str(tmp_path)]) == 2
    assert "caps.alpha must be > 0.0" in capsys.readouterr().err
    assert train_job.main(["hdr_patch", "--config", str(tmp_path / "absent.json")]) == 2
    assert "--config:" in capsys.readouterr().err


@pytest.mark.parametrize("content, expected", [
    ("[1, 2]", "must hold a JSON object of config sections, got list"),
    ("null", "must hold a JSON object of config sections, got NoneType"),
    ('{"caps": ', "not a JSON file (Expecting value: line 1 column 10 (char 9))"),
    (b"PK\x03\x04\xb9", "not a JSON file ('utf-8' codec can't decode byte 0xb9"),  # an .npz given by mistake
])
def test_train_job_refuses_a_config_file_that_is_no_object(ray_starts, capsys, tmp_path, content, expected):
    config = tmp_path / "best_config.json"
    config.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert train_job.main(["hdr_patch", "--config", str(config), "--storage", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(config) in err and expected in err and len(err.splitlines()) == 1
    assert not ray_starts


@pytest.mark.parametrize("argv, expected", [
    (["--name", "../escaped"], "--name: must be a plain folder name inside --storage"),
    (["--set", "train.batch_size=100000"], "train.batch_size 100000 (the run's config) is larger than the training set"),
])
def test_train_job_refuses_names_and_batches_before_ray_starts(ray_starts, capsys, tmp_path, argv, expected):
    assert train_job.main(["hdr_patch", *argv, "--storage", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1
    assert not ray_starts and not (tmp_path / "results").exists()


def test_analyze_refuses_a_negative_top(capsys, tmp_path):
    from losstune.ray_jobs import analyze

    assert analyze.main([str(tmp_path), "--top", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--top: must be >= 1, got -1" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("meta, expected", [
    (None, "not a losstune sweep (no losstune_sweep.json)"),
    ('{"family": ', "losstune_sweep.json: corrupt (JSONDecodeError"),
    ("[1]", "losstune_sweep.json: not a losstune sweep definition (missing family"),
    ('{"family": "hdr_patch"}', "not a losstune sweep definition (missing space, objective"),
])
def test_analyze_refuses_a_folder_that_is_no_readable_sweep(capsys, tmp_path, meta, expected):
    from losstune.ray_jobs import analyze

    if meta is not None:
        (tmp_path / "losstune_sweep.json").write_text(meta)
    assert analyze.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_analyze_before_tunes_first_snapshot_says_so(capsys, tmp_path):
    from losstune.ray_jobs import analyze

    meta = {"family": "hdr_patch", "space": "caps", "objective": {"metric": "val/log_l1", "mode": "min"},
            "default_point": {}, "epochs": 2, "trials": 2, "base": {}}
    (tmp_path / "losstune_sweep.json").write_text(json.dumps(meta))
    assert analyze.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no Tune experiment state yet" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["losstune_sweep.json"]  # nothing written


@pytest.fixture(scope="module")
def written_sweep(tmp_path_factory):
    """A sweep folder written without Ray (tests/ray_jobs/sweep_folder.py), with a Tune state
    file that parses: analyze reads Tune's files only after every check. Copy it before damage."""
    from tests.ray_jobs.sweep_folder import write_sweep

    folder = tmp_path_factory.mktemp("written") / "caps"
    write_sweep(folder)
    (folder / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    return folder


def damage(path, how: str) -> None:
    if how == "delete":
        path.unlink()
    else:  # 0 bytes, or bytes that are no JSON, Parquet or journal record
        path.write_bytes(b"" if how == "empty" else b"\x00garbage{[" * 10)


@pytest.mark.parametrize("target, how, expected", [
    ("experiment_state-2026-01-01_00-00-00.json", "empty", "Tune's experiment state is damaged (JSONDecodeError"),
    ("experiment_state-2026-01-01_00-00-00.json", "garbage", "Tune's experiment state is damaged (JSONDecodeError"),
    ("optuna_study.journal", "empty", "the Optuna journal holds no study"),  # issue 73: an IndexError
    ("optuna_study.journal", "garbage", "the Optuna journal holds no study"),
    ("confirm_top1_seeds3/confirm.parquet", "garbage", "not a readable confirmation table (ArrowInvalid"),
    ("confirm_top1_seeds3/confirm.parquet", "delete", "not a readable confirmation table (FileNotFoundError"),
    ("confirm_top1_seeds3/confirm_summary.parquet", "empty", "not a readable confirmation summary (ArrowInvalid"),
    ("confirm_top1_seeds3/confirmation.txt", "delete", "not a readable confirmation report (FileNotFoundError"),
])
def test_analyze_of_a_damaged_sweep_names_the_file_before_writing_anything(capsys, tmp_path, written_sweep, target,
                                                                           how, expected):
    # issue 73, item 20: these gave tracebacks (an IndexError for the journal) after analyze had
    # started rewriting the folder
    import shutil

    from losstune.ray_jobs import analyze

    folder = tmp_path / "caps"
    shutil.copytree(written_sweep, folder)
    damage(folder / target, how)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    assert analyze.main([str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and str(folder / target) in err and len(err.splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before  # nothing written


def test_resume_of_a_sweep_with_a_corrupt_definition_is_refused(capsys, tmp_path):
    folder = tmp_path / "results" / "mine"
    folder.mkdir(parents=True)
    (folder / "losstune_sweep.json").write_text("{")
    code, err = run_sweep(capsys, tmp_path, "--resume", "--name", "mine")
    assert code == 2 and "--resume: " in err and "losstune_sweep.json: corrupt" in err and len(err.splitlines()) == 1


def as_started(folder):
    """What a started sweep's folder holds besides its definition, which --resume needs: Tune's
    state and the Optuna study's journal (empty stand-ins: --resume checks they are there)."""
    for name in ("tuner.pkl", "experiment_state-2026-11-29_00-00-00.json", "optuna_study.journal"):
        (folder / name).write_text("")


@pytest.fixture
def saved_sweep(tmp_path):
    """A sweep's saved definition, as a first run writes it (smoke-test, 4 trials of 6 epochs)."""
    from losstune.ray_jobs.results.tables import META_FILE
    from losstune.trainables.registry import load_family

    args = sweep_flags.parse_args(["hdr_patch", "--smoke-test", "--trials", "4", "--epochs", "6", "--name", "s1",
                             "--storage", str(tmp_path / "results")])
    plan = sweep_flags.make_plan(args)
    (tmp_path / "results" / "s1").mkdir(parents=True)
    (tmp_path / "results" / "s1" / META_FILE).write_text(json.dumps(sweep_plan.metadata(plan)))
    as_started(tmp_path / "results" / "s1")
    assert plan.base["train"]["epochs"] == 6 and load_family("hdr_patch").smoke
    return tmp_path


@pytest.mark.parametrize("argv, expected", [
    (["lgt"], "FAMILY: sweep 's1' was started with 'hdr_patch', got 'lgt'"),
    (["--space", "schedule"], "--space: sweep 's1' was started with 'caps', got 'schedule'"),
    (["--trials", "8"], "--trials: sweep 's1' has not finished its 4 trials; resume it without --trials first"),
    (["--seed", "3"], "--seed: sweep 's1' was started with 0, got 3"),
    (["--epochs", "9"], "--epochs: train.epochs differs from the config sweep 's1' was started with"),
    (["--set", "optim.lr=0.1"], "--set: optim.lr differs from the config sweep 's1' was started with"),
    (["--scheduler", "none"], "--scheduler: sweep 's1' was started with 'asha', got 'none'"),
    (["--population-sync"], "--population-sync: sweep 's1' was started with False, got True"),
])
def test_resume_refuses_flags_that_change_the_sweep(capsys, saved_sweep, argv, expected):
    code, err = run_sweep(capsys, saved_sweep, *argv, "--resume", "--name", "s1")
    assert code == 2 and expected in err and len(err.splitlines()) == 1


def test_resume_accepts_the_flags_it_was_started_with_and_new_resources(saved_sweep):
    args = sweep_flags.parse_args(["hdr_patch", "--smoke-test", "--trials", "4", "--epochs", "6", "--resume", "--name", "s1",
                             "--cpus-per-worker", "0.5", "--storage", str(saved_sweep / "results")])
    plan = sweep_flags.make_plan(args)
    assert plan.trials == 4 and plan.resources.cpus_per_worker == 0.5
    # --smoke-test again without the --epochs that overrode its sizes: the same sweep (the multinode
    # driver-kill test resumes so, and this was refused as "--epochs: train.epochs differs")
    again = sweep_flags.make_plan(sweep_flags.parse_args(["hdr_patch", "--smoke-test", "--resume", "--name", "s1",
                                              "--storage", str(saved_sweep / "results")]))
    assert again.base["train"]["epochs"] == 6 and again.smoke_test


def test_resume_keeps_where_the_trials_train_because_their_checkpoints_are_there(capsys, saved_sweep):
    # the saved sweep's one-worker trials train in their own process, their checkpoints Tune's
    code, err = run_sweep(capsys, saved_sweep, "--resume", "--name", "s1", "--workers-per-trial", "2")
    assert code == 2 and "--workers-per-trial: this sweep's trials train in their own process" in err
    code, err = run_sweep(capsys, saved_sweep, "--resume", "--name", "s1", "--worker-group")
    assert code == 2 and "--worker-group: this sweep's trials train in their own process; --resume keeps that" in err


def finish(saved_sweep) -> None:
    from losstune.ray_jobs.results.tables import META_FILE

    path = saved_sweep / "results" / "s1" / META_FILE
    path.write_text(json.dumps(json.loads(path.read_text()) | {"finished": True}))


def test_resume_with_more_trials_extends_a_finished_sweep_by_a_run_of_its_own(saved_sweep):
    finish(saved_sweep)
    plan = sweep_flags.make_plan(sweep_flags.parse_args(["--resume", "--name", "s1", "--trials", "6",
                                                         "--storage", str(saved_sweep / "results")]))
    assert (plan.trials, plan.extend_by, plan.extensions) == (6, 2, ["extend1"])
    assert plan.tune_run() == (plan.experiment, "extend1")  # a Tune run inside the sweep's folder


def test_resume_cannot_shrink_a_finished_sweep(capsys, saved_sweep):
    finish(saved_sweep)
    code, err = run_sweep(capsys, saved_sweep, "--resume", "--name", "s1", "--trials", "2")
    assert code == 2 and "--trials: sweep 's1' ran 4 trials; --trials with --resume can only add to them, got 2" in err


def test_resume_refuses_smoke_test_for_a_sweep_started_without_it(capsys, tmp_path):
    from losstune.ray_jobs.results.tables import META_FILE

    plan = sweep_flags.make_plan(sweep_flags.parse_args(["hdr_patch", "--name", "full", "--storage", str(tmp_path / "results")]))
    (tmp_path / "results" / "full").mkdir(parents=True)
    (tmp_path / "results" / "full" / META_FILE).write_text(json.dumps(sweep_plan.metadata(plan)))
    as_started(tmp_path / "results" / "full")
    code = sweep.main(["--smoke-test", "--resume", "--name", "full", "--storage", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and "--smoke-test: sweep 'full' was started with False, got True" in err


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs, read-write or read-only, where this machine lets the tests mount one (root
    in a container that allows it); skipped elsewhere."""
    import subprocess

    mounted = []

    def mount(options: str):
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=1m,{options}", "tmpfs", str(point)],
                              capture_output=True)
        if done.returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], capture_output=True)


def test_storage_that_cannot_be_written_is_refused_before_ray_starts(ray_starts, capsys, tmp_path, small_disk):
    afile = tmp_path / "afile"
    afile.write_text("x")
    full = small_disk("rw")
    (full / "filler").write_bytes(b"\0" * (1 << 20))  # fills it: the probe finds no space
    cases = [(str(afile / "results"), "is a file, not a folder"),
             (str(tmp_path / "not_mounted" / "results"), "does not exist (a disk or share not mounted?)"),
             (str(small_disk("ro") / "results"), "Read-only file system"),
             (str(full / "results"), "No space left on device")]
    for storage, expected in cases:
        code = sweep.main(["hdr_patch", "--storage", storage])
        err = capsys.readouterr().err.strip()
        assert code == 2 and f"--storage: cannot write to {storage}" in err and expected in err, err
        assert len(err.splitlines()) == 1
    assert not ray_starts and not (tmp_path / "not_mounted").exists()


def test_list_names_every_family_space_and_preset_without_starting_ray(capsys, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("--list started Ray"))
    assert sweep.main(["--list"]) == 0
    out = capsys.readouterr().out
    for family in FAMILIES:
        assert out.count(f"{family}: objective") == 1
    assert "--space caps (default): caps.mode" in out and "--preset: phase1, phase2" in out


def test_print_config_gives_every_key_its_default_and_its_seed_section(capsys):
    assert train_job.main(["--print-config", "hdr_patch"]) == 0
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["caps.abs_max"] == ["16.0", "seed 1.4 current log_delta_abs_max"]
    assert rows["model.channels"][0] == "[16,"  # a tuple, shown as the JSON list --set takes
    # every key of the config is listed, nested sections included
    from losstune.trainables.config import to_dict
    from losstune.trainables.registry import load_family
    from losstune.trainables.config import flatten

    assert set(rows) == {k.replace("/", ".") for k in flatten(to_dict(load_family("hdr_patch").config_class()))}


def test_print_config_after_the_family_too(capsys):
    # `losstune-sweep npt --print-config` failed with "expected one argument"
    assert sweep.main(["npt", "--print-config"]) == 0 and sweep.main(["--print-config", "npt"]) == 0
    first, second = capsys.readouterr().out.split("npt: every key")[1:]
    assert first == second and "loss." in first


def test_help_shows_the_whole_description_and_the_defaults(capsys):
    with pytest.raises(SystemExit):
        sweep.main(["--help"])
    words = " ".join(capsys.readouterr().out.split())  # whatever the terminal's width
    assert "is always the first trial. Results land beside Tune's files in <storage>/<name>/." in words
    assert "--trials TRIALS trials in all, the documented default first (default: 8)" in words


@pytest.mark.parametrize("family_name", list(FAMILIES))
def test_every_term_switch_names_a_weight_and_a_boolean_of_the_config(family_name):
    from losstune.trainables.config import get_path
    from losstune.trainables.registry import load_family

    family = load_family(family_name)
    config = family.config_class()
    for weight, switch in family.term_switches.items():
        assert isinstance(get_path(config, weight), float) and isinstance(get_path(config, switch), bool)


def test_a_space_tuning_the_weights_of_terms_that_are_off_is_named_in_one_line():
    from losstune.search_spaces import sample_points
    from losstune.trainables.family_api import make_config
    from losstune.trainables.registry import load_family

    family = load_family("latent_conditioner")
    spaces = load_family("latent_conditioner").spaces

    def inert(space, overrides=None):
        return sweep_plan.inert_weights(family, make_config(family, overrides or {}), sample_points(spaces[space], 32))

    # the default `weights` space samples six weights of four enhancements that are all off
    assert inert("weights").count("loss.weights.") == 6
    robust_on = inert("weights", {"loss": {"enhancements": {"robust": True}}})
    assert "loss.weights.mae" not in robust_on and "loss.weights.spectral" in robust_on
    assert inert("enhancements") == ""  # it samples each weight only with its switch on
    assert inert("schedule") == ""  # no weights at all


def test_setting_a_key_the_space_searches_is_warned_about(capsys, tmp_path):
    config = tmp_path / "c.json"
    config.write_text('{"model": {"output_norm": true}}')  # a base config (an earlier best) is no pin
    argv = ["hdr_patch", "--space", "caps", "--storage", str(tmp_path), "--smoke-test"]
    plan = sweep_flags.make_plan(sweep_flags.parse_args([*argv, "--set", "caps.mode=B", "--config", str(config)]))
    err = capsys.readouterr().err
    assert "--space caps searches caps.mode: --set gives it for the first (default) trial only" in err
    assert plan.default_point["caps/mode"] == "B"  # the default trial does take it
    sweep_flags.make_plan(sweep_flags.parse_args([*argv, "--set", "train.epochs=2", "--name", "other"]))
    assert "searches" not in capsys.readouterr().err  # caps does not search train.epochs


@pytest.mark.parametrize("content, expected", [
    ('{"caps": {"bogus": 1}}', "caps.bogus is not a config key"),
    ('[1, 2]', "must hold a JSON object of config sections, got list"),
    ('{"caps": ', "--config: "),
])
def test_a_bad_base_config_is_one_line_naming_it(ray_starts, capsys, tmp_path, content, expected):
    path = tmp_path / "base.json"
    path.write_text(content)
    code, err = run_sweep(capsys, tmp_path, "hdr_patch", "--config", str(path))
    assert code == 2 and expected in err and len(err.splitlines()) == 1
    assert not ray_starts and not (tmp_path / "results").exists()


def test_a_sweep_starts_from_a_base_config_with_set_on_top(tmp_path):
    # an earlier sweep's best caps as the base; --set on top of it wins
    path = tmp_path / "best_config.json"
    path.write_text(json.dumps({"caps": {"mode": "B", "log_delta_scale": 0.5}, "optim": {"lr": 0.01}}))
    plan = sweep_flags.make_plan(sweep_flags.parse_args(["hdr_patch", "--space", "weights", "--config", str(path),
                                                         "--set", "optim.lr=0.002", "--storage", str(tmp_path)]))
    assert plan.base["caps"] == {"mode": "B", "log_delta_scale": 0.5} and plan.base["optim"]["lr"] == 0.002
    with pytest.raises(UsageError, match="--config: a resumed sweep keeps what it was started with"):
        sweep_flags.make_plan(sweep_flags.parse_args(["hdr_patch", "--config", str(path), "--resume", "--name", "x",
                                                      "--storage", str(tmp_path)]))


def test_an_empty_storage_is_refused_and_nothing_written_in_the_current_folder(ray_starts, capsys, tmp_path,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sweep.main(["hdr_patch", "--storage", ""]) == 2
    assert capsys.readouterr().err.strip() == "sweep: error: --storage: is empty; give a folder (default ./results) or a URI"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("address, expected", [
    ("not_an_address", "RAY_ADDRESS: 'not_an_address' is not host:port, ray://host:port or auto"),
    ("127.0.0.1:1", "RAY_ADDRESS: nothing answers at 127.0.0.1:1"),
    ("  ", "RAY_ADDRESS: set but blank ('  '); unset it for a local Ray"),  # was exit 4 after 3 tries
])
def test_a_bad_ray_address_is_one_line_before_ray_starts(ray_starts, capsys, tmp_path, monkeypatch, address, expected):
    monkeypatch.setenv("RAY_ADDRESS", address)
    code, err = run_sweep(capsys, tmp_path, "hdr_patch")
    assert code == 2 and expected in err and len(err.splitlines()) == 1 and not ray_starts
    assert not (tmp_path / "results").exists()  # nothing written (an empty storage folder was left)


def test_a_ray_tmpdir_that_is_a_file_is_named_not_blamed_on_load(ray_starts, capsys, tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "a_file" / "ray"))
    code, err = run_sweep(capsys, tmp_path, "hdr_patch")
    assert code == 2 and err == f"sweep: error: RAY_TMPDIR: {tmp_path / 'a_file'} is not a folder" and not ray_starts
    assert not (tmp_path / "results").exists()


def test_a_fifo_as_config_or_data_is_named_not_waited_on(ray_starts, capsys, tmp_path):
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, err = run_sweep(capsys, tmp_path, "hdr_patch", "--config", str(fifo))
    assert code == 2 and err == f"sweep: error: --config: {fifo} is not a regular file (a FIFO, a device or a folder)"
    code, err = run_sweep(capsys, tmp_path, "hdr_patch", "--data", str(fifo))
    assert code == 2 and err == f"sweep: error: --data: {fifo} is neither a file nor a folder (a FIFO or a device)"
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    code, err = run_sweep(capsys, tmp_path, "hdr_patch", "--data", str(loop))
    assert code == 2 and "(a broken or looping symbolic link)" in err


def test_another_familys_config_file_is_named_with_its_file(ray_starts, capsys, tmp_path):
    other = tmp_path / "best_config.json"
    other.write_text(json.dumps({"data": {"num_styles": 4}}))  # an lgt key
    code, err = run_sweep(capsys, tmp_path, "hdr_patch", "--config", str(other))
    assert code == 2 and err.startswith(f"sweep: error: --config: {other} is not a hdr_patch config: data.num_styles")


def test_an_argparse_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        sweep_flags.parse_args(["hdr_patch", "--trials", "many"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("losstune-sweep: error: argument --trials: invalid int value: 'many'")


@pytest.mark.parametrize("levels, expected", [(5000, "not a JSON file (nested too deep to read)"),
                                              (20, "nested more than 16 levels deep")])
@pytest.mark.parametrize("flag", ["--config", "--enqueue"])
def test_a_deeply_nested_json_file_is_one_line_not_a_recursion_error(ray_starts, capsys, tmp_path, flag, levels,
                                                                   expected):
    path = tmp_path / "deep.json"
    path.write_text('{"a":' * levels + "1" + "}" * levels if flag == "--config" else "[" * levels + "]" * levels)
    code, err = run_sweep(capsys, tmp_path, "hdr_patch", flag, str(path))
    assert code == 2 and err == f"sweep: error: {flag}: {path}: {expected}" + (
        "; a config's sections nest 2-4" if levels == 20 else "")
    assert not ray_starts and not (tmp_path / "results").exists()


def test_resume_runs_the_confirmation_the_sweep_was_started_with(tmp_path):
    # a sweep started with --confirm-top 0 and resumed ran the default confirmation (top 3 x 5 seeds)
    from losstune.ray_jobs.results.tables import META_FILE

    start = ["hdr_patch", "--smoke-test", "--name", "c0", "--storage", str(tmp_path / "results")]
    plan = sweep_flags.make_plan(sweep_flags.parse_args([*start, "--confirm-top", "0", "--confirm-seeds", "auto",
                                                         "--max-seeds", "9", "--min-effect", "0.05"]))
    (tmp_path / "results" / "c0").mkdir(parents=True)
    (tmp_path / "results" / "c0" / META_FILE).write_text(json.dumps(sweep_plan.metadata(plan)))
    as_started(tmp_path / "results" / "c0")
    resumed = sweep_flags.make_plan(sweep_flags.parse_args([*start, "--resume"]))
    assert (resumed.confirm_top, resumed.confirm_seeds, resumed.max_seeds, resumed.min_effect) == (0, "auto", 9, "0.05")
    # a flag given with --resume takes the saved setting's place
    changed = sweep_flags.make_plan(sweep_flags.parse_args([*start, "--resume", "--confirm-top", "2"]))
    assert (changed.confirm_top, changed.confirm_seeds) == (2, "auto")


@pytest.mark.parametrize("removed, expected", [
    ("experiment_state-2026-11-29_00-00-00.json", "lacks experiment_state-*.json: Tune cannot resume the sweep as it was"),
    ("tuner.pkl", "lacks tuner.pkl: Tune cannot resume the sweep as it was"),
    ("optuna_study.journal", "optuna_study.journal is missing: the Optuna study cannot resume"),
])
def test_resume_of_a_sweep_missing_what_restores_it_is_refused(ray_starts, capsys, saved_sweep, removed, expected):
    # without its experiment state Tune started afresh and rewrote the results, exit 0; without
    # tuner.pkl or the journal a traceback came after Ray started
    (saved_sweep / "results" / "s1" / removed).unlink()
    code, err = run_sweep(capsys, saved_sweep, "hdr_patch", "--smoke-test", "--resume", "--name", "s1")
    assert code == 2 and expected in err and len(err.splitlines()) == 1 and not ray_starts


def test_a_store_that_never_answers_is_one_line_within_its_time(ray_starts, capsys, tmp_path, monkeypatch):
    # gs:// without credentials hung until killed: here an S3 endpoint on loopback that takes the
    # connection and never answers, and a 1 s bound in place of 20 s
    import socket
    import time

    from losstune.ray_jobs.cli import flags
    from tests.s3_server import CREDENTIALS

    monkeypatch.setattr(flags, "STORAGE_TIMEOUT_S", 1)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    started = time.monotonic()
    code, err = run_sweep(capsys, tmp_path, "hdr_patch", "--storage",
                          f"s3://bucket/x?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1")
    silent.close()
    assert code == 2 and "did not answer in 1 s (credentials? network?)" in err and len(err.splitlines()) == 1
    assert time.monotonic() - started < 15 and not ray_starts


def test_a_missing_or_unreadable_held_out_file_is_one_line(ray_starts, capsys, tmp_path):
    good, garbage = tmp_path / "train.npz", tmp_path / "val.npz"
    np.savez(good, input=np.ones((8, 4, 16, 16), np.float32), target=np.ones((8, 3, 16, 16), np.float32))
    garbage.write_text("garbage")
    for val_path, expected in [(tmp_path / "none.npz", f"data.val_path {tmp_path / 'none.npz'}: no such file or folder"),
                               (garbage, f"{garbage}: not a readable .npz file")]:
        code, err = run_sweep(capsys, tmp_path, "hdr_patch", "--data", str(good), "--set", f"data.val_path={val_path}")
        assert code == 2 and expected in err and len(err.splitlines()) == 1 and not ray_starts


def test_generation_metrics_on_untrained_or_unreadable_weights_are_refused_before_ray_starts(ray_starts, capsys,
                                                                                          tmp_path):
    from tests.models.test_feature_extractors import torchvision_layout_resnet50

    torchvision_layout_resnet50(tmp_path / "random.pth", fitted=False)
    (tmp_path / "notes.txt").write_text("not weights")
    for weights, expected in [(tmp_path / "random.pth", "looks untrained"), (tmp_path / "notes.txt", "not ResNet-50")]:
        code, err = run_sweep(capsys, tmp_path, "medgen_diffusion", "--smoke-test", "--set", "generation.metrics=true",
                              "--set", f"generation.resnet_weights={weights}")
        assert code == 2 and err.startswith(f"sweep: error: generation.resnet_weights {weights}") and expected in err
        assert len(err.splitlines()) == 1 and not ray_starts
