"""Plot bench/scale.py results: time against number of gateways per scenario, floors drawn.

    python bench/scale_plot.py OUT.png RESULTS.json [RESULTS.json ...]

(`bench/scale.py --plot OUT.png` calls the same function.) Needs matplotlib (`pip install
'.[bench]'`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SERIES = [  # (panel, label, key in the scenario's result, floor keys summed)
    ("apply", "vegd apply cold", "cold_s", ("input_floor_s", "write_floor_s")),
    ("apply", "vegd apply no-op", "noop_s", ("input_floor_s", "read_floor_s")),
    ("run", "vegd run first start (NB converged)", "first_nb_s",
     ("input_floor_s", "write_floor_s")),
    ("run", "vegd run restart (ready)", "restart_ready_s", ("input_floor_s", "read_floor_s")),
]


def plot(results: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(p, b) for p in ("apply", "run") for b in (False, True)
              if any(p in r and r["shape"]["bfd"] == b for r in results)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    for ax, (panel, bfd) in zip(axes[0], panels, strict=True):
        rows = sorted((r for r in results if panel in r and r["shape"]["bfd"] == bfd),
                      key=lambda r: r["shape"]["gateways"])
        xs = [r["shape"]["gateways"] for r in rows]
        for i, (p, label, key, floors) in enumerate(s for s in SERIES if s[0] == panel):
            color = f"C{i}"
            ys = [r[p][key] for r in rows]
            fs = [sum(r[p][f] for f in floors) for r in rows]
            ax.plot(xs, ys, "o-", color=color, label=label)
            ax.plot(xs, fs, "--", color=color, alpha=0.6, label=f"floor: {' + '.join(floors)}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("gateways (3 replicas, 20 selected pods each)")
        ax.set_ylabel("seconds")
        ax.set_title(f"{panel}, BFD {'on (route mode)' if bfd else 'off'}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str]) -> int:
    out, *files = argv
    results: list[dict[str, Any]] = []
    for f in files:
        results.extend(json.loads(Path(f).read_text()))
    plot(results, Path(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
