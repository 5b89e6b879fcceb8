"""`uae label` killed with SIGKILL mid-run, then rerun: every pair exactly once, same table as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from labeling_jobs import expected_keys, make_job, write_job

from uae.labeling import read_labels

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")

N_QUERIES = 40
# The real CLI, with the Dirichlet teacher slowed down inside the child process only (no hook in
# library code): each part (one query) then takes ~50 ms, so a kill lands mid-run.
SLOW_CLI = """
import sys, time
from uae.teachers.dirichlet import DirichletTeacher
score = DirichletTeacher.score
DirichletTeacher.score = lambda self, requests: (time.sleep(0.05), score(self, requests))[1]
from uae.cli import app
app(prog_name="uae")
"""


def label_command(data: Path, pools: Path, out: Path, slow: bool) -> list[str]:
    args = ["label", str(data), "--pools", str(pools), "--out", str(out), "--part-queries", "1", "--teacher", "dirichlet"]
    return [sys.executable, "-c", SLOW_CLI, *args] if slow else [sys.executable, "-m", "uae.cli", *args]


def run(command: list[str], log: Path) -> subprocess.CompletedProcess:
    with open(log, "w") as handle:
        return subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, timeout=300)


def parts_done(out: Path) -> int:
    return len(list((out / "parts").glob("part-*.parquet")))


def test_sigkill_then_rerun_equals_uninterrupted_run(tmp_path: Path) -> None:
    corpus, queries, pools = make_job(n_queries=N_QUERIES)
    data, pools_path = write_job(tmp_path, corpus, queries, pools)
    killed_out, reference_out = tmp_path / "killed", tmp_path / "reference"

    command = label_command(data, pools_path, killed_out, slow=True)
    with open(tmp_path / "killed.log", "w") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while parts_done(killed_out) < 3 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    interrupted_at = parts_done(killed_out)
    assert 3 <= interrupted_at < N_QUERIES
    assert not (killed_out / "nlls.parquet").exists()

    rerun = run(command, tmp_path / "rerun.log")
    assert rerun.returncode == 0, (tmp_path / "rerun.log").read_text()
    reference = run(label_command(data, pools_path, reference_out, slow=False), tmp_path / "reference.log")
    assert reference.returncode == 0, (tmp_path / "reference.log").read_text()

    summary = json.loads((killed_out / "labeling_summary.json").read_text())
    assert summary["parts_reused"] == interrupted_at
    records = read_labels(killed_out)
    keys = [(r.query_id, r.passage_id, r.answer_index) for r in records]
    assert len(keys) == len(set(keys)), "a (query, passage, answer) was labeled twice"
    assert set(keys) == expected_keys(queries, pools)
    assert pq.read_table(killed_out / "nlls.parquet").equals(pq.read_table(reference_out / "nlls.parquet"))
