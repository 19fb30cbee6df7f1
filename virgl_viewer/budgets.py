"""What one client, and all clients together, may make the server hold.

Why: every byte from a guest is hostile until checked, and the cheapest attack is
a small message that makes the server allocate, map or compute far more. Each
budget below is checked in one place (named beside it) before the work is done;
a client over a budget is dropped with one log line naming the command and the
budget, except the reply queue, which only stops reading that client until it
reads its replies. The C fast path gets its limits from here
(``virgl.set_budgets``): no limit is written twice.

How to change one: ``virgl-viewer --budget NAME=VALUE`` (repeatable), with a name
below; sizes take an optional K, M or G suffix (powers of 1024).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Budgets:
    # one message (codec and C path): a SUBMIT_CMD, TRANSFER_PUT or SUBMIT_CMD2
    message_bytes: int = 64 << 20
    # input a client parked in a BUSY_WAIT may send before we stop reading it
    parked_input_bytes: int = 1 << 20
    # replies queued for a client that does not read them: then it is not read
    reply_queue_bytes: int = 1 << 20
    # resources a client has at once (C: vv_conn_admit)
    resources: int = 1 << 16
    # shared memory of one resource (C: vv_shm_bound), of one blob
    shm_bytes_per_resource: int = 1 << 30
    # shared memory of all a client's resources together (C: vv_conn_admit)
    shm_bytes: int = 4 << 30
    # shm mappings of all clients together (C: vv_conn_admit); None: half of
    # vm.max_map_count, so the renderer's own mappings never run out
    server_mappings: int | None = None
    # the renderer's storage of a client's resources, estimated from their format and
    # shape (one 16384x16384 BGRA texture is 1 GiB from a 48-byte message), and of all
    # clients together; None: half of the machine's memory (C: vv_conn_admit)
    resource_bytes: int = 4 << 30
    server_resource_bytes: int | None = None
    # sync objects of a client, its pending SYNC_WAITs (each holds an eventfd) and
    # the syncs those wait on in total
    syncs: int = 1 << 14
    sync_waits: int = 256
    sync_wait_entries: int = 1 << 14
    # shader text a client announces for shaders it has not finished sending (a "long
    # shader": virglrenderer allocates the whole text at its first part; C: vv_rewrite.c)
    long_shader_bytes: int = 16 << 20
    # vertices one draw asks for (count x instances): llvmpipe runs a draw's vertex
    # stage on the caller's thread, so 60 indices x 2^27 instances, one 52-byte command,
    # held the render thread for minutes (C: vv_rewrite.c)
    draw_vertices: int = 1 << 26
    # fds kept free for connected clients: no new client while fewer are free
    # (at least this many, at least an eighth of the fd limit)
    fd_reserve: int = 16

    def mappings(self) -> int:
        if self.server_mappings is not None:
            return self.server_mappings
        return max_map_count() // 2

    def all_resource_bytes(self) -> int:
        if self.server_resource_bytes is not None:
            return self.server_resource_bytes
        return memory_bytes() // 2

    def over_mappings(self) -> str:
        """The reason a client is dropped for passing ``server_mappings``."""
        return f"over the budget of {self.mappings()} shm mappings of all clients"

    def over_all_resource_bytes(self) -> str:
        """The reason a client is dropped for passing ``server_resource_bytes``."""
        return f"over the budget of {self.all_resource_bytes()} resource bytes of all clients"

    def with_overrides(self, specs: list[str]) -> Budgets:
        """A copy with ``NAME=VALUE`` overrides (ValueError naming a bad one)."""
        names = {f.name for f in dataclasses.fields(self)}
        changes: dict[str, int] = {}
        for spec in specs:
            name, sep, value = spec.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in names:
                raise ValueError(f"--budget {spec!r}: expected NAME=VALUE with NAME one of "
                                 f"{', '.join(sorted(names))}")
            changes[name] = parse_size(value, spec)
        return dataclasses.replace(self, **changes)

    def table(self) -> list[tuple[str, int]]:
        """(name, value) of every budget, server_mappings resolved."""
        out = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "server_mappings":
                value = self.mappings()
            elif f.name == "server_resource_bytes":
                value = self.all_resource_bytes()
            out.append((f.name, value))
        return out


_SIZE = re.compile(r"\s*(\d+)\s*([KMG]?)i?B?\s*", re.IGNORECASE)


def parse_size(text: str, spec: str = "") -> int:
    m = _SIZE.fullmatch(text)
    if not m:
        raise ValueError(f"--budget {spec or text!r}: {text!r} is not a number")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]


def max_map_count() -> int:
    """The kernel's limit on one process's mappings (vm.max_map_count)."""
    try:
        return int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return 65530  # the kernel's default


def memory_bytes() -> int:
    """The machine's memory (MemTotal)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 8 << 30


DEFAULT = Budgets()
