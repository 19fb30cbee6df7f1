"""The C engine's vtest numbers are generated from protocol.py (native/gen_protocol.py):
the committed header is what the generator writes, and no C file spells a vtest command
number or message size itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_committed_header_is_what_the_generator_writes() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "native" / "gen_protocol.py"), "--check"],
                       check=False)
    assert r.returncode == 0, "native/vv_protocol.h is stale: run native/gen_protocol.py"


def test_header_matches_the_protocol_module() -> None:
    from virgl_viewer.vtest import protocol as P
    text = (ROOT / "native" / "vv_protocol.h").read_text()
    defines = dict(re.findall(r"#define VV_(\w+) (\d+)\n", text))
    for cmd in P.Cmd:
        assert int(defines[f"CMD_{cmd.name}"]) == int(cmd)
    assert int(defines["TRANSFER2_HDR_SIZE"]) == P.TRANSFER2_HDR_SIZE
    assert int(defines["BIND_SCANOUT"]) == P.BIND_SCANOUT


def test_no_c_file_writes_vtest_numbers_itself() -> None:
    # what the copies looked like: "#define CMD_SUBMIT_CMD 6", "TRANSFER2_DWORDS 10"
    pattern = re.compile(r"#define\s+\w*(CMD_[A-Z0-9_]+|_DWORDS|BIND_[A-Z_]+)\s+\(?\d")
    offenders = [f"{c.name}: {m.group(0)}" for c in sorted((ROOT / "native").glob("*.[ch]"))
                 if c.name != "vv_protocol.h"
                 for m in pattern.finditer(c.read_text())]
    assert offenders == []
