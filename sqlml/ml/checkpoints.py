"""Checkpoints: where a cancelled or timed-out CREATE MODEL stops.

A training runs in the caller's thread, between calls into the database, so a cancel cannot
interrupt it the way it interrupts a query. Instead the trainer calls a ``Checkpoint`` (the
engine's, see ``Engine.checkpoint``) between its phases: after reading and preparing the rows,
after preprocessing, after the fit, after the ONNX conversion and after the parity check; the
engine path calls it once more just before the store write. A checkpoint raises
``QueryCanceled`` (57014) once the statement was cancelled, so nothing is stored.

Inside the fit, a checkpoint runs between solver iterations only where scikit-learn offers a
hook that leaves the result unchanged: its callback API (``sklearn.callback``, new in 1.9),
which ``LogisticRegression(solver='lbfgs')`` supports: scipy's L-BFGS calls it after every
iteration and an exception raised there ends ``minimize``. The callbacks only observe; the
fitted model is the same with or without them. The other estimators are one step each:
- ``KMeans`` runs its Lloyd iterations in Cython with no hook;
- ``SGDClassifier``/``SGDRegressor`` run all epochs in one Cython call (``partial_fit`` per
  epoch would change the learning-rate schedule and the stopping rule, so the model);
- ``saga``, ``ElasticNet``'s coordinate descent, ``Ridge`` and ``LinearRegression`` have no
  per-iteration hook either (scipy's ``minimize(callback=...)`` is only reachable through the
  lbfgs path above).
For those a cancel takes effect at the checkpoint after the fit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

Checkpoint = Callable[[], None]


def never() -> None:
    """The checkpoint of work that cannot be cancelled."""


class _Stopper:
    """A scikit-learn fit callback (``sklearn.callback.FitCallback``) that calls the checkpoint
    when each task of the fit begins and ends (for L-BFGS: each iteration)."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint

    def setup(self, estimator: Any, context: Any) -> None:
        self.checkpoint()

    def teardown(self, estimator: Any, context: Any) -> None:
        pass  # (the trainer checks again after the fit)

    def on_fit_task_begin(self, estimator: Any, context: Any, **_: Any) -> None:
        self.checkpoint()

    def on_fit_task_end(self, estimator: Any, context: Any, **_: Any) -> bool:
        self.checkpoint()
        return False  # never asks the solver to stop early: that would change the model


def watch(estimator: Any, checkpoint: Checkpoint) -> None:
    """Makes ``estimator``'s fit call ``checkpoint`` between iterations, where it can."""
    if checkpoint is not never:
        _set(estimator, _Stopper(checkpoint))


def unwatch(estimator: Any) -> None:
    """Drops the callback again: a fitted estimator keeps no reference to the session."""
    _set(estimator)


def _set(estimator: Any, *callbacks: _Stopper) -> None:
    if not hasattr(estimator, "set_callbacks"):
        return
    with warnings.catch_warnings():
        # (LogisticRegression with another solver than lbfgs warns that it ignores them)
        warnings.simplefilter("ignore", UserWarning)
        estimator.set_callbacks(*callbacks)
