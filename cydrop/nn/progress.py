"""Training progress display: a one-line bar on a terminal, plain lines otherwise."""

import sys
import time

__all__ = ["Progress"]


class Progress:
    """Progress of a training run (epoch/step, loss, accuracy, rate).

    On a terminal the display is one line redrawn in place (at most every
    ``min_interval`` seconds); when the stream is not a TTY (a pipe, a log
    file, CI) it prints one plain line every ``every`` epochs instead and
    never writes carriage returns.

    Parameters
    ----------
    num_epochs : int
    steps_per_epoch : int
    label : str, default=''
        Shown on every line, e.g. ``'rate 0.5'``.
    stream : file-like or None, default=None
        ``sys.stdout`` when None.
    every : int or None, default=None
        Plain-line interval in epochs; None picks about 20 lines per run.
    min_interval : float, default=0.1
        Minimum seconds between terminal redraws.
    tty : bool or None, default=None
        Force the terminal (True) or plain (False) mode; None asks
        ``stream.isatty()``.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> p = Progress(2, 3, label="rate 0.5", stream=out, every=1)
    >>> p.epoch_end(1, 0.9, 0.5, 0.4, 0.01); p.close()
    >>> print(out.getvalue().strip())
    epoch 1/2  loss 0.9000  train_acc 0.500  val_acc 0.400  lr 0.01  rate 0.5
    """

    def __init__(self, num_epochs, steps_per_epoch, *, label="", stream=None, every=None,
                 min_interval=0.1, tty=None):
        self.num_epochs = int(num_epochs)
        self.steps_per_epoch = max(int(steps_per_epoch), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stdout
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty()) if callable(isatty) else False
        self.tty = tty
        self.every = every if every else max(1, self.num_epochs // 20)
        self.min_interval = min_interval
        self._last = 0.0
        self._last_acc = None
        self._drawn = False

    def _bar(self, epoch, step, width=20):
        done = (((epoch - 1) * self.steps_per_epoch + step)
                / (self.num_epochs * self.steps_per_epoch))
        n = int(round(done * width))
        return "[" + "#" * n + "-" * (width - n) + f"] {100 * done:5.1f}%"

    def _draw(self, text):
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def step(self, epoch, step, loss):
        """Report a finished step (redraws the bar on a terminal only).

        Parameters
        ----------
        epoch : int
            1-based epoch.
        step : int
            1-based step within the epoch.
        loss : float
        """
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._last < self.min_interval and step != self.steps_per_epoch:
            return
        self._last = now
        acc = "" if self._last_acc is None else f"  val_acc {self._last_acc:.3f}"
        self._draw(f"{self._bar(epoch, step)} epoch {epoch}/{self.num_epochs} "
                   f"step {step}/{self.steps_per_epoch}  loss {loss:.4f}{acc}  "
                   f"{self.label}".rstrip())

    def epoch_end(self, epoch, loss, train_acc, val_acc, lr):
        """Report a finished epoch.

        Parameters
        ----------
        epoch : int
        loss : float
            Mean loss of the epoch.
        train_acc, val_acc : float
        lr : float
            Current learning rate.
        """
        self._last_acc = val_acc
        line = (f"epoch {epoch}/{self.num_epochs}  loss {loss:.4f}  train_acc {train_acc:.3f}  "
                f"val_acc {val_acc:.3f}  lr {lr:.3g}  {self.label}").rstrip()
        if self.tty:
            self._draw(f"{self._bar(epoch, self.steps_per_epoch)} {line}")
        elif epoch % self.every == 0 or epoch == self.num_epochs or epoch == 1:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self):
        """End the display (a newline after a terminal bar)."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
