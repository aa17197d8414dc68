"""`tooldeck buffer ...`: write, flush, status, clear and dead-letter, over the same engine as the tool."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from tools.cli.output import console, emit_json, plural, positive_number, print_table, runtime_for, shown
from tools.errors import UsageError, parse_json
from tools.visible import dumps_visible

if TYPE_CHECKING:
    from tools.host import RuntimeHost


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("buffer", help="durable write buffers: write, flush, status, clear, dead-letter")
    bsub = p.add_subparsers(dest="buffer_command", metavar="ACTION", parser_class=type(p))
    p.set_defaults(func=lambda args: _usage(p))

    bid = "the buffer id (letters, digits, _ . -)"
    w = bsub.add_parser("write", help="write items (each a JSON argument; - reads JSON lines from stdin)")
    w.add_argument("buffer_id", help=bid)
    w.add_argument("items", nargs="+", metavar="JSON", help="one JSON value per item, or - for JSON lines on stdin")
    w.add_argument("--max-size", type=positive_number("items", integer=True), dest="max_size",
                   help="items per batch: a batched buffer flushes when this many are pending (default 100)")
    w.add_argument("--interval", type=positive_number("seconds"), dest="flush_interval_seconds",
                   help="seconds the oldest item may wait before a batched flush (default 5)")
    w.add_argument("--strategy", dest="flush_strategy", choices=("batched", "immediate", "manual"),
                   help="when batches go out (default batched)")
    w.add_argument("--pass-through", dest="pass_through_tool", help="the tool id that receives each batch")
    w.add_argument("--max-pending", type=positive_number("items", integer=True), dest="max_pending",
                   help="capacity: items held at most before --when-full applies (default: unbounded)")
    w.add_argument("--when-full", dest="when_full", choices=("block", "drop_newest", "drop_oldest"),
                   help="what a write does when --max-pending items are held (default block)")
    w.set_defaults(func=cmd_write)

    f = bsub.add_parser("flush", help="deliver every pending item of a buffer now")
    f.add_argument("buffer_id", help=bid)
    f.set_defaults(func=cmd_flush)

    s = bsub.add_parser("status", help="pending, fill, rates, last and next flush, retries, dead-letter, drops")
    s.add_argument("buffer_id", nargs="?", help=bid + " (default: every buffer)")
    s.set_defaults(func=cmd_status)

    c = bsub.add_parser("clear", help="discard every item of a buffer (asks first)")
    c.add_argument("buffer_id", help=bid)
    c.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    c.set_defaults(func=cmd_clear)

    d = bsub.add_parser("dead-letter", help="list or replay batches parked after their last retry")
    dsub = d.add_subparsers(dest="dead_command", metavar="list|replay", parser_class=type(p))
    d.set_defaults(func=lambda args: _usage(d))
    dl = dsub.add_parser("list", help="dead-letter batches of a buffer")
    dl.add_argument("buffer_id", help=bid)
    dl.set_defaults(func=cmd_dead_list)
    dr = dsub.add_parser("replay", help="deliver dead-letter batches again now (same batch ids)")
    dr.add_argument("buffer_id", help=bid)
    dr.add_argument("--batch", dest="batch_id", help="only this batch id (default: every dead-letter batch)")
    dr.set_defaults(func=cmd_dead_replay)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _engine(runtime: RuntimeHost) -> Any:
    from tools.buffers import engine_for

    return engine_for(runtime)


def _parse_items(raw: list[str]) -> list[Any]:
    items: list[Any] = []
    for i, text in enumerate(raw):
        if text == "-":
            for n, line in enumerate(sys.stdin, 1):
                if line.strip():
                    items.append(_loads(line, f"stdin line {n}"))
        else:
            items.append(_loads(text, f"item {i + 1}"))
    return items


def _loads(text: str, what: str) -> Any:
    return parse_json(text, what, hint=" (quote strings: '\"text\"')")


def cmd_write(args: argparse.Namespace) -> int:
    items = _parse_items(args.items)
    settings = {k: getattr(args, k) for k in ("max_size", "flush_interval_seconds", "flush_strategy", "pass_through_tool",
                                              "max_pending", "when_full")}
    runtime = runtime_for(args)
    try:
        engine = _engine(runtime)
        result = (engine.write(args.buffer_id, items[0], **settings) if len(items) == 1
                  else engine.write_many(args.buffer_id, items, **settings))
    finally:
        runtime.close()  # delivers what is due (and the rest if nothing else flushes this buffer)
    if args.json_out:
        emit_json(result)
    else:
        written = result.get("written", 1 if result.get("success") else 0)
        dropped = f", {result['dropped']} dropped ({result['when_full']})" if result.get("dropped") else ""
        console().print(shown(f"{args.buffer_id}: {written:,} written, {result['buffered']:,} pending{dropped}"))
    return 0 if written_ok(result) else 1


def written_ok(result: dict[str, Any]) -> bool:
    return bool(result.get("success")) and not result.get("dropped")


def cmd_flush(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    try:
        result = _engine(runtime).flush(args.buffer_id)
    finally:
        runtime.close()
    if args.json_out:
        emit_json(result)
    elif result.get("pass_through_tool", "") is None:
        for item in result["items"]:
            sys.stdout.write(dumps_visible(item) + "\n")
        sys.stderr.write(f"{args.buffer_id}: drained {plural(result['count'], 'item')} (no pass_through_tool), "
                         f"{result['remaining']} left\n")
    else:
        line = (f"{args.buffer_id}: flushed {plural(result['count'], 'item')} in {plural(result['batches'], 'batch', 'batches')}, "
                f"{result['buffered']:,} pending")
        failed, parked = result.get("failed_batches", 0), result.get("dead_letter_batches", 0)
        if failed > parked:
            line += f"; a batch failed and will be retried: {result['error']}"
        if parked:
            line += ((f"; a batch failed: {result['error']}" if failed == parked else "; ")
                     + ("; " if failed == parked else "")
                     + f"{'a batch' if parked == 1 else plural(parked, 'batch', 'batches')} parked as dead-letter after "
                     f"{plural(result['dead_letter_after_attempts'], 'attempt')} "
                     f"(tooldeck buffer dead-letter replay {args.buffer_id})")
        console().print(shown(line))  # the error is the pass-through tool's text
        if result.get("waiting_batches"):
            console().print(f"{args.buffer_id}: the pass-through tool refused the call (circuit open or disabled): "
                            "the batch waits for it, no attempt spent")
    return 0 if result.get("success") else 1


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    delta = ts - now
    if abs(delta) < 0.05:
        return "now"
    return f"in {delta:.1f}s" if delta > 0 else f"{-delta:.1f}s ago"


def cmd_status(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    try:
        engine = _engine(runtime)
        found = engine.status(args.buffer_id)
    finally:
        runtime.close()
    if args.buffer_id is not None and not found:
        from tools.buffers import UnknownBufferError

        raise UnknownBufferError(f"unknown buffer {args.buffer_id!r}: nothing has written to or configured it")
    for s in found:
        if s.warning:
            sys.stderr.write(f"warning: {s.buffer_id}: {s.warning}\n")
    if args.json_out:
        emit_json([s.to_dict() for s in found] if args.buffer_id is None else found[0].to_dict())
        return 0
    now = time.time()
    rows = []
    for s in found:
        last = "-" if s.last_flush_at is None else f"{_ago(s.last_flush_at, now)} {s.last_flush_count} {s.last_flush_result}"
        fill = f"{s.fill_ratio:.0%}" + (f" ({s.pending_ratio:.0%} of max)" if s.pending_ratio is not None else "")
        rows.append((s.buffer_id, s.flush_strategy, f"{s.pending}/{s.max_size}", fill, f"{s.writes_per_s:.1f}",
                     f"{s.flushed_per_s:.1f}", last, _ago(s.next_flush_at, now), s.retries_total,
                     f"{s.dead_letter_batches} ({s.dead_letter_items})", s.dropped_total, s.pass_through_tool or "-",
                     "yes" if s.flushing else ("none" if s.pending else "-")))
    print_table(plural(len(found), "buffer"), ("buffer", "strategy", "pending", "fill", "writes/s", "flushed/s", "last flush",
                                               "next flush", "retries", "dead", "drops", "pass-through", "flusher"), rows,
                keys=("buffer", "pending", "fill", "pass-through"),
                styles=lambda col, v: "red" if col == "flusher" and v == "none" else "")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    try:
        engine = _engine(runtime)
        found = engine.status(args.buffer_id)
        if not found:
            from tools.buffers import UnknownBufferError

            raise UnknownBufferError(f"unknown buffer {args.buffer_id!r}: nothing has written to or configured it")
        s = found[0]
        held = s.pending - s.delivering + s.dead_letter_items  # what clear removes: not a batch being delivered
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError(f"refusing to clear buffer {args.buffer_id!r} ({plural(held, 'item')}) without --yes: "
                                 "no terminal to confirm on")
            busy = f" ({plural(s.delivering, 'item')} being delivered now will not be)" if s.delivering else ""
            answer = input(f"Discard {plural(held, 'item')} of buffer {args.buffer_id!r}{busy}? This cannot be undone [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                sys.stderr.write("tooldeck: not cleared\n")
                return 1
        cleared = engine.clear(args.buffer_id)
    finally:
        runtime.close()
    if args.json_out:
        emit_json({"success": True, "buffer_id": args.buffer_id, "cleared": cleared.removed, "in_flight": cleared.in_flight})
    else:
        console().print(f"{args.buffer_id}: {cleared.text()}")
    return 0


def cmd_dead_list(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    try:
        batches = _engine(runtime).dead_letters(args.buffer_id)
    finally:
        runtime.close()
    if args.json_out:
        emit_json({"buffer_id": args.buffer_id, "dead_letters": batches})
        return 0
    if not batches:
        console().print(f"{args.buffer_id}: no dead-letter batches")
        return 0
    now = time.time()
    print_table(f"{args.buffer_id}: {plural(len(batches), 'dead-letter batch', 'dead-letter batches')}",
                ("batch", "items", "attempts", "parked", "last error"),
                [(b["batch_id"], b["count"], b["attempts"], _ago(b["dead_at"], now), b["last_error"] or "") for b in batches],
                keys=("batch",))
    return 0


def cmd_dead_replay(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    try:
        result = _engine(runtime).replay(args.buffer_id, args.batch_id)
    finally:
        runtime.close()
    if args.json_out:
        emit_json(result)
    else:
        console().print(f"{args.buffer_id}: replayed {plural(len(result['replayed']), 'batch', 'batches')}, "
                        f"{len(result['delivered'])} delivered"
                        + (f", {len(result['failed'])} failed again (back on the retry path)" if result["failed"] else ""))
        if result.get("queued"):
            console().print(f"{args.buffer_id}: {len(result['queued'])} queued: the pass-through tool refused them (circuit "
                            "open or disabled); they wait for it with a fresh attempt count")
    return 0 if result["success"] else 1
