"""What every stage shows on the console: one progress bar style (count, rate, ETA) and what it skipped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

if TYPE_CHECKING:
    from uae.data.schema import SkipReport

console = Console()


class RateColumn(ProgressColumn):
    """Items per second, with the unit the caller names."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} {self.unit}/s" if speed else f"? {self.unit}/s", style="progress.data.speed")


@contextmanager
def progress_bar(
    total: int,
    description: str,
    unit: str = "it",
    enabled: bool = True,
    extra_columns: tuple[ProgressColumn, ...] = (),
    **fields: object,
) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n, **fields)``; the bar shows done/total, rate, elapsed time and ETA.

    ``extra_columns`` go after the rate and may render the task's ``fields``, which
    ``advance`` updates.
    """
    if not enabled:
        yield lambda n=1, **updates: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        *extra_columns,
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(description, total=total, **fields)
        yield lambda n=1, **updates: progress.update(task, advance=n, **updates)


def report_skips(stage: str, skipped: SkipReport) -> None:
    """Print what a stage left out, one yellow line per reason (nothing is dropped silently)."""
    for line in skipped.lines():
        console.print(f"[yellow]{stage}: {line}")
