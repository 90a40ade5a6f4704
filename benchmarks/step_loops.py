"""The loops benchmarks/step_overhead.py times against each other: a bare PyTorch loop written as a
user would, the platform's epoch code (run_epoch) on plain or Accelerate-prepared objects, both as
generators of per-epoch seconds that `interleaved` alternates in one process; and a stand-in family
whose step is almost all fixed cost."""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from types import SimpleNamespace
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family


def training_parts(family, cfg, epochs: int):
    """The family's model, its optimiser groups (OptimizerGroup), each scheduled group's LR
    schedule, and a shuffled loader, as both loops below use them."""
    # here, not at the top: loads torch only where this runs
    import torch

    from losstune.trainables.engine.lr_schedules import make_lr_schedule

    torch.manual_seed(cfg.train.seed)
    parts = family.build(cfg)
    groups = family.optimizer_groups(parts.model, cfg)
    loader = torch.utils.data.DataLoader(parts.train_set, batch_size=cfg.train.batch_size, shuffle=True,
                                         drop_last=True, generator=torch.Generator().manual_seed(cfg.train.seed))
    schedules = [make_lr_schedule(g.optimizer, cfg, epochs * len(loader)) for g in groups if g.scheduled]
    return parts.model, groups, schedules, loader


def params_of(group) -> list:
    return [p for g in group.optimizer.param_groups for p in g["params"]]


def bare_step(model, batch, family, cfg, weights: dict, groups: list, distributed: bool) -> list:
    """One step of every optimiser group in plain PyTorch; returns the groups that had a loss."""
    terms, _ = family.loss_terms(model, batch, cfg)
    weighted = {name: weights[name] * value for name, value in terms.items()}
    total, _ = family.combine(model, weighted, cfg)
    for group in groups:
        group.optimizer.zero_grad(set_to_none=True)
    if not any(group.terms for group in groups):
        total.backward()
        return groups
    active = [g for g in groups if not g.terms or any(n in weighted for n in g.terms)]
    losses = [(g, sum(weighted[n] for n in g.terms if n in weighted) if g.terms else total) for g in active]
    if distributed:  # DDP waits for every parameter's gradient, an idle group's too
        losses += [(g, 0.0 * sum(p.sum() for p in params_of(g))) for g in groups if g not in active]
    for i, (group, loss) in enumerate(losses):
        loss.backward(inputs=params_of(group), retain_graph=i + 1 < len(losses))
    return active


def bare_epochs(family, cfg, epochs: int, wrap=None):
    """Yields seconds per step of each epoch of the family's training in a plain PyTorch loop:
    its optimiser groups, clipping and LR schedules, its per-epoch and per-step hooks; `wrap`
    wraps the model (e.g. in DDP)."""
    # here, not at the top: loads torch only where this runs
    import torch

    torch.set_num_threads(1)
    model, groups, schedules, loader = training_parts(family, cfg, epochs)
    inner = model
    model = wrap(model) if wrap else model
    weights = family.term_weights(cfg)
    max_norm = cfg.optim.grad_clip or math.inf
    model.train()
    step = 0
    for epoch in range(epochs):
        family.on_epoch_start(inner, epoch, cfg)
        started = time.perf_counter()
        for batch in loader:
            family.on_step_start(inner, step, cfg)
            step += 1
            active = bare_step(model, batch, family, cfg, weights, groups, distributed=wrap is not None)
            for group in groups:
                if group.clipped:
                    torch.nn.utils.clip_grad_norm_(params_of(group), max_norm)
            for group in active:
                group.optimizer.step()
            for schedule in schedules:
                schedule.step()
        yield (time.perf_counter() - started) / len(loader)


def loop_epochs(family, cfg, epochs: int, prepare: bool = True):
    """Yields seconds per step of each epoch of the platform's own epoch (trainables.engine.loop.run_epoch:
    health sums, finite check, Accelerate's backward and clipping) without Ray, on Accelerate's
    prepared model, optimisers, loader and schedules or (`prepare=False`) on the plain ones."""
    # here, not at the top: loads torch, accelerate only where this runs
    from accelerate import Accelerator

    from losstune.trainables.engine.loop import run_epoch
    from losstune.trainables.engine.step import Run
    from losstune.trainables.engine.optimizer_groups import TrainedGroup

    accelerator = Accelerator(cpu=True)
    model, declared, schedules, loader = training_parts(family, cfg, epochs)
    if prepare:
        model, loader = accelerator.prepare(model, loader)
        schedules = [accelerator.prepare(s) for s in schedules]
    scheduled = iter(schedules)
    groups = [TrainedGroup(g.name, accelerator.prepare(g.optimizer) if prepare else g.optimizer, params_of(g),
                           g.terms, g.clipped, next(scheduled) if g.scheduled else None) for g in declared]
    run = Run(accelerator, model, groups, family, cfg, total_steps=epochs * len(loader))
    step = 0
    for epoch in range(epochs):
        family.on_epoch_start(accelerator.unwrap_model(model), epoch, cfg)
        started = time.perf_counter()
        _, step = run_epoch(run, loader, step)
        yield (time.perf_counter() - started) / len(loader)


def interleaved(loops: dict, epochs: int) -> tuple[dict, dict]:
    """Runs the loops' epochs (generators of seconds per step) in turn, their order reversed every
    other epoch so that neither always runs first; returns each loop's seconds per step and minor
    page faults, epoch by epoch."""
    seconds, faults = {name: [] for name in loops}, {name: [] for name in loops}
    for epoch in range(epochs):
        for name in (list(loops) if epoch % 2 == 0 else reversed(list(loops))):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            seconds[name].append(next(loops[name]))
            faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return seconds, faults


def median_ratio(numerators: list, denominators: list) -> float:
    """The median over epochs after the first of one loop's step time over another's."""
    return statistics.median(n / d for n, d in zip(numerators[1:], denominators[1:]))


def in_a_fresh_process(function, *args):
    """function(*args) in a new Python process, as a training worker is one: the heap of a
    long-lived process (this one) is laid out, and faults, differently."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def family_and_config(family_name: str, overrides: dict):
    family = load_family(family_name)
    return family, make_config(family, overrides)


def stand_in(n_tensors: int):
    """A family of Linear(4, 4) layers with `n_tensors` parameter tensors (clipping, AdamW and
    Accelerate's wrappers loop over them) on 1,024 random pairs, two loss terms."""
    # here, not at the top: loads torch only where this runs
    import torch

    def build(cfg):
        torch.manual_seed(cfg.train.seed)
        layers = [torch.nn.Linear(4, 4) for _ in range(n_tensors // 2)]  # a weight and a bias each
        if n_tensors % 2:
            layers.append(torch.nn.Linear(4, 4, bias=False))
        model = torch.nn.Sequential(*layers)
        return SimpleNamespace(model=model, train_set=torch.utils.data.TensorDataset(torch.randn(1024, 4),
                                                                                     torch.randn(1024, 4)))

    def loss_terms(model, batch, cfg):
        inputs, targets = batch
        error = model(inputs) - targets
        return {"mse": error.pow(2).mean(), "l1": error.abs().mean()}, {}

    # hdr_patch's other hooks are the contract's defaults (one AdamW, no combine, no per-step state)
    return dataclasses.replace(load_family("hdr_patch"), name="stand_in", build=build, loss_terms=loss_terms,
                               term_weights=lambda cfg: {"mse": 1.0, "l1": 0.5})
