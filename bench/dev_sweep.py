"""Dev-split investigation of the UM-InfoNCE design choices, one variation at a time.

    python bench/dev_sweep.py --dataset squad-v1.1 --data-dir ../shared/data/squad -o scoped=true \\
        --train-limit 1000 --eval-limit 2000 --out runs/q-squad
    python bench/dev_sweep.py --quick          # SQuAD v1.1, bench/quality.py's quick limits, 3 variants

Every variant is one ``bench/quality.py`` run on the **dev** split (the test split is never
looked at) with the shared arguments followed by the variant's own, all in the same ``--out``
folder: mining, labels and the ``infonce_gold`` model are computed once and reused, and only
what a variant changes is retrained. Variants that change ``infonce_gold`` too (pool passages,
steps) come last. Each finished variant is saved in ``OUT/sweep.json`` at once, so a rerun after
a crash skips what is done (``--fresh`` starts over).

Appends one table to BENCHMARKS.md (R@1 and MAP of ``uae`` and ``infonce_gold``, with relative
gains over the base encoder and paired t-test p-values) and ends with a ``RESULT:`` line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402
from common import ROOT, append_benchmarks, command_line, describe_machine, machine, result_line, section_heading  # noqa: E402

VARIANTS: dict[str, list[str]] = {
    "defaults": [],
    "max_gold 2": ["--max-gold", "2"],
    "gold floor 0.5": ["--gold", "floor"],
    "gold none": ["--gold", "none"],
    "confidence none": ["--confidence", "none"],
    "confidence soften": ["--confidence", "soften"],
    "confidence skip": ["--confidence", "skip"],
    "tau_t 0.25": ["--tau-t", "0.25"],
    "no model selection": ["--dev-fraction", "0"],
    "2x the steps": ["--steps-factor", "2"],
}
"""Each variant changes one setting of the library's defaults (``uae.config``)."""
QUICK_VARIANTS = ("defaults", "gold none", "confidence none")
METRICS = ("recall@1", "hit_rate@1", "map")


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="bench/quality.py --quick limits, three variants")
    parser.add_argument("--out", type=Path, help="the shared run folder (default runs/sweep-<dataset>[-quick])")
    parser.add_argument("--only", nargs="+", metavar="VARIANT", help=f"run these variants only (names: {', '.join(VARIANTS)})")
    parser.add_argument("--fresh", action="store_true", help="forget finished variants in OUT/sweep.json")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args, shared = parser.parse_known_args(argv)
    for flag in ("--eval-split", "--out", "--no-write"):
        if flag in shared:
            parser.error(f"{flag} is set by the sweep itself")
    if args.quick:
        shared = ["--quick", *shared]
    names = args.only or (list(QUICK_VARIANTS) if args.quick else list(VARIANTS))
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    args.variants = names
    if args.out is None:
        dataset = quality.parse_args(shared).dataset
        args.out = ROOT / "runs" / f"sweep-{dataset.replace('/', '-')}{'-quick' if args.quick else ''}"
    return args, shared


def variant_argv(shared: list[str], variant: list[str], out: Path) -> list[str]:
    """bench/quality.py arguments of one variant; ``--steps-factor F`` multiplies the shared steps."""
    variant = list(variant)
    if "--steps-factor" in variant:
        at = variant.index("--steps-factor")
        factor = int(variant[at + 1])
        del variant[at: at + 2]
        from uae.config import TrainingConfig

        variant += ["--steps", str((quality.parse_args(shared).steps or TrainingConfig().steps) * factor)]
    return [*shared, *variant, "--eval-split", "dev", "--out", str(out), "--no-write", "--no-progress"]


def run_variant(argv: list[str], out: Path) -> dict:
    """One bench/quality.py run; what the sweep table needs of it."""
    started = time.perf_counter()
    quality.main(argv)
    comparison = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    results = comparison["results"]
    record = quality.training_records(out, ["uae"]).get("uae", {})
    return {
        "argv": argv,
        "rows_changed": (record.get("target_rules") or {}).get("rows_changed") or {},
        "skipped": record.get("skipped") or {},
        "selected_step": (record.get("selection") or {}).get("best_step"),
        "seconds": round(time.perf_counter() - started, 1),
        "n_queries": comparison["n_queries"],
        "systems": {system: {metric: results[system][metric] for metric in METRICS}
                    for system in ("base", "uae", "infonce_gold") if system in results},
    }


def cell(result: dict) -> str:
    """``0.7129 (+2.5%, p=0.003)``."""
    p, gain = result.get("p_value"), result.get("gain_pct")
    sign = "*" if result.get("significant") else ""
    gain_text = f"{gain:+.1f}%" if gain is not None else "gain n/a (base is 0)"
    return f"{result['mean']:.4f} ({gain_text}{sign}{f', p={p:.2g}' if p is not None else ''})"


def rule_counts(record: dict) -> str:
    """What the gold and confidence rules did to the uae rows of one variant, e.g. ``down-weighted 219, gold masked 48 / none``."""
    changed = ", ".join(f"{k} {v}" for k, v in sorted((record.get("rows_changed") or {}).items())) or "none"
    skipped = ", ".join(f"{k} {v}" for k, v in sorted((record.get("skipped") or {}).items())) or "none"
    return f"{changed} / {skipped}" if "rows_changed" in record else "not recorded"


def table(done: dict[str, dict]) -> str:
    header = ["variant", *(f"uae {m}" for m in METRICS), *(f"infonce_gold {m}" for m in METRICS), "base map",
              "uae rows the rules changed / skipped", "wall s"]
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for name, record in done.items():
        systems = record["systems"]
        row = [name, *(cell(systems["uae"][m]) for m in METRICS), *(cell(systems["infonce_gold"][m]) for m in METRICS),
               f"{systems['base']['map']['mean']:.4f}", rule_counts(record), f"{record['seconds']:.0f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    args, shared = parse_args(argv)
    command = command_line(__file__, sys.argv[1:] if argv is None else argv)
    info = machine()
    print(f"command: {command}\nmachine: {describe_machine(info)}")
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "sweep.json"
    done: dict[str, dict] = {} if args.fresh or not store.is_file() else json.loads(store.read_text(encoding="utf-8"))
    for number, name in enumerate(args.variants, 1):
        if name in done:
            print(f"[{number}/{len(args.variants)}] {name}: done in an earlier run, kept")
            continue
        print(f"[{number}/{len(args.variants)}] {name}")
        done[name] = run_variant(variant_argv(shared, VARIANTS[name], args.out), args.out)
        store.write_text(json.dumps(done, indent=2), encoding="utf-8")
    done = {name: done[name] for name in args.variants}
    n_queries = next(iter(done.values()))["n_queries"]
    text = "\n".join([
        section_heading(f"Dev sweep: {' '.join(shared)} (bench/dev_sweep.py)", args.quick),
        "",
        f"Command: `{command}`  ",
        f"Machine: {describe_machine(info)}.  ",
        f"Each row is one `bench/quality.py` run on the **dev** split ({n_queries} questions; the test split is not used) "
        "with the shared arguments and the variant's own; everything else as in the row `defaults` (the library's defaults, `uae.config`). `uae`'s "
        "training rows keep the gold passage first, like `infonce_gold`'s, except in the rows marked 'no evidence labels', "
        "which choose them without the gold flags (the mined pool still holds the gold passages: mining's include_gold "
        f"is on). Per-variant runs and settings: `{store.relative_to(ROOT) if store.is_relative_to(ROOT) else store}`.",
        "",
        table(done),
        "",
        "In parentheses: relative gain over the base encoder; * marks p < 0.05 (two-sided paired t-test). "
        "Wall seconds include reused stages (seconds) and retrained ones.",
    ]) + "\n"
    print(text)
    if not args.no_write:
        append_benchmarks(text)
    best = max(done, key=lambda name: done[name]["systems"]["uae"]["map"]["mean"])
    figures = {"best variant uae map": done[best]["systems"]["uae"]["map"]["mean"],
               "base map": done[best]["systems"]["base"]["map"]["mean"]}
    print(result_line(f"dev sweep, {len(done)} variants, best by dev MAP: {best}", figures))
    return done


if __name__ == "__main__":
    main()
