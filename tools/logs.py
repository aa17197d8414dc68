"""Logs under `.tooldeck/logs/`, rotated, with secrets masked before they are written.

A log is read with `tail` and `less` in a terminal, and its messages carry tools' and models' text:
control, bidi and invisible characters are written spelled out (tools/visible.py), never raw.
"""

from __future__ import annotations

import logging
import logging.handlers
import threading
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


def setup_logging(log_dir: Path, level: int = logging.INFO) -> None:
    """Attach one rotating file handler per log folder (idempotent)."""
    log_dir = log_dir.resolve()
    with _lock:
        if log_dir in _configured:
            return
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(log_dir / "tooldeck.log", maxBytes=5 * 1024 * 1024, backupCount=3)
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
