"""How a sandboxed process is started: bubblewrap, the hardened `unshare` fallback, or neither.

Both namespace launchers give the candidate the same view of the machine:

- `/usr` (with the `/bin`, `/lib`, `/lib64`, `/sbin` links), and the interpreter's prefix
  when it lives elsewhere (a pyenv or a venv's base): read-only, site-packages covered;
- `/etc` with passwd and group lines for root and nobody (65534) and the linker cache;
  no resolv.conf, no hosts, nothing else;
- `/proc` of its own PID namespace; `/dev` with null, zero, full, random, urandom, tty;
  `/dev/shm` a small tmpfs;
- `/sandbox`, the throwaway folder: a size-limited tmpfs (the disk quota) holding the
  runner and the candidate as written (read-only binds), and `work/` (cwd, HOME) and
  `tmp/` (TMPDIR, and `/tmp`) for it to write;
- nothing else of the host: not the workspace, the database, the runtime's home, host
  sockets or world-writable folders. The root itself is read-only.

plus new network (only a downed loopback), IPC (SysV shared memory and queues die with
it), UTS, PID and cgroup namespaces, uid 65534 with no capabilities and no_new_privs, and death
with the runtime (bwrap's --die-with-parent; the fallback's parent-death signal and
`--kill-child`). A runtime that runs as root starts bubblewrap privileged and drops to
the real uid 65534 inside; one that does not gets a user namespace (where the kernel
refuses user namespaces, bubblewrap cannot start and the fallback needs root, so the
launcher is `none`: rlimits, a clean environment and the audit hook only, and every
result says so).

The throwaway tmpfs and /dev/shm have an inode limit where the launcher can mount them itself
(the unshare fallback; bubblewrap as root, behind a private mount namespace, since bwrap's
--tmpfs takes only --size). bubblewrap reads its options from a file (`--args`), so its pid 1's
command line inside shows no host path. The run's cgroup (tools.evolution.cgroups) is entered
by the launcher's first process, before anything of the run starts.

`probe()` finds once per process the strongest launcher that works here and records what
its probe run observed (uid, network, host files, IPC namespace, read-only root, quota).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOBODY = 65534
SANDBOX = "/sandbox"
MAX_PROCESSES = 64
MAX_FILE_BYTES = 64 * 1024 * 1024
DISK_MB = 64  # the throwaway folder's tmpfs
DISK_INODES = 16384  # its files and folders: each costs the kernel ~1 KB that no size limit counts
SHM_MB = 16
SHM_INODES = 1024
PASSWD = "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/sandbox/work:/usr/sbin/nologin\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_ROOT_LINKS = ("bin", "lib", "lib64", "lib32", "libx32", "sbin")

#: the fallback's view, built as root inside fresh mount/PID/net/IPC/UTS namespaces
_UNSHARE_SCRIPT = r"""
set -eu
host=$1; disk=$2; shm=$3; binds=$4; hidden=$5; inodes=$6; shm_inodes=$7; shift 7
outer_path=$PATH
PATH=/usr/sbin:/usr/bin:/sbin:/bin
R="$host/root"
mount -t tmpfs -o size=1m,mode=755 tooldeck-root "$R"
cd "$R"
mkdir usr proc dev etc sandbox .old
mount -o bind,ro,nosuid,nodev /usr usr
for d in bin lib lib64 lib32 libx32 sbin; do
  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$d"
  elif [ -d "/$d" ]; then mkdir "$d"; mount -o bind,ro,nosuid,nodev "/$d" "$d"; fi
done
IFS=:
for b in $binds; do mkdir -p ".$b"; mount -o bind,ro,nosuid,nodev "$b" ".$b"; done
for h in $hidden; do mount -t tmpfs -o size=4k,mode=755,ro,nosuid,nodev tooldeck-hidden ".$h"; done
unset IFS
mount -t proc -o nosuid,nodev,noexec proc proc
mount -t tmpfs -o size=64k,mode=755,nosuid tooldeck-dev dev
for n in null zero full random urandom tty; do touch "dev/$n"; mount --bind "/dev/$n" "dev/$n"; done
ln -s /proc/self/fd dev/fd; ln -s /proc/self/fd/0 dev/stdin; ln -s /proc/self/fd/1 dev/stdout; ln -s /proc/self/fd/2 dev/stderr
mkdir dev/shm; mount -t tmpfs -o "size=$shm,nr_inodes=$shm_inodes,mode=1777,nosuid,nodev" tooldeck-shm dev/shm
cp "$host/etc/passwd" "$host/etc/group" etc/
if [ -f /etc/ld.so.cache ]; then cp /etc/ld.so.cache etc/; fi
mount -t tmpfs -o "size=$disk,nr_inodes=$inodes,mode=755,nosuid,nodev" tooldeck-sandbox sandbox
mkdir sandbox/_runner sandbox/_src sandbox/tool sandbox/work sandbox/tmp
mount -o bind,ro,nosuid,nodev "$host/_runner" sandbox/_runner
mount -o bind,ro,nosuid,nodev "$host/_src" sandbox/_src
chmod 0777 sandbox/tool sandbox/work; chmod 1777 sandbox/tmp
ln -s sandbox/tmp tmp
pivot_root . .old
cd /
umount -l /.old
rmdir /.old
mount -o remount,bind,ro /
cd /sandbox/work
PATH=$outer_path
exec "$@"
"""

#: the first process of every run: into the run's cgroups (each file named before `--`), then the launcher
_PLACE_SCRIPT = r"""
while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done
shift
exec "$@"
"""

#: bubblewrap as root: its throwaway tmpfs and /dev/shm mounted with an inode limit (bwrap's --tmpfs takes
#: only --size) in a private mount namespace that dies with the run; then bwrap reads its options from a
#: file, so its /proc/1/cmdline inside shows no host path (only the command, which has none)
_BWRAP_SCRIPT = r"""
set -eu
while [ "$1" != -- ]; do echo $$ > "$1"; shift; done  # the run's cgroups (unshare --mount does not fork)
host=$2
if [ "$3" != - ]; then
  mount -t tmpfs -o "size=$3,nr_inodes=$4,mode=755,nosuid,nodev" tooldeck-sandbox "$host/disk"
  mount -t tmpfs -o "size=$5,nr_inodes=$6,mode=1777,nosuid,nodev" tooldeck-shm "$host/shm"
fi
bwrap=$7
shift 7
exec "$bwrap" --args 3 -- "$@" 3< "$host/bwrap.args"
"""

_PROBE_CODE = r"""
import json, os, socket, sys
out = {"uid": os.getuid(), "ipc": os.readlink("/proc/self/ns/ipc"), "pid": os.getpid(),
       "python": "%d.%d" % sys.version_info[:2]}
s = socket.socket()
s.settimeout(0.5)
try:
    s.connect(("1.1.1.1", 53)); out["net"] = True
except OSError:
    out["net"] = False
out["host_visible"] = os.path.exists(os.environ["PROBE_MARKER"])
try:
    open("/.tooldeck-probe", "w").close(); out["root_writable"] = True
except OSError:
    out["root_writable"] = False
try:
    st = os.statvfs(sys.argv[1]); out["quota_mb"] = st.f_blocks * st.f_frsize // (1024 * 1024); out["inodes"] = st.f_files
except OSError:
    out["quota_mb"] = out["inodes"] = None
try:
    out["pid1_clean"] = os.environ["PROBE_HOST"].encode() not in open("/proc/1/cmdline", "rb").read()
except OSError:
    out["pid1_clean"] = True
print(json.dumps(out))
"""


def _others_can_run(path: str) -> bool:
    """Whether a user who is neither owner nor group (the sandbox user) can execute `path`."""
    real = Path(os.path.realpath(path))
    try:
        if not real.is_file() or real.stat().st_mode & 0o005 != 0o005:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in real.parents)
    except OSError:
        return False


def interpreter(drop_user: bool) -> str:
    """For the launcher `none`: this Python, or (when the sandbox user cannot reach it, e.g. under
    /root) a system interpreter of the same major.minor version."""
    if not drop_user or _others_can_run(sys.executable):
        return sys.executable
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (getattr(sys, "_base_executable", ""), f"/usr/bin/python{minor}", f"/usr/local/bin/python{minor}"):
        if candidate and _others_can_run(candidate):
            return os.path.realpath(candidate)
    return sys.executable


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _base_interpreter() -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(the base interpreter, read-only binds it needs outside /usr, its site-packages to cover)."""
    python = os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable)
    binds: list[str] = []
    for path in (os.path.realpath(sys.base_prefix), os.path.dirname(python)):
        if not _under(path, ["/usr", *binds]):
            binds.append(path)
    hidden: list[str] = []
    try:
        done = subprocess.run([python, "-I", "-c", "import json, site; print(json.dumps(site.getsitepackages()))"],
                              capture_output=True, timeout=20, env={"PATH": "/usr/bin:/bin"})
        for path in json.loads(done.stdout.decode() or "[]"):
            real = os.path.realpath(path)
            if os.path.isdir(real) and _under(real, ["/usr", *binds]):
                hidden.append(real)
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    return python, tuple(binds), tuple(hidden)


@dataclass(frozen=True)
class Launcher:
    """How a sandboxed process is started here, and what its probe saw held."""

    name: str  # bwrap | unshare | none
    python: str = sys.executable
    as_root: bool = False  # the runtime is root: drop to the real uid 65534 inside
    binds: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    protections: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def isolated(self) -> bool:
        return self.name != "none"

    def root(self, host: Path) -> Path:
        """Where the throwaway folder is, as the candidate sees it."""
        return Path(SANDBOX) if self.isolated else host

    def _drop(self) -> list[str]:
        if not self.as_root:
            return []
        # a change of uid clears the parent-death signal: set it again, so the sandbox dies with its launcher
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", "--nnp", "--pdeathsig=SIGKILL", "--"]

    @property
    def inode_limit(self) -> int | str:
        """The throwaway tmpfs's inode limit, or why it has none."""
        if self.name == "unshare" or (self.name == "bwrap" and self.as_root and shutil.which("unshare")):
            return DISK_INODES
        if self.name == "bwrap":
            return "none: bubblewrap's --tmpfs takes no nr_inodes, and a runtime that is not root cannot mount one"
        return "none: no throwaway tmpfs without namespaces"

    def argv(self, host: Path, command: list[str], *, disk_mb: int = DISK_MB, shm_mb: int = SHM_MB,
             cgroup_procs: list[str] | tuple[str, ...] = ()) -> list[str]:
        """The command line that starts `command` in the sandbox; `cgroup_procs`: the run's cgroups to enter first."""
        if self.name == "bwrap":
            return self._bwrap(host, command, disk_mb, shm_mb, cgroup_procs)
        if self.name == "unshare":
            argv = ["unshare", "--mount", "--net", "--ipc", "--uts", "--pid", "--cgroup", "--fork", "--kill-child",
                    "--propagation", "private", "--", "sh", "-c", _UNSHARE_SCRIPT, "sh", str(host),
                    str(disk_mb * 1024 * 1024), str(shm_mb * 1024 * 1024), ":".join(self.binds),
                    ":".join(self.hidden), str(DISK_INODES), str(SHM_INODES), *self._drop(), *command]
        else:
            argv = [*self._drop(), *command]
        if cgroup_procs:  # entered before anything of the run starts: every later process is born inside
            argv = ["sh", "-c", _PLACE_SCRIPT, "sh", *cgroup_procs, "--", *argv]
        return argv

    def _bwrap(self, host: Path, command: list[str], disk_mb: int, shm_mb: int, cgroup_procs: list[str] | tuple[str, ...]
               ) -> list[str]:
        """bwrap with its arguments in a file (`--args`); as root, behind a mount namespace with inode-limited tmpfs."""
        own_mounts = self.inode_limit == DISK_INODES
        args = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session", "--hostname", "tooldeck-sandbox"]
        if not self.as_root:
            args += ["--unshare-user", "--disable-userns", "--uid", str(NOBODY), "--gid", str(NOBODY)]
        args += ["--ro-bind", "/usr", "/usr"]
        for name in _ROOT_LINKS:
            path = f"/{name}"
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        made: set[str] = set()
        for path in self.binds:  # parents made world-traversable first (bwrap copies no modes for them)
            for parent in reversed(Path(path).parents[:-1]):
                if str(parent) not in made:
                    made.add(str(parent))
                    args += ["--perms", "0755", "--dir", str(parent)]
            args += ["--ro-bind", path, path]
        for path in self.hidden:
            args += ["--size", "4096", "--tmpfs", path, "--remount-ro", path]
        args += ["--proc", "/proc", "--dev", "/dev"]
        if own_mounts:
            args += ["--bind", str(host / "shm"), "/dev/shm"]
        else:
            args += ["--perms", "1777", "--size", str(shm_mb * 1024 * 1024), "--tmpfs", "/dev/shm"]
        args += ["--dir", "/etc", "--ro-bind", str(host / "etc" / "passwd"), "/etc/passwd",
                 "--ro-bind", str(host / "etc" / "group"), "/etc/group",
                 "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
        if own_mounts:
            args += ["--bind", str(host / "disk"), SANDBOX]
        else:
            args += ["--perms", "0755", "--size", str(disk_mb * 1024 * 1024), "--tmpfs", SANDBOX]
        args += ["--ro-bind", str(host / "_runner"), f"{SANDBOX}/_runner", "--ro-bind", str(host / "_src"), f"{SANDBOX}/_src",
                 "--perms", "0777", "--dir", f"{SANDBOX}/tool", "--perms", "0777", "--dir", f"{SANDBOX}/work",
                 "--perms", "1777", "--dir", f"{SANDBOX}/tmp",
                 "--symlink", "sandbox/tmp", "/tmp", "--remount-ro", "/", "--chdir", f"{SANDBOX}/work"]
        if self.as_root:
            for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
                args += ["--cap-add", cap]
        (host / "bwrap.args").write_bytes(b"".join(arg.encode() + b"\0" for arg in args))
        bwrap = shutil.which("bwrap") or "bwrap"
        script = ["sh", "-c", _BWRAP_SCRIPT, "sh", *cgroup_procs, "--", str(host)]
        sizes = [str(disk_mb * 1024 * 1024), str(DISK_INODES), str(shm_mb * 1024 * 1024), str(SHM_INODES)]
        if own_mounts:
            return ["unshare", "--mount", "--propagation", "private", "--", *script, *sizes, bwrap, *self._drop(), *command]
        return [*script, "-", "-", "-", "-", bwrap, *self._drop(), *command]


# -- the host side of a throwaway folder --------------------------------------------------------


def prepare_host(host: Path) -> None:
    """The folders a launcher binds: `_runner` (runner, guard, spec), `_src` (the candidate), `etc`."""
    for name in ("_runner", "_src", "etc", "root", "disk", "shm"):
        (host / name).mkdir(exist_ok=True)
    (host / "etc" / "passwd").write_text(PASSWD)
    (host / "etc" / "group").write_text(GROUP)


def open_up(host: Path, launcher: Launcher) -> None:
    """Let the sandbox user read what it runs (and, without namespaces, write its own folders)."""
    for dirpath, dirnames, filenames in os.walk(host):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    if not launcher.isolated and launcher.as_root:
        for name in ("work", "tmp", "tool"):
            for dirpath, _dirnames, filenames in os.walk(host / name):
                os.chown(dirpath, NOBODY, NOBODY)
                for fname in filenames:
                    os.chown(os.path.join(dirpath, fname), NOBODY, NOBODY)


def remove_tree(path: Path) -> str | None:
    """Remove a throwaway folder whatever its depth (no recursion in Python); why not, or None."""
    if not os.path.lexists(path):
        return None
    try:
        done = subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{path}: cannot remove: {exc}"
    if os.path.lexists(path):
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"{path}: cannot remove: {tail[-1] if tail else f'rm exited with {done.returncode}'}"
    return None


# -- limits and lifetime ------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def limits(cpu_seconds: int, memory_mb: int) -> Any:
    """The sandbox's rlimits as `tools.invoke.Limits`: set by `tools.invoke.spawn` (prlimit, never a
    `preexec_fn` in the threaded runtime), which also gives the launcher the parent-death signal
    and a place in the runtime's process-group reaper."""
    from tools.invoke import Limits

    return Limits(memory_mb=memory_mb, cpu_seconds=cpu_seconds, file_bytes=MAX_FILE_BYTES, processes=MAX_PROCESSES,
                  no_core=True)


def _run_limited(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> tuple[int | None, bytes]:
    """Run the probe under the sandbox's limits: through tools.invoke.spawn in the runtime; on its
    own (this module copied out and run by a one-thread script, as the tests do) with a preexec."""
    try:
        from tools.invoke import OutputTooLarge, communicate, kill_group, spawn
    except ImportError:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, cwd=cwd, env=env, preexec_fn=_preexec_limits(20, 1024))
        return done.returncode, done.stdout
    proc = spawn(argv, limits=limits(20, 1024), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 cwd=cwd, env=env)
    try:
        out, _err, finished, _held = communicate(proc, b"", timeout=timeout, limit=1 << 20)
    except OutputTooLarge:
        out, finished = b"", False
    if not finished:
        kill_group(proc)
    proc.wait()
    return (proc.returncode if finished else None), out


def _preexec_limits(cpu_seconds: int, memory_mb: int) -> Any:
    """rlimits and death with the parent, between fork and exec (only for a single-threaded caller)."""
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

    def apply() -> None:
        memory = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return apply


# -- choosing a launcher ---------------------------------------------------------------------------

_launcher: Launcher | None = None
_lock = threading.Lock()


def _try(launcher: Launcher) -> dict[str, Any] | None:
    """Run the probe through `launcher`; what it saw, or None when the launcher does not work here."""
    host = Path(tempfile.mkdtemp(prefix="tooldeck-probe-"))
    try:
        prepare_host(host)
        (host / "_runner" / "probe.py").write_text(_PROBE_CODE)
        marker = host / "_src" / "host-marker"
        marker.write_text("visible")
        root = launcher.root(host)
        if not launcher.isolated:
            (host / "work").mkdir()
        open_up(host, launcher)
        command = [launcher.python, "-I", str(root / "_runner" / "probe.py"), str(root)]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PROBE_MARKER": str(marker), "PROBE_HOST": str(host)}
        returncode, out = _run_limited(launcher.argv(host, command), cwd=host, env=env, timeout=20)
        if returncode != 0:
            return None
        return json.loads(out.decode().strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    finally:
        remove_tree(host)


def _held(launcher: Launcher, seen: dict[str, Any]) -> dict[str, Any]:
    """What the probe run observed, as the protections every result records."""
    host_ipc = os.readlink("/proc/self/ns/ipc") if os.path.exists("/proc/self/ns/ipc") else None
    isolated = launcher.isolated
    return {
        "launcher": launcher.name,
        "unprivileged_user": seen.get("uid") != 0 and (launcher.as_root or isolated or os.geteuid() != 0),
        "no_network": not seen.get("net"),
        "host_files_hidden": not seen.get("host_visible"),
        "read_only_root": isolated and not seen.get("root_writable"),
        "ipc_namespace": bool(host_ipc) and seen.get("ipc") != host_ipc,
        "pid_namespace": isolated and int(seen.get("pid") or 0) < 10,
        "unix_sockets_refused": True,  # the audit hook; with namespaces no host socket is even visible
        "disk_quota_mb": seen.get("quota_mb") if isolated else None,
        "inode_limit": seen.get("inodes") if isolated and launcher.inode_limit == DISK_INODES else launcher.inode_limit,
        "pid1_shows_no_host_path": isolated and bool(seen.get("pid1_clean")),
        "shm_mb": SHM_MB if isolated else None,
        "private_tmp": isolated,
    }


def candidates() -> list[Launcher]:
    """Every launcher this machine might run, strongest first (not yet probed)."""
    is_root = os.geteuid() == 0
    python, binds, hidden = _base_interpreter()
    out: list[Launcher] = []
    if shutil.which("bwrap"):
        out.append(Launcher("bwrap", python, is_root and bool(shutil.which("setpriv")), binds, hidden))
    if is_root and shutil.which("unshare") and shutil.which("setpriv") and shutil.which("pivot_root"):
        out.append(Launcher("unshare", python, True, binds, hidden))
    drop = is_root and bool(shutil.which("setpriv"))
    out.append(Launcher("none", interpreter(drop), drop))
    return out


def probed(launcher: Launcher) -> Launcher | None:
    """`launcher` with the protections its probe saw, or None when it cannot start here."""
    seen = _try(launcher)
    if seen is None or (launcher.as_root and seen.get("uid") != NOBODY):
        return None
    if seen.get("python") != f"{sys.version_info[0]}.{sys.version_info[1]}":
        return None  # the interpreter inside is not this Python's version: candidates would not run as they will
    held = _held(launcher, seen)
    if launcher.isolated and not (held["host_files_hidden"] and held["read_only_root"] and held["ipc_namespace"]):
        return None
    held.update({"rlimits": True, "clean_env": True, "audit_hook": True, "throwaway_dir": True,
                 "python": launcher.python})
    return Launcher(launcher.name, launcher.python, launcher.as_root, launcher.binds, launcher.hidden, held)


def probe(refresh: bool = False) -> Launcher:
    """The strongest launcher that works here, found once per process."""
    global _launcher
    with _lock:
        if _launcher is not None and not refresh:
            return _launcher
        for launcher in candidates():
            chosen = probed(launcher)
            if chosen is not None:
                _launcher = chosen
                return chosen
        # even `none` failed its probe (no setpriv?): run without the drop and say so
        _launcher = Launcher("none", sys.executable, False, protections={
            "launcher": "none", "unprivileged_user": os.geteuid() != 0, "no_network": False, "host_files_hidden": False,
            "read_only_root": False, "ipc_namespace": False, "pid_namespace": False, "unix_sockets_refused": True,
            "disk_quota_mb": None, "inode_limit": "none: no throwaway tmpfs without namespaces",
            "pid1_shows_no_host_path": False, "shm_mb": None, "private_tmp": False, "rlimits": True, "clean_env": True,
            "audit_hook": True, "throwaway_dir": True, "python": sys.executable})
        return _launcher


_named: dict[str, Launcher | None] = {}
LAUNCHERS = ("auto", "bwrap", "unshare", "none")


def select(name: str = "auto") -> Launcher:
    """The launcher `[evolution] sandbox_launcher` names; `auto` is the strongest that works here."""
    from tools.errors import ToolUnavailableError, UsageError

    name = str(name or "auto").strip().lower()
    if name not in LAUNCHERS:
        raise UsageError(f"tooldeck.toml: [evolution] sandbox_launcher = {name!r}: use one of {', '.join(LAUNCHERS)}")
    if name == "auto":
        return probe()
    with _lock:
        if name not in _named:
            found = next((c for c in candidates() if c.name == name), None)
            _named[name] = probed(found) if found is not None else None
        chosen = _named[name]
    if chosen is None:
        why = {"bwrap": "bwrap is not installed or cannot create its namespaces here (apt-get install bubblewrap)",
               "unshare": "it needs root and util-linux's unshare, setpriv and pivot_root",
               "none": "even an unconfined child process failed to start"}[name]
        raise ToolUnavailableError(f"sandbox launcher {name!r} is not available on this machine: {why}")
    return chosen
