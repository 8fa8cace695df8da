"""Checkpoints: where a cancelled or timed-out CREATE MODEL stops.

A training runs in the caller's thread, between calls into the database, so a cancel cannot
interrupt it the way it interrupts a query. Instead the trainer calls a ``Checkpoint`` (the
engine's, see ``Engine.checkpoint``) between its phases: after reading and preparing the rows,
after preprocessing, after the fit, after the ONNX conversion and after the parity check; the
engine path calls it once more just before the store write. A checkpoint raises
``QueryCanceled`` (57014) once the statement was cancelled, so nothing is stored.

Inside the fit, a checkpoint runs between solver iterations where scikit-learn lets us call
it without changing the result:
- ``LogisticRegression(solver='lbfgs')``: scikit-learn's callback API (``sklearn.callback``,
  new in 1.9); scipy's L-BFGS calls it after every iteration and an exception raised there
  ends ``minimize``. The callbacks only observe.
- ``KMeans``: its Lloyd loop is Python calling one Cython function per iteration
  (``sklearn.cluster._kmeans.lloyd_iter_chunked_dense`` and ``_sparse``, looked up as module
  globals on each fit). ``_install_kmeans_hook`` wraps them once with a pass-through that first
  calls the checkpoint of the training running in this thread (a thread-local: other threads'
  fits see none); the arguments and results are untouched, so the model is the same. This is a
  private name of scikit-learn: the version is pinned below the next minor, and a test fails if
  the hook is gone (tests/test_cancel.py).
The other estimators are one compiled call each and have no hook:
- ``SGDClassifier``/``SGDRegressor`` (``optimize_strategy = 'BATCH_GRADIENT_DESCENT'``) run all
  epochs in one Cython call (``partial_fit`` per epoch would change the learning-rate schedule
  and the stopping rule, so the model);
- ``saga`` and ``ElasticNet``'s coordinate descent (``l1_reg > 0``); ``Ridge`` and
  ``LinearRegression`` solve in one step.
For those a cancel takes effect at the checkpoint after the fit.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable
from typing import Any

Checkpoint = Callable[[], None]


def never() -> None:
    """The checkpoint of work that cannot be cancelled."""


def budgeted(
    checkpoint: Checkpoint, seconds: float | None, clock: Callable[[], float]
) -> Checkpoint:
    """``checkpoint``, which also stops the training (57014) once ``seconds`` have passed
    since now (``max_training_seconds``; None: no budget). Like a cancel, the budget takes
    effect at the training's next checkpoint, and nothing is stored: the version that served
    serves on (a fit stopped halfway is no model anyone asked for; docs/sql.md says why)."""
    if seconds is None:
        return checkpoint
    deadline = clock() + seconds

    def check() -> None:
        checkpoint()
        if clock() > deadline:
            from sqlml import errors

            raise errors.QueryCanceled(
                f"canceling training: max_training_seconds ({seconds:g}) was reached",
                hint="raise max_training_seconds, or train on fewer rows (max_training_rows)",
            )

    return check


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
    if checkpoint is never:
        return
    _set(estimator, _Stopper(checkpoint))
    if _is_kmeans(estimator):
        _install_kmeans_hook()
        _this_thread.checkpoint = checkpoint


def unwatch(estimator: Any) -> None:
    """Drops the callback again: a fitted estimator keeps no reference to the session."""
    _set(estimator)
    _this_thread.checkpoint = None


def _set(estimator: Any, *callbacks: _Stopper) -> None:
    if not hasattr(estimator, "set_callbacks"):
        return
    with warnings.catch_warnings():
        # (LogisticRegression with another solver than lbfgs warns that it ignores them)
        warnings.simplefilter("ignore", UserWarning)
        estimator.set_callbacks(*callbacks)


# -- KMeans: between Lloyd iterations ------------------------------------------------------------

_this_thread = threading.local()  # .checkpoint: the checkpoint of the fit running in this thread
_KMEANS_STEPS = ("lloyd_iter_chunked_dense", "lloyd_iter_chunked_sparse")
_hook_lock = threading.Lock()


def _is_kmeans(estimator: Any) -> bool:
    from sklearn.cluster import KMeans

    return isinstance(estimator, KMeans)


def _install_kmeans_hook() -> bool:
    """Wraps KMeans's per-iteration functions (once per process); False if this scikit-learn
    has none of them (a cancel then waits for the fit's end)."""
    from sklearn.cluster import _kmeans

    with _hook_lock:
        found = False
        for name in _KMEANS_STEPS:
            step = getattr(_kmeans, name, None)
            if step is None:
                continue
            found = True
            if not getattr(step, "_sqlml_checked", False):
                setattr(_kmeans, name, _checked(step))
        return found


def _checked(step: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(step)
    def iteration(*args: Any, **kwargs: Any) -> Any:
        checkpoint = getattr(_this_thread, "checkpoint", None)
        if checkpoint is not None:
            checkpoint()
        return step(*args, **kwargs)

    iteration._sqlml_checked = True  # type: ignore[attr-defined]
    return iteration
