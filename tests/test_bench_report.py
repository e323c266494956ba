"""The one report module every section writes through: file names, the shared header, and
the results committed before sections existed, which must still name and print as before."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dmlcsr.benchmarks.environment import describe_environment, finish_environment
from dmlcsr.benchmarks.report import new_report, result_stem, write_json
from dmlcsr.benchmarks.tables import format_report

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
#: latency results written before sections existed (no "section" field); later sections'
#: results (e.g. ray) share the folder and the naming
COMMITTED = sorted(p for p in RESULTS.glob("20*.json") if "section" not in json.loads(p.read_text()))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_committed_latency_results_keep_their_names_and_print(path):
    report = json.loads(path.read_text())
    assert result_stem(report) == path.stem
    table = format_report(report)
    cpu = report["environment"]["cpu"]
    generation = f"AMD EPYC (family {cpu['family']} model {cpu['model_id']}), 2 cores, {' '.join(cpu['flags'])};"
    assert table.startswith(f"device: AMD EPYC (2 cores)\ncpu: {generation} load average [")
    assert "latency, batch 1:" in table and "paper (one GPU)" in table


def test_committed_results_are_there():
    assert len(COMMITTED) == 3  # the parametrized test above must not pass on an empty folder


@dataclass
class Settings:
    photos: tuple[Path, ...] = (Path("a.jpg"), Path("b.jpg"))
    nested: list[Path] = field(default_factory=lambda: [Path("c")])
    tag: str = "Two Words"


def test_a_section_report_names_its_section_and_tag_and_records_the_machine(tmp_path):
    environment = finish_environment(describe_environment(with_torch=False))
    report = new_report("photo", environment, Settings())
    assert report["settings"] == {"photos": ["a.jpg", "b.jpg"], "nested": ["c"], "tag": "Two Words"}
    path = write_json(report, tmp_path / "new")
    assert path.name == f"{environment['date'][:10]}_{path.name.split('_')[1]}_photo_two-words.json"
    assert json.loads(path.read_text()) == report
    assert environment["cpu"]["logical_cores"] and environment["load_average_end"] is not None
