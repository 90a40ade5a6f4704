"""The cluster cluster.yaml makes, on Ray's own autoscaler: its head started with the file's own
command (ports, temp dir and the autoscaler's config path changed), token authentication on, the
autoscaler's node types taken from the file's `available_node_types` (resources as written, worker
counts scaled down to 2 cores), nodes launched by Ray's fake multi-node provider (the real
autoscaler; each node a local raylet). The sweep is submitted with `ray job submit` as
docs/cluster.md submits it, its data on the head only and its results in an S3-compatible store on
loopback (moto_server). Starts real processes because that is what it tests: nodes that come and go.
It replaces the fixed 2-node cluster's node-loss test, which a spot reclaim here covers."""

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.fs
import pytest
import yaml

from losstune.ray_jobs.core import storage
from losstune.ray_jobs.reports.load import load_sweep
from tests.ray_nodes import NAMES, RAY_CLI, free_ports, node_command, run_shell, stop_nodes
from tests.tensorboard_view import tensorboard_steps

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FAKE_HEAD_TYPE = "ray.head.default"  # the fake provider's name for the head's type
GPU_NODES = {"gpu_a10g": 2, "gpu_h100": 0}  # cluster.yaml's 8 and 2, scaled to what 2 cores carry
IDLE_TIMEOUT_MIN = 0.25  # cluster.yaml's 10 minutes, scaled
LONG_EPOCHS = 24  # long enough that a node can be reclaimed after a trial's epoch-2 checkpoint


def autoscaling_config(cluster: dict, gcs_port: int) -> dict:
    """The autoscaler's config for the fake provider, from cluster.yaml's node types (laid out as
    ray.cluster_utils.AutoscalingCluster._generate_config lays it out; the wheel lacks its example)."""
    types = copy.deepcopy(cluster["available_node_types"])
    head = types.pop(cluster["head_node_type"])
    workers = {name: {"resources": t["resources"], "node_config": {}, "min_workers": 0, "max_workers": GPU_NODES[name]}
               for name, t in types.items()}
    return {
        "cluster_name": "losstune_fake", "max_workers": sum(GPU_NODES.values()),
        "upscaling_speed": cluster["upscaling_speed"], "idle_timeout_minutes": IDLE_TIMEOUT_MIN,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True, "gcs_address": f"127.0.0.1:{gcs_port}"},
        "available_node_types": {FAKE_HEAD_TYPE: {"resources": head["resources"], "node_config": {}, "max_workers": 0},
                                 **workers},
        "head_node_type": FAKE_HEAD_TYPE, "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [],
        "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": []}


@pytest.fixture(scope="module")
def autoscaling_cluster(tmp_path_factory, s3_server):
    cluster = yaml.safe_load((REPO / "cluster.yaml").read_text())
    root = tmp_path_factory.mktemp("autoscaling")
    home = root / "head_home"
    assert run_shell(f"{RAY_CLI} get-auth-token --generate; chmod 600 ~/.ray/auth_token", home).returncode == 0
    ports = dict(zip(NAMES, free_ports(len(NAMES))))
    config = root / "ray_bootstrap_config.yaml"
    config.write_text(yaml.safe_dump(autoscaling_config(cluster, ports["gcs"])))
    temp_dir = f"/tmp/losstune_as_{ports['gcs']}"  # short: Ray's socket paths must fit 107 bytes
    # the head's type's resources as flags (`ray up` gives them in RAY_OVERRIDE_RESOURCES, which the
    # fake provider's nodes, started from the head's autoscaler, would inherit)
    head = dict(cluster["available_node_types"][cluster["head_node_type"]]["resources"])
    command = node_command(cluster["head_start_ray_commands"], ports, str(config), extra_flags=(
        f"--num-cpus={head.pop('CPU')} --resources='{json.dumps(head)}' --dashboard-port={ports['dashboard']} "
        f"--ray-client-server-port={ports['client']} --temp-dir={temp_dir}"))
    # the fake provider's switch, the autoscaler's pace, and the store's key pair (an instance profile's part)
    env = {"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",
           **{k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}}
    watcher = None
    try:
        started = run_shell(command, home, timeout=180, **env)
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        assert "published the autoscaler's node types" in started.stdout, started.stdout[-2000:]
        watch_log = root / "nodes.jsonl"
        watcher = subprocess.Popen([sys.executable, str(REPO / "tests" / "cluster_watch.py"),
                                    f"http://127.0.0.1:{ports['dashboard']}", str(watch_log)],
                                   env=client_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield {"ports": ports, "home": home, "nodes": watch_log, "temp_dir": temp_dir}
    finally:
        if watcher is not None:
            watcher.kill()
        stop_nodes(temp_dir)


def client_env(home) -> dict:
    """The user's side: their token, and Ray's CLI on PATH; never a RAY_ADDRESS of another Ray."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return dict(env, HOME=str(home), RAY_AUTH_MODE="token", PATH=f"{Path(sys.executable).parent}:{env['PATH']}")


def node_history(log: Path) -> list[tuple[float, dict]]:
    """The watcher's records so far (a line it is still writing left out)."""
    rows = []
    for line in (log.read_text().splitlines() if log.exists() else []):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [(row["t"], row["alive"]) for row in rows if "alive" in row]


def alive_now(log: Path) -> dict:
    """The nodes alive at the watcher's last record; none before its first (it was read empty once)."""
    history = node_history(log)
    return history[-1][1] if history else {}


def gpu_nodes(alive: dict) -> set:
    return {node for node, resources in alive.items() if resources.get("GPU", 0) > 0}


def node_processes(node_id: str) -> list[psutil.Process]:
    """The processes of one fake node: the ones the provider started with its id, and theirs."""
    found = []
    for p in psutil.process_iter(["environ"]):
        try:
            if (p.info["environ"] or {}).get("RAY_OVERRIDE_NODE_ID_FOR_TESTING") == node_id:
                found.append(p)
        except psutil.Error:
            continue
    return found + [c for p in found for c in p.children(recursive=True)]


def registered_checkpoints(uri: str) -> list[dict]:
    """The reports with a checkpoint that Tune has written to the sweep's store (result.json rows)."""
    fs, path = storage.filesystem(uri)
    rows = []
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(path, recursive=True))
    except (OSError, FileNotFoundError):
        return rows
    for info in infos:
        if info.base_name == "result.json":
            with fs.open_input_stream(info.path) as f:
                for line in f.read().decode().splitlines():
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue
                    if row.get("checkpoint_dir_name"):
                        rows.append(row)
    return rows


def test_a_gpu_sweep_grows_the_cluster_from_zero_survives_a_reclaimed_node_and_lets_it_shrink(
        autoscaling_cluster, s3_server, tmp_path):
    ports, home = autoscaling_cluster["ports"], autoscaling_cluster["home"]
    data = tmp_path / "hdr_patches.npz"  # on the head's disk only, as far as the sweep can know
    from losstune.data.hdr_patch import synthetic_patches

    patches, targets = synthetic_patches(96, 16, seed=5)
    np.savez(data, input=patches, target=targets)
    store = s3_server.uri("losstune")
    # docs/cluster.md's command; its trials, epochs and confirmation sized to the test
    # (no --working-dir: every node runs the project cluster.yaml installed on it; and here the fake
    # nodes share one runtime_resources folder, where each new node unpacks a job's working dir
    # afresh, deleting the folder the running driver is in)
    submit = [RAY_CLI, "job", "submit", "--address", f"http://127.0.0.1:{ports['dashboard']}", "--", "losstune-sweep", "hdr_patch", "--space", "caps", "--trials", "3",
              "--gpus-per-worker", "1", "--data", str(data), "--storage", store,
              "--smoke-test", "--epochs", str(LONG_EPOCHS), "--scheduler", "none", "--confirm-top", "0",
              "--max-failures", "3", "--set", "health.max_overflow_frac=1.0", "--name", "grow"]
    job = subprocess.Popen(submit, env=client_env(home), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    printed, removed_at, reclaimed = [], [], []

    def follow():  # the job's output, as the user sees it; the data goes once the driver has checked it
        for line in job.stdout:
            printed.append(line)
            if line.startswith("data to the nodes:") and not removed_at:
                data.unlink()
                removed_at.append(time.time())

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        deadline = time.time() + 600
        while not reclaimed and job.poll() is None and time.time() < deadline:
            # a spot reclaim: once a trial on a GPU node has a registered checkpoint of epoch 2 or
            # later, that node's machine is gone (every process of it killed at once)
            rows = [r for r in registered_checkpoints(storage.join(store, "grow")) if r["epoch"] >= 2]
            alive = alive_now(autoscaling_cluster["nodes"])
            on_gpu = [r for r in rows if r["node"] in gpu_nodes(alive)]
            if on_gpu and len(gpu_nodes(alive)) >= 2:
                victim = on_gpu[0]["node"]
                for p in node_processes(victim):
                    try:
                        p.send_signal(signal.SIGKILL)
                    except psutil.Error:
                        pass
                reclaimed.append((victim, max(r["epoch"] for r in on_gpu if r["node"] == victim), time.time()))
            time.sleep(0.5)
        assert job.wait(timeout=600) == 0, "".join(printed)[-4000:]
    finally:
        job.kill()
        reader.join(timeout=10)
    out = "".join(printed)
    assert reclaimed, out[-3000:]
    # planned for the cluster that can be: no GPU node at the start, up to 2 as it grows
    assert "0 at a time now, up to 2 as the cluster grows" in out, out[-3000:]
    # the autoscaler added GPU nodes for the waiting trials: at least 2, 2 trials at once on them
    history = node_history(autoscaling_cluster["nodes"])
    launched = set().union(*(gpu_nodes(alive) for _, alive in history))
    assert len(launched) >= 2, launched
    # the data file was gone before any GPU node was up, and every trial trained all its epochs
    first_gpu = min(t for t, alive in history if gpu_nodes(alive))
    assert removed_at and removed_at[0] < first_gpu
    sweep = load_sweep(storage.join(store, "grow"))
    assert len(sweep.trials) == 3 and (sweep.trials["status"] == "COMPLETED").all()
    assert (sweep.trials["epochs_done"] == LONG_EPOCHS).all()
    runs = sweep.history
    assert set(runs["node"]) <= launched  # every epoch trained on a GPU node, none on the head
    spans = runs.groupby("trial_id")["timestamp"].agg(["min", "max"])
    overlapping = [(a, b) for a in spans.index for b in spans.index
                   if a < b and spans.loc[a, "min"] < spans.loc[b, "max"] and spans.loc[b, "min"] < spans.loc[a, "max"]]
    assert overlapping, spans
    # the reclaimed node's trial resumed from its checkpoint on another node: no epoch lost, none
    # trained twice beyond the checkpoint it resumed from
    victim, checkpointed, _ = reclaimed[0]
    moved = runs[runs["trial_id"].isin(runs.loc[runs["node"] == victim, "trial_id"])]
    for trial_id, frame in moved.groupby("trial_id"):
        epochs, restarts = frame["epoch"].tolist(), frame["restarts"].tolist()
        if max(restarts) == 0:
            continue  # it had finished on the node before the reclaim
        first = restarts.index(max(restarts))
        resumed_at = epochs[first]
        assert 1 < resumed_at <= epochs[first - 1] + 1, (epochs, restarts)
        assert epochs[first:] == list(range(resumed_at, LONG_EPOCHS + 1)), (epochs, restarts)
        assert (frame["node"].iloc[first:] != victim).all()
    assert runs[runs["restarts"] > 0]["epoch"].min() > 1
    print(f"GPU nodes launched {len(launched)}, trials overlapping {len(overlapping)}, data removed "
          f"{first_gpu - removed_at[0]:.1f} s before the first GPU node, reclaimed after epoch {checkpointed}: "
          + "; ".join(f"{t}: epochs {f['epoch'].tolist()} restarts {f['restarts'].tolist()}"
                      for t, f in moved.groupby("trial_id")))
    # the results live in the store: the report, and the TensorBoard files every trial wrote on its
    # nodes (the reclaimed one's too), every epoch, read by TensorBoard from a copy of the folder (an
    # epoch the lost node wrote after its last registered checkpoint is there too, as that run's)
    assert storage.exists(storage.join(store, "grow", "report.html"))
    fs, folder = storage.filesystem(storage.join(store, "grow"))
    pyarrow.fs.copy_files(folder, str(tmp_path / "grow"), source_filesystem=fs,
                          destination_filesystem=pyarrow.fs.LocalFileSystem())
    for trial_id in sweep.trials["trial_id"]:
        assert set(tensorboard_steps(tmp_path / "grow", trial_id, "val/log_l1")) == set(range(1, LONG_EPOCHS + 1))
    # and once the sweep is over, the autoscaler removes the idle GPU nodes
    sweep_ended = runs["timestamp"].max()
    deadline = time.time() + 180
    while gpu_nodes(alive_now(autoscaling_cluster["nodes"])) and time.time() < deadline:
        time.sleep(2)
    assert not gpu_nodes(alive_now(autoscaling_cluster["nodes"]))
    print(f"idle GPU nodes removed {time.time() - sweep_ended:.0f} s after the sweep ended")
