"""What stops a sweep gracefully, as Tune's own stop does (it saves its state, the trials stay
resumable): Ctrl-C, and a local --storage running low."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading

import ray.tune


class DiskGuard(ray.tune.Callback):
    """Stops the sweep as Ctrl-C does (Tune saves its state, the trials stay resumable) when a local
    --storage runs low, checked after every result and every trial error: written to the last
    byte, Tune's state and the trials' error files end truncated, and the sweep can be neither
    resumed nor read."""

    def __init__(self, storage: str, min_free_mb: float):
        self.folder = None if "://" in storage else storage
        self.min_free_mb = min_free_mb
        self.tripped = ""  # why it stopped the sweep

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.check()

    def on_trial_error(self, iteration, trials, trial, **info):  # e.g. a checkpoint that did not fit
        self.check()

    def check(self) -> None:
        if self.folder and not self.tripped:
            free_mb = shutil.disk_usage(self.folder).free / 2**20
            if free_mb < self.min_free_mb:
                self.stop(f"--storage {self.folder} has {free_mb:.1f} MB free (--min-free-mb {self.min_free_mb:g})")

    def stop(self, why: str) -> None:
        self.tripped = why
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful stop, the one CtrlC (below) asks for


class CtrlC:
    """Ctrl-C during Tuner.fit(), seen by the sweep: Tune's own SIGINT handler ends the run after
    saving its state, then marks the cut trials TERMINATED, so nothing after fit() can tell an
    interrupted sweep from a finished one. This handler takes SIGINT instead (Tune's switch
    TUNE_DISABLE_SIGINT_HANDLER), notes it, and asks for the same graceful stop through Tune's
    other stop signal, SIGUSR1; a second Ctrl-C stops at once (KeyboardInterrupt)."""

    def __init__(self):
        self.pressed = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum, frame) -> None:
        # Tune registers SIGUSR1 only once fit() has set up; before that, stop at once
        if self.pressed or signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.SIG_IGN, None):
            raise KeyboardInterrupt
        self.pressed = True
        print("sweep: Ctrl-C: stopping once Tune has saved its state (Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGUSR1)
