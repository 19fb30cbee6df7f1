"""Man pages: generated from the parsers the commands run, so every option a parser has
is on the page with its help text, and man(1) formats them without a warning."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.procs import tool_env

from virgl_viewer import __version__
from virgl_viewer.manpage import PROGRAMS, parser_for


def _man_text(page: Path) -> str:
    """The page as man shows it on an 80-column terminal; fails on groff warnings."""
    # GROFF_NO_SGR: groff >= 1.23 (Debian 13) otherwise writes ANSI escapes, not overstrikes
    env = tool_env(dict(os.environ, MANWIDTH="200", MAN_KEEP_FORMATTING="0",
                        LC_ALL="C.UTF-8", GROFF_NO_SGR="1"))
    r = subprocess.run(["man", "--warnings=all", "-l", str(page)], capture_output=True,
                       text=True, env=env, timeout=60, check=False)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = re.sub(r".\x08", "", r.stdout)  # overstrike bold/underline
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # SGR, should a pager's groff still send it
    return " ".join(text.replace("\u2010", "-").replace("\u2212", "-").split())


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("man")
    r = subprocess.run([sys.executable, "-m", "virgl_viewer.manpage", "-o", str(out)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p}.1" for p in PROGRAMS)
    return {prog: _man_text(out / f"{prog}.1") for prog in PROGRAMS}


@pytest.mark.parametrize("prog", sorted(PROGRAMS))
def test_man_page_lists_every_option_with_its_help(prog: str, pages: dict[str, str]) -> None:
    text = pages[prog]
    assert text.startswith(f"{prog.upper()}(1)"), text[:80]
    assert f"{prog} {__version__}" in text
    parser = parser_for(prog)
    assert " ".join((parser.description or "").split()) in text
    options = [a for a in parser._actions if a.help is not argparse.SUPPRESS]
    assert any("--version" in a.option_strings for a in options)
    for action in options:
        for opt in action.option_strings:
            assert re.search(rf"(^|[\s,]){re.escape(opt)}\b", text), f"{opt} missing"
        # the first words of its help as --help shows them (defaults expanded)
        help_text = parser.format_help()
        words = " ".join((action.help or "").split("%(")[0].split()[:5])
        assert words in " ".join(help_text.split()), words
        assert words in text, f"help of {action.option_strings}: {words!r} missing"
    for default_shown in re.findall(r"default (\S+?)[,)]", " ".join(parser.format_help().split())):
        assert default_shown in text


def test_see_also_names_the_other_commands(pages: dict[str, str]) -> None:
    for prog, text in pages.items():
        for other in PROGRAMS:
            if other != prog:
                assert f"{other}(1)" in text.split("SEE ALSO", 1)[1]
