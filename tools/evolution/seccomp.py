"""The sandbox's seccomp filter: the kernel paths that namespaces do not cover, closed.

Kernel keyrings are not namespaced (a candidate reached the runtime's session keyring and
uid 65534's user keyring through `keyctl`), and a validation run never needs to mount, trace,
load modules or make namespaces. So every sandboxed run denies these syscalls with EPERM.

The filter is built by libseccomp (through `pyseccomp`, ctypes over libseccomp.so.2), never
as hand-written BPF: libseccomp adds the architecture checks (an i386 `int 0x80` or an x32
syscall number cannot slip past a rule written for x86-64). It is built here, in the runtime,
once per process, and handed to the sandbox runner as the compiled program (a file next to the
runner). The runner loads it with `prctl(PR_SET_SECCOMP)` after the privilege drop and after
joining a fresh session keyring (both need syscalls the filter denies), before the candidate
is imported; the sandbox's interpreter needs no binding and the launchers' own setup (mounts,
pivot_root, unshare) runs before it, unfiltered.
"""

from __future__ import annotations

import errno
import tempfile
import threading
from dataclasses import dataclass

#: denied with EPERM in every sandboxed run
DENIED = ("keyctl", "add_key", "request_key", "ptrace", "mount", "umount2", "pivot_root", "unshare", "setns", "bpf",
          "perf_event_open", "userfaultfd", "kexec_load", "kexec_file_load", "init_module", "finit_module",
          "open_by_handle_at")
#: clone() with any of these flags makes a namespace, like unshare(): EPERM too
_CLONE_NAMESPACES = (0x00020000, 0x10000000, 0x04000000, 0x08000000, 0x40000000, 0x20000000, 0x02000000, 0x00000080)


@dataclass(frozen=True)
class Filter:
    """The compiled program, or why there is none (`program` empty)."""

    program: bytes
    label: str  # what each result records: "libseccomp (17 syscalls denied, ...)" or "none: why"


_cached: Filter | None = None
_lock = threading.Lock()


def compiled() -> Filter:
    """The sandbox's filter as a BPF program, built once per process."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = _build()
        return _cached


def _build() -> Filter:
    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError, OSError) as exc:  # RuntimeError: "Unable to find libseccomp"
        return Filter(b"", f"none: libseccomp is not usable here ({type(exc).__name__}: {exc}; apt-get install libseccomp2)")
    try:
        flt = sc.SyscallFilter(sc.ALLOW)
        for name in DENIED:
            flt.add_rule(sc.ERRNO(errno.EPERM), name)
        # glibc falls back to clone() when clone3 says ENOSYS; clone3's flags are in memory a filter cannot read
        flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        for flag in _CLONE_NAMESPACES:
            flt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        with tempfile.TemporaryFile() as fh:
            flt.export_bpf(fh)
            fh.seek(0)
            program = fh.read()
    except (OSError, ValueError) as exc:
        return Filter(b"", f"none: libseccomp could not build the filter: {exc}")
    return Filter(program, f"libseccomp ({len(DENIED)} syscalls denied, clone into a namespace refused)")
