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
from pathlib import Path

from state.redact import redact
from tools.visible import visible

_configured: set[Path] = set()
_lock = threading.Lock()
_formatter = logging.Formatter()


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


def setup_logging(log_dir: Path, level: int = logging.INFO) -> None:
    """Attach one rotating file handler per log folder (idempotent)."""
    log_dir = log_dir.resolve()
    with _lock:
        if log_dir in _configured:
            return
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
        _configured.add(log_dir)
