"""The Ray a job runs on: its own local one, or the cluster in RAY_ADDRESS, and the sweep fitted
to what that Ray has."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

from losstune.ray_jobs.core.usage import UsageError
from losstune.ray_jobs.core.plan import POPULATION_SCHEDULERS, SweepPlan
from losstune.ray_jobs.core import autoscaling
import sys

TRIAL_SLOTS = "losstune_trial_slots"  # one unit on the local Ray and on cluster.yaml's head


START_TRIES = 3  # a loaded machine missed Ray's fixed 30 s raylet wait 2 of 3 times one afternoon
EXIT_RAY_START = 4  # every command's exit status when Ray cannot start


class RayStartError(Exception):
    """Ray did not start (or could not be joined) after START_TRIES tries; the message says why."""


def start_ray(verbose: bool) -> None:
    """Join the cluster in RAY_ADDRESS (as `ray job submit` sets it), else start a local Ray of our
    own on this machine's cores, never one found on the machine; reuse a Ray this process already
    has (a test's, a caller's). A start that fails (Ray gives the raylet a fixed 30 s to register;
    the GCS port's wait is ours to lengthen) is tried again, then RayStartError."""
    # here, not at the top: loads ray only where this runs
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "120")
    for attempt in range(1, START_TRIES + 1):
        try:
            if os.environ.get("RAY_ADDRESS"):
                ray.init(log_to_driver=verbose)
            else:
                start_local_ray(verbose)
            return
        except Exception as err:  # Ray raises plain Exception, RuntimeError or ConnectionError here
            ray.shutdown()
            why = (str(err).strip().splitlines() or [type(err).__name__])[0]
    raise RayStartError(f"Ray could not start after {START_TRIES} tries ({why}); the machine may be "
                        f"overloaded: try again, or give RAY_ADDRESS of a running cluster")


def started(prog: str, verbose: bool) -> bool:
    """start_ray, or one line on stderr naming why Ray could not start (the caller then exits
    EXIT_RAY_START)."""
    try:
        start_ray(verbose)
    except RayStartError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return False
    return True


PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"  # Ray Train's switch, read by its controller


def start_local_ray(verbose: bool = False) -> None:
    """A Ray of this machine's cores, started in this process, whose workers know its address.

    When a trial is stopped inside TorchTrainer.fit() (ASHA, a Tune stopper), its Train controller
    dies with it, and Train's PlacementGroupCleaner frees the training worker's CPUs after asking
    the state API whether the controller is alive. It asks without an address, which Ray resolves
    by looking for Ray instances on the machine: with a second one running (another sweep, a test
    run) that lookup fails ("Found multiple active Ray instances"), the placement group is never
    removed, and every later trial waits for CPUs that never come back. RAY_ADDRESS in every
    worker makes the lookup find this Ray.

    Train's preemption watcher is off here (unless the user set it): it is one more actor, a fresh
    process importing Ray Train, per trial, that watches for nodes being drained (spot instances
    reclaimed), and a Ray of this one machine has no node to drain. Clusters keep it.

    address="local": with no address, ray.init() joins a Ray that someone else's `ray start`
    left running on the machine (and then refuses num_cpus); a sweep run without RAY_ADDRESS must
    never run inside another user's cluster."""
    # here, not at the top: loads ray only where this runs
    import ray

    # Nested, so that it is shipped by value: a worker runs it before it can import this project.
    def pin_ray_address() -> None:
        # here, not at the top: loads ray only where this runs
        import ray

        os.environ.setdefault("RAY_ADDRESS", ray.get_runtime_context().gcs_address)

    watcher = os.environ.get(PREEMPTION_WATCHER_ENV, "0")
    ray.init(address="local", num_cpus=os.cpu_count(), resources={TRIAL_SLOTS: 1}, log_to_driver=verbose,
             runtime_env={"worker_process_setup_hook": pin_ray_address, "env_vars": {PREEMPTION_WATCHER_ENV: watcher}})


DRIVER_RESOURCE = "losstune_driver"  # cluster.yaml gives the head node this resource


@dataclass(frozen=True)
class ClusterShape:
    """What a plan is fitted to: the live nodes' resources, and what the autoscaler can add.

    Only an autoscaler whose node types Ray records counts as one: every Ray, a local one too, runs
    a monitor that writes an autoscaler's status, so the status alone does not tell a cluster that
    can grow from one that cannot."""
    nodes: list  # {resource: amount} of each live node
    types: list | None = None  # autoscaling.NodeType of each node type, head included; None: no autoscaler

    @classmethod
    def read(cls) -> "ClusterShape":
        # here, not at the top: loads ray only where this runs
        import ray

        return cls([node["Resources"] for node in ray.nodes() if node["Alive"]], autoscaling.node_types())

    @property
    def autoscaled(self) -> bool:
        return self.types is not None

    def now(self) -> dict:
        return summed(self.nodes)

    def at_most(self) -> dict:
        """Every resource at the cluster's largest: the node types at their max counts where known
        (as Ray's get_max_resources_from_cluster_config sums them), never less than what is up."""
        have = self.now()
        if not self.types:
            return have
        grown = summed([{k: v * (math.inf if t.max_count < 0 else t.max_count) for k, v in t.resources.items()}
                        for t in self.types])
        return {kind: max(have.get(kind, 0.0), grown.get(kind, 0.0)) for kind in {*have, *grown}}

    def largest(self, kind: str) -> tuple[float, str]:
        """(the most of `kind` one node has or can have, where: 'node' or 'node type NAME')."""
        live = max((node.get(kind, 0.0) for node in self.nodes), default=0.0)
        addable = [t for t in self.types or [] if t.max_count != 0]
        typed = max(addable, key=lambda t: t.resources.get(kind, 0.0), default=None)
        if typed is not None and typed.resources.get(kind, 0.0) > live:
            return typed.resources.get(kind, 0.0), f"node type {typed.name!r}"
        return live, "node type" if self.types else "node"


def summed(resources: list) -> dict:
    total = {}
    for node in resources:
        for kind, amount in node.items():
            total[kind] = total.get(kind, 0.0) + amount
    return total


def fit_to_cluster(plan: SweepPlan, shape: ClusterShape | None = None) -> SweepPlan:
    """The plan fitted to the cluster it runs on: drivers on the head where the cluster offers
    DRIVER_RESOURCE, and max_concurrent the trials that run at once: --max-concurrent, else as many
    as fit the cluster at its largest (the autoscaler's node types at their max counts), so that
    the trials beyond what fits now wait as resource demands, which the autoscaler sees and adds
    nodes for. A worker that fits on no node and no node type, or a relative --storage on several
    nodes, is a UsageError now rather than a trial pending forever or results scattered over
    nodes' disks. `concurrent_now` is set to what fits the nodes up now."""
    shape = shape or ClusterShape.read()
    have, most = shape.now(), shape.at_most()
    resources = plan.resources
    if DRIVER_RESOURCE in have and not resources.driver_resource:
        resources = dataclasses.replace(resources, driver_resource=DRIVER_RESOURCE)
    check_worker_fits(resources, shape)
    need = resources.per_trial()
    check_trial_fits(resources, most)
    raw = plan.storage_arg
    if (len(shape.nodes) > 1 or shape.autoscaled) and raw and "://" not in raw and not os.path.isabs(raw):
        cluster = "a cluster whose autoscaler adds nodes" if shape.autoscaled else f"a {len(shape.nodes)}-node cluster"
        raise UsageError(f"--storage: {raw!r} is a relative local path on {cluster}; give s3://..., gs://... or "
                         "an absolute path on shared storage (NFS)")
    fits_now = trials_that_fit(need, have)
    fits_most = trials_that_fit(need, most)
    concurrency = plan.max_concurrent or max(1, min(max(fits_now, fits_most), plan.trials))
    # a trial that trains in its own process holds its worker's CPUs: Tune starts only what fits
    if plan.scheduler in POPULATION_SCHEDULERS and plan.trials > concurrency and not resources.in_trial_process:
        resources = dataclasses.replace(resources, slot_resource=TRIAL_SLOTS,
                                        slot_share=population_turns(plan.trials, concurrency, have))
    return dataclasses.replace(plan, resources=resources, max_concurrent=concurrency,
                               concurrent_now=max(0, min(fits_now, concurrency)))


def check_worker_fits(resources, shape: ClusterShape) -> None:
    for kind, amount in resources.per_worker().items():
        largest, where = shape.largest(kind)
        if amount > largest + 1e-9:
            flag = "--gpus-per-worker" if kind == "GPU" else "--cpus-per-worker"
            # an autoscaler Ray has no record of may have larger types: say how they would count
            unknown = ("" if shape.autoscaled else
                       " (an autoscaler's node types count once the head publishes them: docs/cluster.md)")
            raise UsageError(f"{flag}: a training worker needs {amount:g} {kind}, the largest {where} has "
                             f"{largest:g}{unknown}")


def check_trial_fits(resources, most: dict) -> None:
    for kind, amount in resources.per_trial().items():
        if amount > most.get(kind, 0.0) + 1e-9:
            if resources.in_trial_process:  # the trial is its one worker
                flag = "--gpus-per-worker" if kind == "GPU" else "--cpus-per-worker"
            else:
                driver_alone = resources.driver().get(kind, 0.0) > most.get(kind, 0.0) + 1e-9
                flag = "--driver-cpus" if driver_alone else "--workers-per-trial"
            raise UsageError(f"{flag}: one trial needs {amount:g} {kind}, the cluster has {most.get(kind, 0.0):g}")


def trials_that_fit(need: dict, have: dict) -> int:
    counts = [have.get(kind, 0.0) / amount + 1e-9 for kind, amount in need.items() if amount > 0]
    return min((math.floor(c) if math.isfinite(c) else 10**9 for c in counts), default=0)


def at_a_time(plan: SweepPlan) -> str:
    """How many run at once, as the commands print it: '4 at a time', or where the cluster has to
    grow for it, '1 at a time now, up to 4 as the cluster grows'."""
    if plan.concurrent_now is None or plan.concurrent_now >= plan.max_concurrent:
        return f"{plan.max_concurrent} at a time"
    return f"{plan.concurrent_now} at a time now, up to {plan.max_concurrent} as the cluster grows"


def population_turns(trials: int, concurrency: int, have: dict) -> float:
    """Each PBT driver's share of TRIAL_SLOTS when the population, training in worker groups, is
    larger than what runs at once. Tune makes the whole population at once and starts every trial whose driver fits; a
    driver holds a tenth of a CPU, so on 2 CPUs 16 drivers would start and 14 of their
    TorchTrainers would time out waiting for workers. Ray takes custom resources in steps of
    1e-4: the share is rounded down, so `concurrency` shares fit in the unit and one more does not."""
    if TRIAL_SLOTS not in have:
        raise UsageError(f"--trials: a population of {trials} is more than the {concurrency} trials that run at "
                         f"once, and this Ray has no {TRIAL_SLOTS} resource for them to take turns by (cluster.yaml "
                         f"gives the head one unit); give --trials {concurrency} or add it")
    return math.floor(1e4 / concurrency) / 1e4
