"""The console: a sweep's table of its trials (their epoch, objective and tuned parameters), and a
run's line per epoch.

Tune's own reporters either show neither the objective nor the sampled parameters and a box of
every metric per finished trial (the default, 645 lines for 8 smoke trials), or take columns but
fail on a space whose parameters differ between trials (CLIReporter looks every parameter column
up in every trial's config). This is Tune's ProgressReporter interface, filled in small.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import Counter

import pandas as pd
from ray.train.v2.api.callback import UserCallback
from ray.tune import ProgressReporter
from ray.tune.utils import flatten_dict
from ray.util.queue import Empty

EVERY_S = 30.0  # at most one table this often while the sweep runs (and one at its end) ...
FIRST_EVERY_S, FIRST_MINUTES_S = 10.0, 120.0  # ... but every 10 s in its first two minutes


class TrialTable(ProgressReporter):
    """Prints the table when a trial has started, finished or reached a new epoch since the last
    one, at most every `every_s` seconds (0: at every change), and once at the end."""

    def __init__(self, objectives: list[dict], parameters: list[str], default_point: dict | None = None,
                 epochs: int | None = None, every_s: float = EVERY_S, out=None):
        self.objectives = objectives
        self.parameters = parameters
        self.default_point = default_point
        self.epochs = epochs
        self.every_s = every_s
        # None: print, looked up when used: Tune pickles this reporter with the sweep, and Ray may
        # have replaced builtins.print by then (tqdm_ray's safe_print), which pickles by name only
        self.out = out
        self._last_state = None
        self._last_time = -math.inf
        self._final_shown = False
        self.start_time, self.total = time.time(), None

    def setup(self, start_time=None, total_samples=None, **kwargs):
        """Tune's start of the run: when, and how many trials it will run."""
        self.start_time = start_time or time.time()
        self.total = total_samples

    def should_report(self, trials, done: bool = False) -> bool:
        state = [(t.trial_id, t.status, (t.last_result or {}).get("epoch")) for t in trials]
        if done and not self._final_shown:  # the end, once, also where a progress table showed its state
            self._final_shown, self._last_state, self._last_time = True, state, time.monotonic()
            return True
        if state == self._last_state:
            return False
        # every FIRST_EVERY_S in the first minutes: a sweep of 29 s showed only its first and last table
        every = min(self.every_s, FIRST_EVERY_S) if time.time() - self.start_time < FIRST_MINUTES_S else self.every_s
        if time.monotonic() - self._last_time >= every:
            self._last_state, self._last_time = state, time.monotonic()
            return True
        return False

    def report(self, trials, done: bool, *sys_info: str) -> None:
        out = self.out or print
        frame = table(trials, self.objectives, self.parameters, self.default_point, self.epochs)
        out(f"{'== final ==' if done else '== progress =='} "
            + headline(trials, frame, self.total, time.time() - self.start_time))
        out(frame.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep=""))


def headline(trials, frame: pd.DataFrame, total: int | None, elapsed_s: float) -> str:
    """'3/8 trials done (2 COMPLETED, 1 EARLY_STOPPED), 2 RUNNING; elapsed 1m40s, ETA ~2m10s ...'
    (`frame`: the table, whose statuses tell ended trials apart)."""
    ended = frame["status"].isin(ENDED)
    counts = Counter(frame.loc[ended, "status"])
    others = Counter(frame.loc[~ended, "status"])
    total = max(total or len(trials), len(trials))
    line = (f"{ended.sum()}/{total} trials done"
            + (f" ({', '.join(f'{n} {status}' for status, n in counts.items())})" if counts else "")
            + "".join(f", {n} {status}" for status, n in others.items())
            + f"; elapsed {duration(elapsed_s)}")
    return line + eta(trials, total)


ENDED = ("COMPLETED", "EARLY_STOPPED", "STOPPED", "ERROR", "TERMINATED")


def eta(trials, total: int) -> str:
    """The time left, from the finished trials' mean duration: the pending trials' and the running
    ones' remaining work shared between the trials that run at once. An estimate: a scheduler that
    stops trials early shortens it."""
    ended = [t for t in trials if t.status in ("TERMINATED", "ERROR")]
    if len(ended) == len(trials) == total:  # nothing left (an all-error sweep said "once a trial has finished")
        return ""
    took = [s for s in ((t.last_result or {}).get("time_total_s") for t in ended) if s]
    if not took:
        return ", ETA once a trial has finished"
    # the median, not the mean: the first trials on a fresh Ray pay its start-up (16-17 s against
    # 0.4-0.9 s later), which a mean carried into every trial still to come ("~47 s" with 4 s left)
    typical = float(statistics.median(took))
    running = [(t.last_result or {}).get("time_total_s") or 0.0 for t in trials if t.status == "RUNNING"]
    waiting = total - len(ended) - len(running)
    left = waiting * typical + sum(max(typical - ran, 0.0) for ran in running)
    return (f", ETA ~{duration(left / max(len(running), 1))} (from {len(took)} finished trials' median "
            f"{duration(typical)})")


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else (
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s")


def status_of(trial, epochs: int | None) -> str:
    """Tune's status, with its TERMINATED (any trial that ended) told apart as the results are:
    COMPLETED (every epoch), EARLY_STOPPED (by the scheduler) or STOPPED (a health check)."""
    result = trial.last_result or {}
    if trial.status != "TERMINATED" or epochs is None:
        return trial.status
    if result.get("stop_reason"):
        return "STOPPED"
    return "COMPLETED" if result.get("epoch", 0) >= epochs else "EARLY_STOPPED"


def table(trials, objectives: list[dict], parameters: list[str], default_point: dict | None = None,
          epochs: int | None = None) -> pd.DataFrame:
    """Best first by the first objective; '-' where a trial's space branch has no such parameter;
    the documented default marked *."""
    rows = []
    for trial in trials:
        result, config = trial.last_result or {}, flatten_dict(trial.config or {}, delimiter="/")
        marker = "* " if config == default_point else ""
        row = {"trial": marker + trial.trial_id, "status": status_of(trial, epochs), "epoch": result.get("epoch", "")}
        row.update({o["metric"]: result.get(o["metric"], math.nan) for o in objectives})
        row["stop"] = result.get("stop_reason") or ""
        row.update({short_name(p, parameters): config.get(p, "-") for p in parameters})
        rows.append(row)
    frame = pd.DataFrame(rows)
    first = objectives[0]
    return frame.sort_values(first["metric"], ascending=first["mode"] == "min", na_position="last", kind="stable")


def short_name(key: str, keys: list[str]) -> str:
    """A config key without its section (caps/mode -> mode) where no other key ends alike."""
    leaf = key.rsplit("/", 1)[-1]
    return leaf if sum(k.rsplit("/", 1)[-1] == leaf for k in keys) == 1 else key


class EpochLines(UserCallback):
    """A run's console line per epoch (epoch, objective, loss, time), for ray_jobs/train.py.

    This runs in the Train controller, whose own output reaches the console only together with
    every worker's log (Ray's log_to_driver); the lines go to the driver through a Ray queue,
    and `print_lines` prints them there."""

    def __init__(self, queue, objective: str, loss: str, epochs: int):
        self.queue, self.objective, self.loss, self.epochs = queue, objective, loss, epochs

    def after_report(self, run_context, metrics, checkpoint):
        self.queue.put(epoch_line(metrics[0], self.objective, self.loss, self.epochs))


def epoch_line(values: dict, objective: str, loss: str, epochs: int) -> str:
    line = f"epoch {values.get('epoch', '?')}/{epochs}  {objective} {values.get(objective, math.nan):.4g}  " \
           f"{loss} {values.get(loss, math.nan):.4g}  {values.get('time/epoch_s', math.nan):.3g} s"
    return line + (f"  stopped: {values['stop_reason']}" if values.get("stop_reason") else "")


class print_lines:  # noqa: N801 (a context manager, used as a function)
    """Prints what arrives on `queue` from a background thread while the block runs, and what is
    left when it ends."""

    def __init__(self, queue, out=print):
        self.queue, self.out = queue, out
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()

    def _pump(self):
        while True:
            try:
                self.out(self.queue.get(timeout=0.5))
            except Empty:
                if self._done.is_set():
                    return
