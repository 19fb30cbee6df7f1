"""The fuzz targets of ``make fuzz`` build and find nothing, briefly, on every ``make test``.

Every input that ever made a target fail is kept in ``tests/fuzz/regressions/<target>/``
and replayed here (with the seed corpora) through the same target: a fixed bug stays
fixed. Then each target fuzzes for a few seconds (about half a minute in all) and must
report executions and coverage and no crash, leak or hang. The mutations are seeded, so
CI repeats the same inputs (chunk timing aside) and does not go red on a new finding by
chance; ``make fuzz`` runs them longer with fresh seeds, to find new ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import run_fuzz

HERE = Path(__file__).resolve().parent
# seconds per target: together about half a minute of the CI budget
BRIEF = {"engine": 10, "rewrite": 4, "codec": 6, "server": 10, "server-process": 10}
# executions a few seconds must reach at least (a broken harness stops at a handful)
MIN_EXECS = {"engine": 100, "rewrite": 1000, "codec": 300, "server": 10,
             "server-process": 5}

SEED = 1
pytestmark = pytest.mark.slow


def _inputs(target: str) -> list[Path]:
    files = []
    for kind in ("regressions", "corpus"):
        d = HERE / kind / run_fuzz.inputs_dir(target)
        if d.is_dir():
            files += sorted(f for f in d.iterdir()
                            if f.is_file() and f.suffix not in (".log", ".md"))
    return files


@pytest.mark.timeout(600)
@pytest.mark.parametrize("target", run_fuzz.TARGETS)
def test_regressions_and_seeds_replay_clean(target: str, tmp_path: Path) -> None:
    inputs = _inputs(target)
    assert inputs, f"no seeds for {target}: run tests/fuzz/record_seeds.py"
    r = run_fuzz.run_target(target, 60, inputs, out=tmp_path)
    assert r.returncode == 0, r.tail
    assert r.execs >= len(inputs), r.tail


@pytest.mark.timeout(600)
@pytest.mark.parametrize("target", run_fuzz.TARGETS)
def test_target_fuzzes_briefly_without_findings(target: str, tmp_path: Path) -> None:
    r = run_fuzz.run_target(target, BRIEF[target], out=tmp_path, seed=SEED)
    assert r.returncode == 0, r.tail
    assert r.execs >= MIN_EXECS[target], r.line() + "\n" + r.tail
    assert r.cov > 0, r.line() + "\n" + r.tail
    assert not list((tmp_path / target).glob("crash-*")), r.tail
    print(r.line())
