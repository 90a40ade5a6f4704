"""What a table of trials says beyond its ranking: what it cost, its Pareto front of several
objectives, and whether early epochs rank the trials as their last does (read by the report)."""

from __future__ import annotations

import math

import pandas as pd
import numpy as np


def held(resources: dict) -> tuple[float, float]:
    """(CPUs, GPUs) one trial holds (TrialResources.per_trial)."""
    # here, not at the top: loads torch, ray only where this runs
    from losstune.trainables.engine.driver import TrialResources

    need = TrialResources.saved(resources).per_trial()
    return need.get("CPU", 0.0), need.get("GPU", 0.0)


def with_cost(trials: pd.DataFrame, resources: dict) -> pd.DataFrame:
    """Each trial's CPU- and GPU-seconds held: what it holds times its wall time."""
    cpus, gpus = held(resources)
    return trials.assign(cpu_s=trials["wall_s"] * cpus, gpu_s=trials["wall_s"] * gpus)


def cost_line(table: pd.DataFrame, what: str) -> str:
    """The report's line of what a table of trials or runs cost in all."""
    cpu_h, gpu_h = table["cpu_s"].sum() / 3600, table["gpu_s"].sum() / 3600
    return (f"cost: {len(table)} {what}, {int(table['epochs_done'].sum())} epochs, {cpu_h:.2f} CPU-hours and "
            f"{gpu_h:.2f} GPU-hours held (resources x wall time)")


def pareto_front(trials: pd.DataFrame, objectives: list[dict]) -> pd.Series:
    """Whether each trial is on the Pareto front of the final objectives: completed to full length
    and healthy (an ASHA-stopped trial's values are from an earlier epoch), and no other such trial
    at least as good in every objective and better in one."""
    signs = [1.0 if o["mode"] == "min" else -1.0 for o in objectives]
    columns = [f"final/{o['metric']}" for o in objectives]
    eligible = (trials["status"] == "COMPLETED") & trials[columns].notna().all(axis=1)
    points = trials.loc[eligible, columns].to_numpy(dtype=float) * signs
    on_front = pd.Series(False, index=trials.index)
    for index, point in zip(trials.index[eligible], points):
        dominated = ((points <= point).all(axis=1) & (points < point).any(axis=1)).any()
        on_front[index] = not dominated
    return on_front


MIN_RANKED = 8  # trials that ran every epoch below which early epochs' ranking is not judged
RANKS_LIKE_FINAL = 0.9  # Spearman's rho from which an epoch ranks trials as their last epoch does


def early_ranking(trials: pd.DataFrame, history: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """How the objective at each epoch ranks the trials that ran every epoch, against their final
    value: per epoch, Spearman's rho (scipy), its 95% CI (Fisher's z with Fieller's variance for
    Spearman, 1.06 / (n - 3)) and n. Empty where fewer than MIN_RANKED trials ran to the end. Under
    ASHA those are the trials it kept, a narrower field than the sweep's, so rho reads lower."""
    # here, not at the top: loads scipy only where this runs
    from scipy.stats import spearmanr

    metric, epochs = meta["objective"]["metric"], meta["epochs"]
    if history.empty or metric not in history:  # no trial reported an epoch (all failed at start)
        return pd.DataFrame(columns=["epoch", "rho", "low", "high", "n"])
    full = trials.loc[trials["status"] == "COMPLETED", "trial_id"]
    curves = (history[history["trial_id"].isin(full)]
              .pivot_table(index="trial_id", columns="epoch", values=metric, aggfunc="last")
              .dropna(axis=1))  # the epochs every trial validated at
    if len(curves) < MIN_RANKED or epochs not in curves:
        return pd.DataFrame(columns=["epoch", "rho", "low", "high", "n"])
    half = 1.96 * math.sqrt(1.06 / (len(curves) - 3))
    rows = []
    for epoch in [e for e in curves.columns if e < epochs]:
        rho = float(spearmanr(curves[epoch], curves[epochs]).statistic)
        with np.errstate(divide="ignore"):
            z = np.arctanh(rho)
        rows.append({"epoch": int(epoch), "rho": rho, "low": float(np.tanh(z - half)),
                     "high": float(np.tanh(z + half)), "n": len(curves)})
    return pd.DataFrame(rows)
