"""Where benchmarks and evaluations leave their figures: one JSON file each under bench/results/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_results(path: Path, report: dict[str, Any], summary_without: tuple[str, ...] = ()) -> None:
    """Write ``report`` as indented JSON to ``path`` and print it, less the bulky keys named."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in summary_without}, indent=2))
    print(f"wrote {path}")
