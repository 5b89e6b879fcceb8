"""Labeling on a local CPU Ray instance: same table as the serial runner, and resume across the two."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from labeling_jobs import make_job, write_job
from typer.testing import CliRunner

from uae.labeling import label_pools
from uae.teachers import DirichletTeacher


class CrashingTeacher(DirichletTeacher):
    """The Dirichlet teacher, dying on its ``crash_at``-th call like a killed process."""

    def __init__(self, crash_at: int):
        super().__init__()
        self.calls, self.crash_at = 0, crash_at

    def score(self, requests):
        self.calls += 1
        if self.calls == self.crash_at:
            raise KeyboardInterrupt("simulated crash")
        return super().score(requests)


@pytest.fixture
def job():
    return make_job(n_queries=10, pool_size=3)


def test_ray_labels_equal_the_serial_runner(local_ray, job, tmp_path: Path) -> None:
    from uae.labeling.ray import label_pools_ray

    corpus, queries, pools = job
    serial = label_pools(queries, pools, corpus, DirichletTeacher(), tmp_path / "serial", part_queries=3, progress=False)
    spread = label_pools_ray(queries, pools, corpus, "dirichlet", tmp_path / "ray", part_queries=3, workers=2, progress=False)
    assert pq.read_table(tmp_path / "ray" / "nlls.parquet").equals(pq.read_table(tmp_path / "serial" / "nlls.parquet"))
    assert spread.pairs == serial.pairs == 10 * 3
    assert spread.teacher == serial.teacher
    assert len(list((tmp_path / "ray" / "parts").glob("*.parquet"))) == 4


def test_ray_resumes_a_crashed_serial_job_and_the_cli_flag_works(local_ray, job, tmp_path: Path) -> None:
    from uae.cli import app

    corpus, queries, pools = job
    label_pools(queries, pools, corpus, DirichletTeacher(), tmp_path / "reference", part_queries=2, progress=False)
    with pytest.raises(KeyboardInterrupt):
        label_pools(queries, pools, corpus, CrashingTeacher(crash_at=3), tmp_path / "resumed", part_queries=2, progress=False)
    done_before = len(list((tmp_path / "resumed" / "parts").glob("*.parquet")))
    assert done_before == 2

    # The CLI reads pools sorted by query id, as make_job numbers them, so the parts are the same.
    data, pools_path = write_job(tmp_path, corpus, queries, pools)
    result = CliRunner().invoke(app, ["label", str(data), "--pools", str(pools_path), "--out", str(tmp_path / "resumed"),
                                      "--part-queries", "2", "--ray", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert '"parts_reused": 2' in result.output
    assert pq.read_table(tmp_path / "resumed" / "nlls.parquet").equals(pq.read_table(tmp_path / "reference" / "nlls.parquet"))


def test_missing_ray_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from uae.labeling.ray import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'uae\[ray\]'"):
        import_ray()
