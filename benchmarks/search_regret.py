"""search_efficiency's regret figures: normalised regret (1 = the documented default, 0 = the best
any run found) at shares of random search's budget, the median with its order-statistic interval
over seeds, paired differences between methods, and their lines and plot."""

from __future__ import annotations

import math

import numpy as np

from search_stats import incumbent_at, spent


BUDGET_SHARES = (1 / 8, 1 / 4, 1 / 2, 1.0)  # of what random search spent at the seed


SHARE_NAMES = ("1/8", "1/4", "1/2", "all")


def normalised_regret(incumbent: float, default: float, best: float) -> float:
    """(incumbent - best known) / (documented default - best known): 1 is no better than the default,
    0 the best any run of any method reached (the same formula for a maximised objective). Before a
    method has a full-length trial it has only the default to offer: 1. NaN where the default is the
    best known (nothing to gain) or unknown."""
    if math.isnan(default) or default == best:
        return math.nan
    return 1.0 if math.isnan(incumbent) else (incumbent - best) / (default - best)


def median_interval(values, level: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval of the median from order statistics (the binomial's, exact
    coverage >= level at any n): at 10 seeds the 2nd and 9th smallest (97.9%); NaN below 6 values,
    where [min, max] covers less than 95%."""
    # here, not at the top: loads scipy only where this runs
    from scipy.stats import binom

    x = np.sort(np.asarray([v for v in values if not math.isnan(v)], dtype=float))
    k = int(binom.ppf((1 - level) / 2, len(x), 0.5)) if len(x) else 0
    if k < 1:
        return math.nan, math.nan
    return float(x[k - 1]), float(x[len(x) - k])


def regrets(runs: list[dict], best: float) -> dict:
    """{method: {share: {seed: normalised regret of its incumbent at that share of random search's
    spend at the seed}}}; the default's value is random search's default trial at the seed (every
    method trains it alike, at the seed's training seed)."""
    random_runs = {r["seed"]: r for r in runs if r["method"] == "random"}
    out: dict = {}
    for run in runs:
        reference = random_runs.get(run["seed"])
        if reference is None:
            continue
        default = reference.get("default", math.nan)
        for share in BUDGET_SHARES:
            at = incumbent_at(run["points"], int(round(share * spent(reference))))
            out.setdefault(run["method"], {}).setdefault(share, {})[run["seed"]] = normalised_regret(at, default, best)
    return out


def paired_differences(ours: dict, theirs: dict) -> np.ndarray:
    """Our regret minus theirs at each seed where both are known."""
    return np.array([ours[s] - theirs[s] for s in ours
                     if s in theirs and not math.isnan(ours[s]) and not math.isnan(theirs[s])])


def paired_regret(ours: dict, theirs: dict) -> dict:
    """Our regret minus theirs, paired by seed (seeds where both are known): the mean difference with
    the platform's paired Student t 95% interval and exact sign-flip p (ray_jobs/confirmation/stats.py),
    and at how many seeds ours is lower."""
    # here, not at the top: loads scipy only where this runs
    from losstune.ray_jobs.confirmation.stats import sign_flip_p, t_interval

    diffs = paired_differences(ours, theirs)
    if len(diffs) < 2:
        return {"seeds": len(diffs)}
    return {"seeds": len(diffs), "mean": float(diffs.mean()), "ci": t_interval(diffs), "p": sign_flip_p(diffs),
            "lower": int((diffs < 0).sum())}


def regret_lines(task_name: str, table: dict) -> list[str]:
    """The regret table: per method and budget the median [order-statistic interval] (N seeds), then
    each method minus random search and minus TPE + ASHA, paired by seed, and the issue's targets."""
    lines = [f"{task_name}: normalised regret (1 = no better than the documented default, 0 = the best any run "
             f"reached), median [95% interval] (seeds) at {', '.join(SHARE_NAMES)} of random search's spend:"]
    for method, by_share in table.items():
        cells = []
        for share in BUDGET_SHARES:
            values = [v for v in by_share[share].values() if not math.isnan(v)]
            low, high = median_interval(values)
            cells.append(f"{np.median(values) if values else math.nan:.3f} [{low:.3f}, {high:.3f}] ({len(values)})")
        lines.append(f"  {method:<14} " + "; ".join(cells))
    for reference in ("random", "tpe-asha"):
        if reference not in table:
            continue
        lines.append(f"  minus {reference}, paired by seed: mean [95% t interval], exact sign-flip p, seeds lower:")
        for method in (m for m in table if m != reference):
            cells = []
            for share, name in zip(BUDGET_SHARES, SHARE_NAMES):
                d = paired_regret(table[method][share], table[reference][share])
                cells.append(f"{name} {d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] p {d['p']:.2g} "
                             f"{d['lower']}/{d['seeds']}" if d["seeds"] >= 2 else f"{name} -")
            lines.append(f"    {method:<12} " + "; ".join(cells))
    lines += target_lines(table)
    return lines


PRIORS = ("prior-low-asha", "prior-asha", "prior-high-asha")  # piBO at each --prior-confidence
WRONG_PRIOR = "prior-wrong-asha"  # piBO whose prior is centred on a poor config


def target_lines(table: dict) -> list[str]:
    """The prior-guided search's targets (issues 60 and 75), per prior confidence run: at 1/4 of
    random search's budget a median regret no worse than random search's at all of it; at no budget
    worse than TPE + ASHA beyond its interval (the paired interval wholly above 0); and what a wrong
    prior costs at the full budget against random search."""
    lines = []
    full = median_of(table["random"][1.0])
    for prior in (p for p in PRIORS if p in table):
        quarter = median_of(table[prior][1 / 4])
        lines.append(f"  target: {prior} at 1/4 {quarter:.3f} against random at all {full:.3f}: "
                     f"{'met' if quarter <= full else 'not met'}")
        if "tpe-asha" in table:
            worse = [name for share, name in zip(BUDGET_SHARES, SHARE_NAMES)
                     if (d := paired_regret(table[prior][share], table["tpe-asha"][share]))["seeds"] >= 2
                     and d["ci"][0] > 0]
            lines.append(f"  target: {prior} not worse than tpe-asha beyond the interval at any budget: " +
                         (f"not met (worse at {', '.join(worse)})" if worse else "met"))
    if WRONG_PRIOR in table and (d := paired_regret(table[WRONG_PRIOR][1.0], table["random"][1.0]))["seeds"] >= 2:
        lines.append(f"  a wrong prior at all of the budget, minus random: {d['mean']:+.3f} [{d['ci'][0]:+.3f}, "
                     f"{d['ci'][1]:+.3f}] (N {d['seeds']}; lower at {d['lower']})")
    return lines


def median_of(by_seed: dict) -> float:
    """The median over seeds, NaN ones left out (NaN where none is known)."""
    values = [v for v in by_seed.values() if not math.isnan(v)]
    return float(np.median(values)) if values else math.nan


def plot_regret(task_name: str, table: dict, path: str) -> None:
    """Median normalised regret per method against the share of random search's spend."""
    # here, not at the top: loads matplotlib only where this runs
    import matplotlib

    matplotlib.use("Agg")
    # here, not at the top: loads matplotlib only where this runs
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, by_share in table.items():
        medians = [np.nanmedian(list(by_share[s].values())) for s in BUDGET_SHARES]
        ax.plot(BUDGET_SHARES, medians, marker="o", label=f"{method} (n={len(by_share[1.0])})")
    ax.set(xscale="log", xticks=BUDGET_SHARES, xticklabels=SHARE_NAMES, ylim=(0, 1.05),
           xlabel="share of random search's epochs at the seed", ylabel="median normalised regret",
           title=f"{task_name}: 1 = the default, 0 = the best known")
    ax.minorticks_off()  # a log axis labels its minor ticks (2x10^-1, ...) over the shares' names
    ax.legend()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
