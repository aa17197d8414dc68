"""Logs under `.tooldeck/logs/`, rotated, with secrets masked before they are written.

A log is read with `tail` and `less` in a terminal, and its messages carry tools' and models' text:
control, bidi and invisible characters are written spelled out (tools/visible.py), never raw.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from state.redact import redact
from tools.visible import visible

_configured: dict[Path, tuple[QuietFileHandler, int]] = {}  # a log folder's handler and its uses
_lock = threading.Lock()
_formatter = logging.Formatter()
# a record after the last runtime let go of its log goes nowhere, not to Python's last resort (stderr:
# over the CLI's output or the dashboard)
for _name in ("tooldeck", "psycopg"):
    logging.getLogger(_name).addHandler(logging.NullHandler())


class RedactingFilter(logging.Filter):
    """Masks the message, and the traceback and stack a record carries, before any handler formats them;
    and spells out their control characters (a log is read in a terminal)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = visible(redact(record.getMessage()))
        record.args = None
        if record.exc_info:
            record.exc_text = _formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = visible(redact(record.exc_text))
        if record.stack_info:
            record.stack_info = visible(redact(record.stack_info))
        return True


class QuietFileHandler(logging.handlers.RotatingFileHandler):
    """A log file that cannot be written (a full disk, a folder gone) is counted, not shouted.

    logging's default prints a `--- Logging error ---` traceback on stderr for every record it
    could not write: on a full disk, ~12,000 of them per process in 20 s, into the caller's own
    stderr (the CLI's output, the dashboard). Here a failed write is counted and reported on
    stderr once per REPORT_SECONDS at most, with the count and the reason."""

    REPORT_SECONDS = 60.0

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.failed = 0  # records not written since the last report
        self.failed_total = 0
        self._reported = -1e9

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self.failed += 1
        self.failed_total += 1
        now = time.monotonic()
        if now - self._reported < self.REPORT_SECONDS:
            return
        self._reported = now
        reason = sys.exc_info()[1]
        try:
            sys.stderr.write(f"tooldeck: cannot write the log {self.baseFilename}: {reason}; "
                             f"{self.failed} records lost (reported at most once a minute)\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        self.failed = 0


def setup_logging(log_dir: Path, level: int = logging.INFO) -> Callable[[], None]:
    """Attach the rotating file handler of `log_dir`, one per folder however many runtimes use it.

    Returns the function that lets go of this use: the last one detaches the handler and closes
    its file. A process that opens and closes runtimes (a test run, a long-lived host) would
    otherwise keep every folder's handler, write each record to every log it ever opened and pay
    for all of them per record: 650 runtimes in one test run made a log line cost 10 ms, and a stderr flood's
    50 logged lines a second took the whole second of the loop that reads it."""
    log_dir = log_dir.resolve()
    with _lock:
        if log_dir in _configured:
            handler, uses = _configured[log_dir]
            _configured[log_dir] = (handler, uses + 1)
            return _releaser(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = QuietFileHandler(log_dir / "tooldeck.log", maxBytes=5 * 1024 * 1024, backupCount=3)
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter())
        logger = logging.getLogger("tooldeck")
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
        # the PostgreSQL pool's own reconnect warnings: into the same file, not onto a terminal
        # (Python's last-resort handler would print them over the dashboard or the CLI's output)
        driver = logging.getLogger("psycopg")
        driver.addHandler(handler)
        driver.setLevel(max(level, logging.WARNING))
        driver.propagate = False
        _configured[log_dir] = (handler, 1)
        return _releaser(log_dir)


def _releaser(log_dir: Path) -> Callable[[], None]:
    released = False

    def release() -> None:
        nonlocal released
        with _lock:
            if released or log_dir not in _configured:
                return
            released = True
            handler, uses = _configured[log_dir]
            if uses > 1:
                _configured[log_dir] = (handler, uses - 1)
                return
            del _configured[log_dir]
            logging.getLogger("tooldeck").removeHandler(handler)
            logging.getLogger("psycopg").removeHandler(handler)
        handler.close()

    return release
