"""SIGINT and SIGTERM during a run: the handler (:class:`_SignalGuard`) and the exception a
stopped run raises (:class:`RunInterrupted`, carrying what it finished)."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

from .results import RunReport


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM; ``report`` is what it finished (its record written).

    ``exit_status`` is the shell's convention for a signal: 128 + the signal number.
    """

    def __init__(self, signum: int, report: "RunReport"):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.report = report

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class _Signalled(BaseException):
    """Raised in the main thread by the engine's signal handler."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _SignalGuard:
    """Turns SIGINT and SIGTERM into :class:`_Signalled` in the main thread while a run is on
    (nothing is installed outside the main thread)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.received: int | None = None
        self.holding = 0
        self.deferred: int | None = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received = signum
            if self.holding:
                self.deferred = signum  # raised when the held section ends
            else:
                raise _Signalled(signum)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Defer a signal that arrives inside this section to its end (sections are short)."""
        self.holding += 1
        try:
            yield
        finally:
            self.holding -= 1
            if not self.holding and self.deferred is not None:
                signum, self.deferred = self.deferred, None
                raise _Signalled(signum)

    def __enter__(self) -> "_SignalGuard":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def mask(self) -> None:
        """Ignore further signals while the record is written."""
        for sig in self.previous:
            signal.signal(sig, signal.SIG_IGN)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
