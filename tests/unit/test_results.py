"""Benchmark and evaluation results: written whole, summarised without the bulky parts."""

import json

from bench.results import write_results


def test_results_are_written_whole_and_printed_without_bulky_keys(tmp_path, capsys):
    path = tmp_path / "nested" / "figures.json"
    write_results(path, {"texts_per_s": 950.0, "runs": [1, 2, 3]}, summary_without=("runs",))
    assert json.loads(path.read_text()) == {"texts_per_s": 950.0, "runs": [1, 2, 3]}
    printed = capsys.readouterr().out
    assert '"texts_per_s": 950.0' in printed and "runs" not in printed and f"wrote {path}" in printed
