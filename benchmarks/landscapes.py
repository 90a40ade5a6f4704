"""python benchmarks/landscapes.py --task hdr_caps [--configs 256] [--seeds 2] [--processes 2] [--folder benchmarks/landscapes]

Records a search task's landscape once (benchmarks/search_tasks.py): its documented default and
--configs configs drawn to cover its space, each trained at --seeds training seeds (0, 1, ...)
for the task's full length, every epoch's objective and stop reason kept. A search method is then
replayed against the record (benchmarks/replay.py), where an epoch costs a lookup, as HPOBench's
tabular benchmarks and LCBench's curves are used.

The design: the space's switches (hdr_patch's caps/mode, caps/clamp_enabled) split it into
branches; each branch gets an equal share of the configs, drawn by Optuna's scrambled Sobol
sampler (QMCSampler) with the branch's switch values held (PartialFixedSampler), so that every
branch is well covered, not only the one random draws favour. Each run trains in a process of its
own through the platform's loop (trainables.engine.loop.train, no Ray), --processes at a time.

The record is one Parquet file per task in --folder (a row per config, seed and epoch), written
after every run: a later call with the same task and design runs only what is missing, and one
with a larger --configs adds configs to it (each branch's scrambled Sobol points are the first ones
of its longer design). It says what made it (the flags, the commit) in its metadata; a design that
does not hold every recorded config, or other seeds, epochs or objective, is refused.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import REPO  # noqa: E402
from search_runs import task_args  # noqa: E402
from search_tasks import TASKS, Task  # noqa: E402
from losstune.ray_jobs.core.provenance import git_state  # noqa: E402
from losstune.ray_jobs.results.study import switch_params  # noqa: E402
from losstune.trainables.config import merge, unflatten  # noqa: E402
from losstune.trainables.family_api import make_config  # noqa: E402
from losstune.trainables.registry import load_family  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FOLDER = os.path.join(HERE, "landscapes")
DESIGN_SEED = 0


def task_plan(task: Task):
    """The sweep's plan of the task: its fixed overrides (`base`), objective and space, as a sweep
    of it would train them."""
    # here, not at the top: loads ray, optuna only where this runs
    from losstune.ray_jobs.cli import sweep_flags

    with tempfile.TemporaryDirectory() as folder:
        return sweep_flags.make_plan(sweep_flags.parse_args(task_args(task, 0, folder, ())))


def design(task: Task, count: int, seed: int = DESIGN_SEED) -> list[dict]:
    """The documented default, then `count` points: per branch an equal share of a scrambled Sobol
    design with the branch's switch values held. Points that fall in a branch already drawn (a
    switch that only exists under another's value) are dropped, so each branch is drawn once."""
    # here, not at the top: loads optuna only where this runs
    import optuna

    from losstune.search_spaces import default_point, sample_points, suggest_from

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = task_plan(task)
    family = load_family(task.family)
    space = family.space(task.space, make_config(family, plan.base))
    random_points = sample_points(space, 256, seed)
    switches = switch_params(random_points)
    combos = branch_combinations(random_points, switches)
    points, seen = [default_point(space, make_config(family, plan.base))], set()
    for k, fixed in enumerate(combos):  # a scramble of its own per branch: no values shared across branches
        sampler = optuna.samplers.PartialFixedSampler(fixed, optuna.samplers.QMCSampler(
            qmc_type="sobol", scramble=True, seed=seed + k, warn_independent_sampling=False))
        study = optuna.create_study(sampler=sampler)
        drawn = []
        for _ in range(max(1, count // len(combos))):
            trial = study.ask()
            space(trial) if callable(space) else suggest_from(trial, space)
            study.tell(trial, 0.0)
            drawn.append(dict(trial.params))
        branch = branch_of(drawn[0], switches)
        if branch not in seen:
            seen.add(branch)
            points.extend(drawn)
    return points


def branch_combinations(points: list[dict], switches: list[str]) -> list[dict]:
    """Every combination of the switches' values that random points of the space took."""
    return [dict(combo) for combo in sorted({tuple((s, p[s]) for s in switches if s in p) for p in points}, key=str)]


def branch_of(point: dict, switches: list[str]) -> tuple:
    return tuple((s, point[s]) for s in switches if s in point)


def train_one(family_name: str, overrides: dict, metric: str) -> list[dict]:
    """One run in this process: per epoch its objective, stop reason and seconds."""
    # here, not at the top: loads torch only where this runs
    import torch

    from losstune.trainables.engine.loop import train
    from losstune.trainables.engine.session import LocalSession

    torch.set_num_threads(1)  # as Ray gives a 1-CPU trial
    session = LocalSession(tempfile.mkdtemp(prefix="landscape-"))
    started = time.time()
    train(load_family(family_name), overrides, session)
    return [{"epoch": int(r["epoch"]), "objective": float(r.get(metric, float("nan"))),
             "stop_reason": r.get("stop_reason", ""), "seconds": time.time() - started} for r in session.reports]


def runs_to_do(points: list[dict], seeds: int, done: set) -> list[tuple[int, int]]:
    """(config index, seed) pairs not yet recorded, seeds in the outer loop: a record stopped early
    holds every config at its first seed before any at its second."""
    return [(i, s) for s in range(seeds) for i in range(len(points)) if (i, s) not in done]


def record(task_name: str, configs: int, seeds: int, processes: int, folder: str) -> str:
    task = TASKS[task_name]
    plan = task_plan(task)
    points = design(task, configs)
    path = os.path.join(folder, f"{task_name}.parquet")
    made_by = {"task": task_name, "configs": configs, "seeds": seeds, "design_seed": DESIGN_SEED,
               "metric": plan.objective["metric"], "mode": plan.objective["mode"], "epochs": plan.epochs}
    rows = read_record(path, made_by)
    rows = numbered_by_design(rows, points, path) if len(rows) else rows
    done = {(int(i), int(s)) for i, s in rows[["config", "seed"]].drop_duplicates().itertuples(index=False)} \
        if len(rows) else set()
    todo = runs_to_do(points, seeds, done)
    print(f"{task_name}: {len(points)} configs x {seeds} seeds, {len(done)} runs recorded, {len(todo)} to run",
          flush=True)
    started = time.time()
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(train_one, task.family, merge(plan.base, merge(unflatten(points[i]),
                                                                             {"train": {"seed": s}})),
                               plan.objective["metric"]): (i, s) for i, s in todo}
        for n, future in enumerate(futures, 1):
            i, s = futures[future]
            epochs = pd.DataFrame(future.result()).assign(config=i, seed=s, point=json.dumps(points[i]))
            rows = pd.concat([rows, epochs], ignore_index=True)
            write_record(path, rows, {**made_by, **git_state(REPO)})
            print(f"  run {n}/{len(todo)}: config {i} seed {s}: {epochs['objective'].iloc[-1]:.4g} "
                  f"{epochs['stop_reason'].iloc[-1] or ''} ({time.time() - started:.0f} s)", flush=True)
    print(f"{task_name}: recorded in {path} ({time.time() - started:.0f} s of wall time this call)")
    return path


def read_record(path: str, made_by: dict) -> pd.DataFrame:
    """What the record at `path` holds; exits 2 where it was made by another design."""
    if not os.path.exists(path):
        return pd.DataFrame()
    kept = json.loads(pq.read_schema(path).metadata[b"losstune"])
    differing = [k for k, v in made_by.items() if kept.get(k) != v and k != "configs"]  # configs: by point
    if differing:
        print(f"landscapes.py: error: --folder: {path} was recorded with other {', '.join(differing)} "
              f"({', '.join(f'{k}={kept.get(k)}' for k in differing)}); give another --folder", file=sys.stderr)
        sys.exit(2)
    return pd.read_parquet(path)


def numbered_by_design(rows: pd.DataFrame, points: list[dict], path: str) -> pd.DataFrame:
    """The recorded rows with each config numbered by its place in `points`, a design as large as
    the record's or larger (a branch's share grows, so the places move); exits 2 where a recorded
    config is not in the design."""
    place = {json.dumps(point): i for i, point in enumerate(points)}
    foreign = sorted(set(rows["point"]) - place.keys())
    if foreign:
        print(f"landscapes.py: error: --configs: {path} holds {len(foreign)} configs this design lacks "
              f"(a smaller --configs than it was recorded with?); give another --folder", file=sys.stderr)
        sys.exit(2)
    return rows.assign(config=rows["point"].map(place).astype(int))


def write_record(path: str, rows: pd.DataFrame, made_by: dict) -> None:
    table = pa.Table.from_pandas(rows, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"losstune": json.dumps(made_by)})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path + ".tmp")
    os.replace(path + ".tmp", path)  # a call stopped mid-write keeps the last whole record


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], prog="landscapes.py")
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--configs", type=int, default=256, help="configs besides the default (split over branches)")
    p.add_argument("--seeds", type=int, default=2, help="training seeds per config")
    p.add_argument("--processes", type=int, default=2, help="runs at a time")
    p.add_argument("--folder", default=DEFAULT_FOLDER)
    args = p.parse_args(argv)
    for flag, value, least in (("--configs", args.configs, 1), ("--seeds", args.seeds, 1),
                               ("--processes", args.processes, 1)):
        if value < least:
            p.error(f"{flag} must be >= {least}, got {value}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    record(args.task, args.configs, args.seeds, args.processes, args.folder)


if __name__ == "__main__":
    main()
