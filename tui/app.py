"""The tooldeck dashboard: one screen of live panels over a serving Runtime.

The first frame paints before the runtime exists; the runtime (and its
background loader) starts right after, in a thread worker. A poller thread
gathers snapshots every 200 ms; a 0.1 s tick repaints one panel with new data at
a time, touching only the cells that changed. What the first frame does not need
(dialogs, the command grammar, the palette, subprocess) is imported on first use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widgets import Header, Input, Static
from textual.worker import Worker, WorkerState

from tui.app_actions import OperatorActions
from tui.messages import RuntimeStarted, SnapshotReady
from tui.snapshot import Collector, Snapshot, attention_words, needs_attention
from tui.style import theme_colors
from tui.widgets.activity import ActivityPanel
from tui.widgets.buffers_panel import BuffersPanel
from tui.widgets.command_line import CommandLine
from tui.widgets.evolution_panel import EvolutionPanel
from tui.widgets.failures_panel import FailuresPanel
from tui.widgets.footer import FittedFooter
from tui.widgets.panel import Panel
from tui.widgets.tools_panel import ToolsPanel

POLL_SECONDS = 0.2  # how often the poller tails the event log and re-reads state
TICK_SECONDS = 0.1  # each tick repaints the one panel that has waited longest for new data
#: below this size the panels show one at a time, as tabs (1-5 switch), so each keeps its rows
COMPACT_WIDTH, COMPACT_HEIGHT = 110, 30
PANEL_IDS = ("tools-panel", "buffers-panel", "failures-panel", "evolution-panel", "activity-panel")



_MODIFIERS = {"ctrl", "shift", "alt", "meta", "super", "hyper"}


def bad_keys(spec: str) -> str | None:
    """Why a `[keymap]` value names a key no terminal sends (None: every comma-separated key is one), e.g.
    `ctrl+q`, `F`, `f5`, `question_mark`, `ctrl+shift+up`."""
    import unicodedata

    from textual.keys import KEY_NAME_REPLACEMENTS, Keys

    names = {k.value for k in Keys} | set(KEY_NAME_REPLACEMENTS) | set(KEY_NAME_REPLACEMENTS.values()) | {"space"}
    for key in (part.strip() for part in spec.split(",")):
        *mods, base = key.split("+") if key not in ("+",) else [key]
        if not base or any(m not in _MODIFIERS for m in mods):
            return f"{key!r}: modifiers are {', '.join(sorted(_MODIFIERS))}"
        if len(base) == 1 or base in names:
            continue
        try:
            unicodedata.lookup(base.replace("_", " "))  # textual names a character by its Unicode name: question_mark
        except KeyError:
            return f"{key!r}: no key is called {base!r}"
    return None

class TooldeckApp(OperatorActions, App[int]):
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))
    TITLE = "tooldeck"
    COMMANDS = App.COMMANDS | {lambda: _palette()}
    #: a maximised panel keeps the header (what needs attention), the banner, the filter and command boxes, the
    #: status line and the footer: filtering it shows what is typed, and the keys stay in view
    ALLOW_IN_MAXIMIZED_VIEW = "Header, #banner, #filter-input, #command-input, #status-line, Footer"
    ESCAPE_TO_MINIMIZE = False  # esc clears a filter first (action_escape), then un-maximises
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="quit_ctrl_c"),
        Binding("question_mark", "help", "Keys", id="help"),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("colon", "command_line", "Command", id="command_line"),
        Binding("s", "sort", "Sort", id="sort"),
        Binding("space", "toggle_pause", "Pause", id="pause"),
        Binding("z", "toggle_maximize", "Maximise", id="maximize"),
        Binding("w", "sessions", "Sessions", id="sessions"),
        Binding("escape", "escape", "Back", show=False, id="escape"),
        *[Binding(str(n), f"jump({n})", f"Panel {n}", show=False, id=f"jump_{n}") for n in range(1, 6)],
    ]

    def __init__(self, workspace: str | os.PathLike[str] | None = None, *, demo: bool = False, traffic: bool = False,
                 runtime: Any = None, poll_seconds: float = POLL_SECONDS, live: bool = True) -> None:
        """`live=False` renders only the snapshots it is given (layout snapshots, the paint benchmark)."""
        from tui.terminal import driver_class

        super().__init__(driver_class=driver_class(self._terminal_gone))
        self.workspace = workspace
        self.demo = demo
        self.traffic = traffic
        self.runtime: Any = runtime
        self.poll_seconds = poll_seconds
        self.latest: Snapshot | None = None
        self._store_error: str | None = None  # why the poller cannot read the state store now, if it cannot
        self.paused = False
        self._stale: dict[str, float] = {}  # panel id -> when its data changed (not yet repainted)
        self._backlog: list[Any] = []  # events of snapshots not yet applied (paused, or between ticks)
        self._fingerprints: dict[str, Any] = {}
        self._stop = threading.Event()
        self._traffic_proc: Any = None  # subprocess.Popen of the demo traffic generator
        self._owns_runtime = runtime is None
        self.first_paint_at: float | None = None
        self.live = live
        self.snapshots_applied = 0
        self.signalled: int | None = None
        self._event_loop: Any = None
        self.compact = False
        self._locked_since: float | None = None  # when another process was first seen holding the write lock
        self._badges: dict[int, int] = {}  # panel number -> what needs attention there (the tabs' badges)

    # -- layout --------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="▣")
        yield Static("", id="banner", classes="hidden")
        yield Static("", id="tabs", classes="hidden")
        yield Input(placeholder="filter the focused panel (esc clears)", id="filter-input", classes="hidden")
        with Grid(id="panels"):
            yield ToolsPanel(id="tools-panel")
            yield BuffersPanel(id="buffers-panel")
            yield FailuresPanel(id="failures-panel")
            yield EvolutionPanel(id="evolution-panel")
            yield ActivityPanel(id="activity-panel")
        yield Static("", id="status-line")
        yield CommandLine(placeholder=':  /tool call TOOL {json}   /tool evolve TOOL "hint"   /buffer flush ID   /spec PATH',
                          id="command-input", classes="hidden", suggester=None)
        yield FittedFooter(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "starting…"
        self.set_interval(TICK_SECONDS, self._tick)
        self.set_interval(1.0, self._count_lock)
        self.main.query_one("#tools-table").focus()
        self.call_after_refresh(self._after_first_paint)
        self._install_signal_handlers()
        self.theme_changed_signal.subscribe(self, lambda _theme: self._retheme())

    def _retheme(self) -> None:
        """A new theme: every panel shows what it shows now in the new theme's readable colours at once (Activity's
        lines too), so no colour of the old theme stays behind on the new background."""
        colors = theme_colors(self)
        for panel in self.main.query(Panel):
            if isinstance(panel, ActivityPanel):
                panel.restyle(colors)
            elif self.latest is not None:
                panel.apply(self.latest, colors)
                self._fingerprints[panel.id or ""] = (self.current_theme.name, panel.fingerprint(self.latest))

    def _install_signal_handlers(self) -> None:
        """SIGTERM and SIGHUP (the terminal closed, `tmux kill-session`) quit like `q`: the screen is restored and
        everything the dashboard started is stopped by `shutdown` after `run` returns."""
        import asyncio

        try:
            loop = self._event_loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(signum, self._signalled, signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests), or no signals here
            pass

    def _signalled(self, signum: int) -> None:
        self.signalled = signum
        self._stop.set()
        self.exit(128 + signum)

    def _terminal_gone(self) -> None:
        """From the writer thread: the terminal closed (EIO). Quit as if SIGHUP had arrived."""
        loop = self._event_loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._signalled, signal.SIGHUP)

    def _after_first_paint(self) -> None:
        self.first_paint_at = time.perf_counter()
        if self.live:
            self.start_runtime()

    # -- runtime and polling (thread workers) --------------------------------------

    @work(thread=True, exclusive=True, group="runtime", exit_on_error=False)
    def start_runtime(self) -> None:
        if self.runtime is None:
            from tools.runtime import Runtime

            self.runtime = Runtime(self.workspace, serve=True, demo=self.demo, label="dashboard", kind="dashboard")
        self.post_message(RuntimeStarted(self.runtime))

    def on_runtime_started(self, message: RuntimeStarted) -> None:
        self._apply_keymap()
        self.poll()
        if self.traffic:
            self.start_traffic()

    def _apply_keymap(self) -> None:
        try:
            keymap = self.runtime.settings.section("keymap")
        except Exception as exc:  # a broken tooldeck.toml is shown, not fatal
            self.set_status(f"settings: {exc}", error=True)
            return
        if keymap:
            good = {str(k): str(v) for k, v in keymap.items() if isinstance(v, str) and not bad_keys(v)}
            bad = [f"{k} = {v!r} ({bad_keys(v) if isinstance(v, str) else 'not a key name'})"
                   for k, v in keymap.items() if str(k) not in good]
            if bad:  # left as they were: a key that can never be pressed would leave the action without one
                self.set_status(f"tooldeck.toml [keymap]: not a key, kept the default: {'; '.join(bad)}", error=True)
            if good:
                self.set_keymap(good)

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def poll(self) -> None:
        collector = Collector(self.runtime)
        with contextlib.suppress(Exception):  # a store that failed to open shows in the header (collect())
            self.runtime.require_store(30)
        try:
            collector.start_from_recent()
        except Exception as exc:  # noqa: BLE001 - reported in the header by collect()
            self.call_from_thread(self.set_status, f"event log: {exc}", True)
        down_since: float | None = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                snapshot = collector.collect()
            except Exception as exc:  # noqa: BLE001 - the state store is unreachable (a database restarting):
                # keep the last frame on screen, say so, and look again (the store reconnects by itself)
                if down_since is None:
                    down_since = started
                self.call_from_thread(self.store_down, f"{type(exc).__name__}: {exc}", started - down_since)
                self._stop.wait(min(2.0, max(self.poll_seconds, (started - down_since) / 4)))
                continue
            if down_since is not None:
                self.call_from_thread(self.store_down, None, started - down_since)
                down_since = None
            self.post_message(SnapshotReady(snapshot))
            self._stop.wait(max(0.0, self.poll_seconds - (time.monotonic() - started)))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        """Note which panels have new data; `_tick` repaints them one at a time."""
        snapshot = message.snapshot
        self.latest = snapshot
        if not self._accepting():
            return
        self._backlog.extend(snapshot.events)
        del self._backlog[:-2000]
        now = time.monotonic()
        theme = self.current_theme.name
        for panel in self.main.query(Panel):
            if isinstance(panel, ActivityPanel):
                changed = bool(self._backlog)
            else:
                key = panel.fingerprint(snapshot)
                changed = key is None or self._fingerprints.get(panel.id or "") != (theme, key)
                if not changed:  # equal but maybe new objects (a re-read list): keep these, so the next
                    self._fingerprints[panel.id or ""] = (theme, key)  # comparison is by identity, not 10,000 __eq__
            if changed:
                self._stale.setdefault(panel.id or "", now)
            panel.arrived(snapshot)
        self._show_title(snapshot)

    def _tick(self) -> None:
        """Repaint the panel that has waited longest for its new data (one table repaint per frame).

        A visible DataTable repaint costs tens of milliseconds; repainting every changed panel
        in one frame made frames of 70+ ms under demo traffic. One panel per 0.1 s tick keeps
        every frame short while each busy panel still refreshes at least twice a second.
        """
        if self.paused or not self._stale or self.latest is None or not self._accepting():
            return
        panel_id = min(self._stale, key=self._stale.__getitem__)
        del self._stale[panel_id]
        panel = self.main.query_one(f"#{panel_id}", Panel)
        snapshot = self.latest
        if isinstance(panel, ActivityPanel):
            snapshot = dataclasses.replace(snapshot, events=self._backlog)
            self._backlog = []
        key = panel.fingerprint(snapshot)
        with self.batch_update():
            panel.apply(snapshot, theme_colors(self))
        self._fingerprints[panel_id] = (self.current_theme.name, key)
        self.snapshots_applied += 1

    def _count_lock(self) -> None:
        """`STATE LOCKED n s` counts on this clock, not only when a snapshot arrives: while another process holds
        the write lock, a write the poller must make waits for it, and the header stopped at its last frame."""
        if self._locked_since is not None and self.latest is not None and self._accepting():
            self._show_title(self.latest)

    def store_down(self, error: str | None, seconds: float) -> None:
        """The poller could not read the state store for `seconds` (None: it can again)."""
        self._store_error = error
        with contextlib.suppress(Exception):  # a file deleted under it is why a store cannot be read, often
            self._show_banner(self.runtime.store.file_problem())
        if error is None:
            self.set_status(f"state store reachable again after {seconds:.0f} s")
        else:
            since = time.strftime("%H:%M:%S", time.localtime(time.time() - seconds))
            self.set_status(f"state store unreachable since {since}; the panels show the last data read: {error}", True)
        if self.latest is not None:
            self._show_title(self.latest)

    def _show_banner(self, problem: str | None) -> None:
        """A red line over the panels while the data shown is not the workspace's state any more."""
        banner = self.query_one("#banner", Static)
        text = "" if problem is None else (
            f"⚠ {problem}. The panels show what it held then, and what this dashboard writes now is lost: "
            "quit (q) and start tooldeck again to open the workspace's database as it is now.")
        if str(banner.render()) != text:
            banner.update(text)
        banner.set_class(problem is None, "hidden")

    def _show_title(self, snapshot: Snapshot) -> None:
        self._show_banner(snapshot.stale)
        title = snapshot.summary
        if snapshot.write_blocked:  # said at once, with its age, as a PostgreSQL outage is
            self._locked_since = self._locked_since or time.time()
            title = f"STATE LOCKED {time.time() - self._locked_since:.0f} s: another process holds the write lock · " + title
        elif self._locked_since is not None:
            self.set_status(f"the state's write lock is free again after {time.time() - self._locked_since:.0f} s")
            self._locked_since = None
        if snapshot.stale:
            title = "STALE: DATABASE " + ("DELETED" if "deleted" in snapshot.stale else "REPLACED") + " · " + title
        elif self._store_error:
            title = "STATE UNREACHABLE · " + title
        if snapshot.backend.get("backend") == "postgresql":  # shared by several nodes: say so (SQLite is the default)
            hosts = {r.get("host") for r in snapshot.sessions}
            title += f" · postgresql, {len(hosts)} host{'s' if len(hosts) != 1 else ''}"
        title = ("PAUSED · " if self.paused else "") + title
        attention = needs_attention(snapshot)
        if attention:
            title += " · needs attention: "
            title += attention_words(attention, self._title_room() - cell_len(title))
        if snapshot.errors:  # free text: cut at the edge with … if it must be
            title += f" · {snapshot.errors[0]}"
        badges = {a.panel: a.count for a in attention}
        if badges != self._badges:
            self._badges = badges
            if self.compact:
                self._show_tab(self.focused_panel() or self.main.query_one("#tools-panel", Panel))
        if self.sub_title != title:
            self.sub_title = title

    def _retitle(self) -> None:
        if self.latest is not None:
            self._show_title(self.latest)

    def _title_room(self) -> int:
        """The cells the header has for `sub_title` at the terminal's width: less its icon and clock space (the
        difference between the header and its title, fixed) and the title before it (`tooldeck — `)."""
        header = self.main.query_one(Header)
        title = header.query_one("HeaderTitle")
        return self.size.width - (header.size.width - title.size.width) - self.format_title(self.title, " ").cell_length + 1

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Apply a whole snapshot to every panel at once (first frames, layout snapshots)."""
        self.latest = snapshot
        colors = theme_colors(self)
        theme = self.current_theme.name
        with self.batch_update():
            for panel in self.main.query(Panel):
                panel.apply(snapshot, colors)
                self._fingerprints[panel.id or ""] = (theme, panel.fingerprint(snapshot))
            self._show_title(snapshot)
        self.snapshots_applied += 1

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker errors are routed: the status line and the activity log. A worker that fails
        while the dashboard closes (its widgets already gone) has no screen left to say it on."""
        if not self.screen_stack:
            return
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            self.set_status(f"{event.worker.name}: {type(error).__name__}: {error}", error=True)

    # -- traffic (tooldeck demo) ---------------------------------------------------

    def start_traffic(self) -> None:
        """The demo's traffic generator (the demo room's process: tools/cli/demo_traffic.py)."""
        from tools.cli.demo_traffic import start_generator

        self._traffic_proc = start_generator(self.runtime.workspace, self.runtime.home / "logs" / "traffic.log")

    def stop_traffic(self) -> None:
        from tools.cli.demo_traffic import stop_generator

        proc, self._traffic_proc = self._traffic_proc, None
        stop_generator(proc)

    def on_resize(self, event: Any) -> None:
        """A small terminal shows one panel at a time (tabs); a large one gives the activity strip more rows."""
        compact = event.size.width < COMPACT_WIDTH or event.size.height < COMPACT_HEIGHT
        main = self.main
        grid = main.query_one("#panels")
        if compact != self.compact:
            self.compact = compact
            main.set_class(compact, "-compact")
            main.query_one("#tabs").set_class(not compact, "hidden")
            self._show_tab(self.focused_panel() or main.query_one("#tools-panel", Panel))
        self.call_after_refresh(self._retitle)  # what needs attention is said in the width there is once resized
        if compact:
            grid.styles.grid_rows = "1fr"
        else:
            rows = 5 if event.size.height < 36 else 9 if event.size.height < 56 else 13
            grid.styles.grid_rows = f"1fr 1fr {rows}"

    def _show_tab(self, panel: Panel) -> None:
        """In compact mode, show `panel` alone and mark its tab."""
        main = self.main
        for other in main.query(Panel):
            other.set_class(other is panel, "-current")
        tabs = Text()
        for i, pid in enumerate(PANEL_IDS, 1):
            name = main.query_one(f"#{pid}", Panel).title
            tabs.append(f" {i} {name}", style="reverse" if pid == panel.id else "")
            if self._badges.get(i):
                tabs.append(f" {self._badges[i]}", style="bold reverse red" if pid != panel.id else "bold red reverse")
            tabs.append(" ", style="reverse" if pid == panel.id else "")
        main.query_one("#tabs", Static).update(tabs)

    def action_jump(self, number: int) -> None:
        """1-5: focus that panel's main table (z then maximises it); in compact mode, show it."""
        panel = self.main.query_one(f"#{PANEL_IDS[number - 1]}", Panel)
        if self.screen.maximized is not None:
            self.screen.minimize()
        if self.compact:
            self._show_tab(panel)
        panel.focus_main()

    def on_unmount(self) -> None:
        # thread workers must end before asyncio's executor shutdown, or quitting would hang
        self._stop.set()

    def shutdown(self) -> None:
        """Stop polling, the traffic generator and the runtime (its workers and flushes)."""
        self._stop.set()
        self.stop_traffic()
        if self.runtime is not None and self._owns_runtime:
            self.runtime.close()

    def _accepting(self) -> bool:
        """False while the app is starting up or tearing down (no dashboard screen to paint)."""
        return bool(self.screen_stack) and self.is_running and not self._stop.is_set()

    @property
    def main(self) -> Any:
        """The dashboard screen, even while a dialog is on top (queries on `self` see the top screen)."""
        return self.screen_stack[0]

def _palette() -> Any:
    from tui.palette import TooldeckCommands

    return TooldeckCommands


def run_dashboard(*, workspace: str | None, demo: bool = False, traffic: bool = False) -> int:
    """Run the dashboard; after the screen is restored, stop what it started behind one "stopping" line."""
    app = TooldeckApp(workspace, demo=demo, traffic=traffic)
    try:
        app.run()
    finally:
        if app.runtime is not None or app._traffic_proc is not None:
            _say("tooldeck: stopping (finishing in-flight flushes)…")
        app.shutdown()
    if app.signalled is not None:
        _say(f"tooldeck: stopped by {signal.Signals(app.signalled).name}")
    return int(app.return_code or 0)


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except OSError:  # the terminal is gone (SIGHUP): nothing to tell, the shutdown still runs
        pass
