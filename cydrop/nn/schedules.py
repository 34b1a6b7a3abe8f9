"""Dropout-rate schedules: the rate as a pure function of the training step.

A schedule is a callable ``schedule(step) -> rate`` for ``step = 0, 1, ...``:

* :class:`ConstantRate` -- the same rate every step;
* :class:`LinearRate` -- from ``start`` to ``end`` over ``n_steps``, then ``end``;
* :class:`CosineRate` -- a half cosine from ``start`` to ``end`` over ``n_steps``;
* :class:`EarlyDropout` -- ``rate`` for the first ``k`` steps, then 0 (Liu et al. 2023,
  "Dropout reduces underfitting").

:class:`cydrop.nn.Sequential` takes one (``set_rate_schedule``) and sets every dropout layer's
rate to ``schedule(step)`` before each training forward; ``Sequential.step_schedule()`` advances
the step, and :class:`cydrop.nn.Solver` calls it once per update. The masks still come from the
layers' seed streams, whose offsets do not depend on the rate, so a schedule and a seed replay
the same masks. :func:`parse_schedule` reads the ``cydrop train --rate-schedule`` syntax.
"""

import math

from cydrop import _validation

__all__ = ["ConstantRate", "CosineRate", "EarlyDropout", "LinearRate", "RateSchedule",
           "parse_schedule"]


def _steps(value, name):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= 1, got {value!r} of type "
                        f"{type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value}")
    return value


def _step(step):
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"step must be an int >= 0, got {step!r} of type {type(step).__name__}")
    if step < 0:
        raise ValueError(f"step must be an int >= 0, got {step}")
    return step


class RateSchedule:
    """Base class: ``schedule(step)`` returns the drop rate of training step ``step``."""

    def __call__(self, step):
        """The rate at ``step``.

        Parameters
        ----------
        step : int
            ``>= 0``.

        Returns
        -------
        rate : float
        """
        return self.rate_at(_step(step))

    def rate_at(self, step):  # pragma: no cover - every schedule overrides it
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    __hash__ = None


class ConstantRate(RateSchedule):
    """The same rate at every step.

    Parameters
    ----------
    rate : float
    """

    def __init__(self, rate):
        self.rate = _validation.check_probability(rate, "rate")

    def rate_at(self, step):
        return self.rate


class LinearRate(RateSchedule):
    """``start + (end - start) * min(step, n_steps) / n_steps``: linear decay (or growth).

    Parameters
    ----------
    start, end : float
    n_steps : int
    """

    def __init__(self, start, end, n_steps):
        self.start = _validation.check_probability(start, "start")
        self.end = _validation.check_probability(end, "end")
        self.n_steps = _steps(n_steps, "n_steps")

    def rate_at(self, step):
        return self.start + (self.end - self.start) * min(step, self.n_steps) / self.n_steps


class CosineRate(RateSchedule):
    """``end + (start - end) * (1 + cos(pi * min(step, n_steps) / n_steps)) / 2``.

    Parameters
    ----------
    start, end : float
    n_steps : int
    """

    def __init__(self, start, end, n_steps):
        self.start = _validation.check_probability(start, "start")
        self.end = _validation.check_probability(end, "end")
        self.n_steps = _steps(n_steps, "n_steps")

    def rate_at(self, step):
        frac = min(step, self.n_steps) / self.n_steps
        rate = self.end + (self.start - self.end) * (1.0 + math.cos(math.pi * frac)) / 2.0
        return min(1.0, max(0.0, rate))


class EarlyDropout(RateSchedule):
    """Dropout only early in training: ``rate`` for the first ``k`` steps, then 0.

    Parameters
    ----------
    rate : float
    k : int
    """

    def __init__(self, rate, k):
        self.rate = _validation.check_probability(rate, "rate")
        self.k = _steps(k, "k")

    def rate_at(self, step):
        return self.rate if step < self.k else 0.0


_FORMS = {"constant": (ConstantRate, "constant:RATE"),
          "linear": (LinearRate, "linear:START,END,N_STEPS"),
          "cosine": (CosineRate, "cosine:START,END,N_STEPS"),
          "early": (EarlyDropout, "early:RATE,K")}


def parse_schedule(text):
    """Parse a rate schedule written as ``cydrop train --rate-schedule`` takes it.

    The forms: ``constant:RATE``, ``linear:START,END,N_STEPS``, ``cosine:START,END,N_STEPS``
    and ``early:RATE,K``; for example ``early:0.1,200``.

    Parameters
    ----------
    text : str

    Returns
    -------
    schedule : RateSchedule

    Raises
    ------
    ValueError
        An unknown form or wrong arguments, naming the accepted forms.
    """
    if not isinstance(text, str):
        raise TypeError(f"rate schedule must be a str, got {type(text).__name__}")
    name, _, args = text.partition(":")
    forms = ", ".join(f"'{usage}'" for _, usage in _FORMS.values())
    if name.strip() not in _FORMS:
        raise ValueError(f"rate schedule must be one of {forms}, got {text!r}")
    cls, usage = _FORMS[name.strip()]
    parts = [p.strip() for p in args.split(",")] if args.strip() else []
    n_args = usage.count(",") + 1
    if len(parts) != n_args:
        raise ValueError(f"rate schedule {name!r} takes {n_args} argument(s), as {usage!r}; "
                         f"got {text!r}")
    try:
        values = [int(p) if i >= 2 or (cls is EarlyDropout and i == 1) else float(p)
                  for i, p in enumerate(parts)]
    except ValueError:
        raise ValueError(f"rate schedule arguments must be numbers, as {usage!r}; got "
                         f"{text!r}") from None
    return cls(*values)
