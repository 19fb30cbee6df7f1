"""Man pages for our commands, generated from their argparse parsers.

Why: a man page copied by hand drifts from ``--help``; generated from the very parser
the command runs, it lists every option with the same help text and defaults.

How: ``render(prog, version)`` walks the parser's actions and writes roff (man(7)
macros): NAME, SYNOPSIS (argparse's usage), DESCRIPTION, OPTIONS, SEE ALSO.
``python -m virgl_viewer.manpage -o DIR`` writes ``DIR/<prog>.1`` for every command
(``make man``, the Debian build and ``--install-desktop-entry`` use it).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

# The console scripts of pyproject.toml's [project.scripts] -> their parser factories.
PROGRAMS: dict[str, str] = {
    "virgl-viewer": "virgl_viewer.__main__:build_parser",
    "virgl-guest": "virgl_viewer.guest.cli:build_parser",
}


def parser_for(prog: str) -> argparse.ArgumentParser:
    module, _, func = PROGRAMS[prog].partition(":")
    factory: Callable[[], argparse.ArgumentParser] = getattr(importlib.import_module(module), func)
    return factory()


def _roff(text: str) -> str:
    """Escape text for roff: backslashes, hyphens, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = [("\\&" + ln) if ln.startswith((".", "'")) else ln for ln in text.splitlines()]
    return "\n".join(lines)


def _help_text(action: argparse.Action, prog: str) -> str:
    """The action's help with %(default)s etc. expanded, as ``--help`` shows it."""
    if not action.help:
        return ""
    params = dict(vars(action), prog=prog)
    for name in list(params):
        if params[name] is argparse.SUPPRESS:
            del params[name]
    if params.get("choices") is not None:
        params["choices"] = ", ".join(str(c) for c in params["choices"])
    return action.help % params


def _option_head(action: argparse.Action) -> str:
    """``\\fB\\-\\-size\\fR \\fIWxH\\fR, ...`` for one action."""
    if action.nargs == 0:
        arg = ""
    elif action.metavar is not None:
        arg = str(action.metavar)
    elif action.choices is not None:
        arg = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        arg = action.dest.upper()
    heads = []
    for opt in action.option_strings or [arg]:
        head = f"\\fB{_roff(opt)}\\fR"
        if action.option_strings and arg:
            head += f" \\fI{_roff(arg)}\\fR"
        heads.append(head)
    return ", ".join(heads)


def render(prog: str, version: str, date: datetime.date | None = None) -> str:
    """The man page of ``prog`` (a key of PROGRAMS) as roff text."""
    parser = parser_for(prog)
    # SOURCE_DATE_EPOCH keeps packaged pages reproducible.
    if date is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        date = (datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).date() if epoch
                else datetime.date.today())
    description = parser.description or ""
    usage = parser.format_usage().removeprefix("usage: ").strip()
    out = [
        f'.TH {prog.upper()} 1 "{date.isoformat()}" "{prog} {version}" "User Commands"',
        ".SH NAME",
        f"{_roff(prog)} \\- {_roff(description.rstrip('.'))}",
        ".SH SYNOPSIS",
        _roff(" ".join(usage.split())),
        ".SH DESCRIPTION",
        _roff(description),
        ".SH OPTIONS",
    ]
    for action in parser._actions:  # argparse has no public list of its actions
        if action.help is argparse.SUPPRESS:
            continue
        out += [".TP", _option_head(action)]
        help_text = _help_text(action, prog)
        if help_text:
            out.append(_roff(help_text))
    others = [p for p in PROGRAMS if p != prog]
    out += [".SH SEE ALSO", ",\n".join(f"\\fB{_roff(p)}\\fR(1)" for p in others)]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    from virgl_viewer import __version__

    ap = argparse.ArgumentParser(prog="python -m virgl_viewer.manpage",
                                 description="Write a man page for each of our commands.")
    ap.add_argument("-o", "--output-dir", default=".", metavar="DIR",
                    help="where to write <prog>.1 (default: the current directory)")
    ap.add_argument("programs", nargs="*", metavar="PROG",
                    help=f"only these commands (default: all of {', '.join(PROGRAMS)})")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.programs) - PROGRAMS.keys())
    if unknown:
        ap.error(f"unknown command(s): {', '.join(unknown)}")
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for prog in args.programs or PROGRAMS:
        path = out_dir / f"{prog}.1"
        path.write_text(render(prog, __version__), encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
