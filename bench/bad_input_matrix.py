"""Print docs/reliability.md's bad-input table: every case of
tests/functional/test_apply_bad_input.py applied to a private NB/SB/northd holding the seed's rows,
with the measured exit code, whether NB stayed byte-identical, whether a traceback appeared, the
wall time of the in-process `vegd apply`, and the first line of its message.

    .venv/bin/python bench/bad_input_matrix.py > /tmp/table.md
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
import sys
import tempfile
import time
from pathlib import Path

import yaml

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "functional")]

import test_apply_bad_input as cases  # noqa: E402
from ovnstack import OvnStack  # noqa: E402
from scenario import add_base_topology, nb_dump, seed_objects  # noqa: E402

from vegd.cli import main as vegd_main  # noqa: E402


def _apply(stack: OvnStack, directory: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = vegd_main(["apply", "-f", str(directory), "--nb-connection", stack.nb_unix,
                          "--sb-connection", stack.sb_unix])
    return code, err.getvalue()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        stack = OvnStack(work / "ovn").start()
        try:
            add_base_topology(stack)
            good = work / "good"
            good.mkdir()
            (good / "all.yaml").write_text(yaml.safe_dump_all(seed_objects()))
            assert _apply(stack, good)[0] == 0
            stack.nbctl("--wait=sb", "sync")
            for i, (name, mutate, _) in enumerate(cases.CASES, 1):
                inputs = cases.Inputs(copy.deepcopy(seed_objects()))
                mutate(inputs)
                directory = work / f"c{i}"
                cases._write(inputs, directory)
                before = nb_dump(stack)
                start = time.monotonic()
                code, err = _apply(stack, directory)
                ms = (time.monotonic() - start) * 1000
                same = nb_dump(stack) == before
                lines = err.strip().splitlines()
                msg = re.sub(r"\S*/c\d+/", "", lines[0] if lines else "")
                msg = msg.removeprefix("vegd apply: ").replace("|", "\\|")
                msg = msg if len(msg) <= 150 else msg[:147] + "..."
                print(f"| {i} | {name} | {code} | {'yes' if same else 'NO'} | "
                      f"{'yes' if 'Traceback' in err else 'no'} | {ms:.0f} | `{msg}` |")
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
