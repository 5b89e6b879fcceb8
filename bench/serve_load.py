"""Load test of `uae serve` on 127.0.0.1: requests/s and latency at several concurrencies, micro-batching on and off.

Index: sentences of the SQuAD v1.1 dev paragraphs (``../shared/data/squad`` or ``$UAE_SHARED_DATA``, both parts; each
sentence a passage, its article the ``doc_id``), encoded by the packaged all-MiniLM-L6-v2 into an
exact index in a temporary folder. Queries: the SQuAD dev questions, in order, cycled.

The script starts two servers, ``python -m uae.cli serve minilm --index DIR --threads 1`` with ``--batching``
and with ``--no-batching`` (uvicorn subprocesses, access log off), waits for their ``/healthz``,
then at each concurrency C measures one server and then the other (alternating which goes first):
C client tasks (each its own httpx client and connection) send ``POST /search`` with one query and k=10 until
``--requests`` requests are done or ``--seconds`` have passed, whichever comes first. Both servers
are stopped at the end, also on errors. ``--threads 1`` (``--server-threads``): on a shared, oversubscribed
machine two intra-op threads made each MiniLM call up to 10x slower (spinning OpenMP threads that
get preempted), and one core stays free for the event loop and the clients. The load generator runs on the same two
cores as the server, so it takes part of their time.

    python bench/serve_load.py --quick      # 1,000 passages, 64 requests per level
    python bench/serve_load.py              # 10,000 passages, 512 requests per level

``--mixed`` measures reads under writes instead: one server (batching on, ``--persist`` unless
``--no-persist``) over a copy of the index; C clients (default 64) share the requests, each drawn
as 70% ``POST /search``, 10% ``POST /embed``, 10% ``POST /passages`` (a SQuAD sentence not in the
index) and 10% ``DELETE /passages`` (the client's own earlier addition, else one of the original
passages reserved to that client). Every acknowledged write is checked by the client's next
search (an added passage's own text must find it; a removed one's must not), and after the run the
server is stopped and the index folder reloaded: every acknowledged add must be there and every
acknowledged delete gone (with ``--persist``). A timing taken with a load average above the core
count is flagged as such, not reported as a result.

    python bench/serve_load.py --mixed --quick   # 1,000 passages, 300 requests at concurrency 64
    python bench/serve_load.py --mixed           # 10,000 passages, 2,000 requests at concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ROOT,
    SHARED_DATA,
    append_benchmarks,
    command_line,
    describe_machine,
    machine,
    result_line,
    section_heading,
)

SQUAD = [SHARED_DATA / "squad" / "squad-v1.1-dev-part1.json", SHARED_DATA / "squad" / "squad-v1.1-dev-part2.json"]
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 passages and 64 requests per level (same code path)")
    parser.add_argument("--passages", type=int, help="passages in the index (default 10,000; --quick 1,000)")
    parser.add_argument("--requests", type=int, help="requests per concurrency level (default 512; --quick 64)")
    parser.add_argument("--seconds", type=float, help="time cap per level (default 60; --quick 10)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--server-threads", type=int, default=1,
                        help="`uae serve --threads` (torch/OpenMP threads); 1 leaves a core to the event loop and the clients")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    parser.add_argument("--mixed", action="store_true", help="70%% search, 10%% embed, 10%% add, 10%% delete at one concurrency "
                        "(default 64), writes checked by the next search and after a restart")
    parser.add_argument("--start-timeout", type=float, default=180.0, help="seconds to wait for a server's /healthz")
    parser.add_argument("--persist", action=argparse.BooleanOptionalAction, default=True,
                        help="--mixed: run the server with --persist (default) and check the folder after it stops")
    return parser.parse_args()


# -- data and index -----------------------------------------------------------------------


def squad_sentences_and_questions() -> tuple[list[tuple[str, str]], list[str]]:
    """``(article title, sentence)`` for every sentence of every paragraph, and every question."""
    sentences, questions = [], []
    for path in SQUAD:
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for paragraph in article["paragraphs"]:
                sentences += [(article["title"], s.strip()) for s in SENTENCE_END.split(paragraph["context"]) if s.strip()]
                questions += [qa["question"] for qa in paragraph["qas"]]
    return sentences, questions


def build_index(sentences: list[tuple[str, str]], count: int, folder: Path, threads: int) -> float:
    """Encode the first ``count`` distinct sentences with MiniLM and save an exact index; returns seconds."""
    import torch

    from uae.data.schema import Corpus, Passage
    from uae.retrieval.retriever import Retriever

    torch.set_num_threads(threads)

    unique = list(dict.fromkeys(sentences))
    if len(unique) < count:
        raise SystemExit(f"SQuAD dev has {len(unique)} distinct sentences, fewer than --passages {count}")
    corpus = Corpus(Passage(f"s{i}", text, doc_id=title) for i, (title, text) in enumerate(unique[:count]))
    started = time.perf_counter()
    Retriever.build("minilm", corpus, progress=False).save(folder)
    return time.perf_counter() - started


# -- the server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(index_dir: Path, batching: bool, threads: int, log: Path, extra: tuple[str, ...] = (),
                 timeout: float = 180.0) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "uae.cli", "serve", "minilm", "--index", str(index_dir), "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "--threads", str(threads),
               "--batching" if batching else "--no-batching", *extra]
    with open(log, "w") as handle:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    stop_server(process)
    raise SystemExit(f"the server did not answer /healthz within {timeout:.0f} s (--start-timeout)")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(process: subprocess.Popen) -> float:
    """User + system CPU time of the server process so far (all its threads), from /proc."""
    with open(f"/proc/{process.pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the load -----------------------------------------------------------------------------


async def warm_up(url: str, questions: list[str], k: int) -> None:
    """A few sequential requests before each level, not counted."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for question in questions[:4]:
            (await http.post("/search", json={"queries": [{"text": question}], "k": k})).raise_for_status()


def batching_counters(url: str) -> dict:
    return httpx.get(f"{url}/stats", timeout=10).json()["batching"]


async def run_level(url: str, questions: list[str], concurrency: int, total: int, seconds: float, k: int) -> dict:
    """``concurrency`` clients share ``total`` requests; they stop early once ``seconds`` have passed.

    Each client has its own ``httpx.AsyncClient`` with one connection, opened before the clock starts:
    one shared pool of 64 connections cost the generator 4.5 ms of CPU per request (0.8 ms this way)
    and made the generator, not the server, the bottleneck.
    """
    latencies: list[float] = []
    errors: list[str] = []
    issued = 0

    async def client(http: httpx.AsyncClient, deadline: float) -> None:
        nonlocal issued
        while issued < total and time.perf_counter() < deadline:
            question = questions[issued % len(questions)]
            issued += 1
            started = time.perf_counter()
            try:
                response = await http.post("/search", json={"queries": [{"text": question}], "k": k})
                if response.status_code != 200 or len(response.json()["results"][0]["hits"]) != k:
                    errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            except httpx.HTTPError as err:
                errors.append(f"{type(err).__name__}: {err}")
            latencies.append(time.perf_counter() - started)

    clients = [httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=1)) for _ in range(concurrency)]
    try:
        await asyncio.gather(*(http.get("/healthz") for http in clients))  # opens the connections
        started = time.perf_counter()
        await asyncio.gather(*(client(http, started + seconds) for http in clients))
        elapsed = time.perf_counter() - started
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))
    times = np.asarray(latencies) * 1000
    return {"concurrency": concurrency, "requests": len(latencies), "seconds": elapsed, "rps": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "errors": len(errors), "first_error": errors[0] if errors else ""}


def measure_level(process: subprocess.Popen, url: str, questions: list[str], concurrency: int, args) -> dict:
    """One level against one server, with the server's CPU time and encoder calls around it."""
    asyncio.run(warm_up(url, questions, args.k))
    cpu_before, counters_before = cpu_seconds(process), batching_counters(url)
    level = asyncio.run(run_level(url, questions, concurrency, args.requests, args.seconds, args.k))
    level["server_cpu_s"] = cpu_seconds(process) - cpu_before
    counters_after = batching_counters(url)
    calls = counters_after["encoder_calls"] - counters_before["encoder_calls"]
    level["per_call"] = (counters_after["search_queries"] - counters_before["search_queries"]) / max(calls, 1)
    level["per_cpu_s"] = level["requests"] / max(level["server_cpu_s"], 1e-3)
    return level


def run_modes(index_dir: Path, questions: list[str], args, log_dir: Path) -> dict[str, list[dict]]:
    """Both servers run side by side; each level is measured on one, then the other (alternating
    which goes first), so that both modes see the same background load on the shared machine."""
    servers = {}
    modes: dict[str, list[dict]] = {"on": [], "off": []}
    try:
        for mode in modes:
            servers[mode] = start_server(index_dir, mode == "on", args.server_threads, log_dir / f"server-{mode}.log",
                                         timeout=args.start_timeout)
        for position, concurrency in enumerate(args.concurrency):
            for mode in (("on", "off") if position % 2 == 0 else ("off", "on")):
                level = measure_level(*servers[mode], questions, concurrency, args)
                modes[mode].append(level)
                print(f"  batching {mode:<3} c={concurrency:>3}: {level['rps']:7.1f} req/s, p50 {level['p50_ms']:7.1f} ms, "
                      f"p99 {level['p99_ms']:7.1f} ms, {level['per_cpu_s']:6.1f} req per server CPU-s, "
                      f"{level['per_call']:4.1f} queries per encoder call, {level['requests']} requests, "
                      f"{level['errors']} errors {level['first_error'][:120]}", flush=True)
    finally:
        for process, _ in servers.values():
            stop_server(process)
    return {mode: sorted(levels, key=lambda level: level["concurrency"]) for mode, levels in modes.items()}


# -- mixed reads and writes ---------------------------------------------------------------

MIX = (("search", 0.7), ("embed", 0.1), ("add", 0.1), ("delete", 0.1))


class MixedState:
    """What the clients of a mixed run were told was done, to check against the searches and the saved folder."""

    def __init__(self, originals: dict[str, str], fresh: list[str]):
        self.originals = originals
        self.fresh = iter(fresh)
        self.added: dict[str, str] = {}
        self.removed: set[str] = set()
        self.latencies: dict[str, list[float]] = {kind: [] for kind, _ in MIX}
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.failed_checks: list[str] = []
        self.issued = 0


async def mixed_client(http: httpx.AsyncClient, client: int, concurrency: int, state: MixedState, total: int,
                       deadline: float, questions: list[str], k: int) -> None:
    """One client: draws operations by the mix; a write's effect is checked by this client's next search."""
    import random

    rng = random.Random(client)
    reserved = list(state.originals)[client::concurrency]
    own: list[str] = []
    check: tuple[str, str, bool] | None = None  # (passage id, its text, should be found)
    while state.issued < total and time.perf_counter() < deadline:
        kind = rng.choices([kind for kind, _ in MIX], [weight for _, weight in MIX])[0]
        if kind == "delete" and not own and not reserved:
            kind = "search"
        state.issued += 1
        started = time.perf_counter()
        try:
            if kind == "search":
                text = check[1] if check else questions[rng.randrange(len(questions))]
                response = await http.post("/search", json={"queries": [{"text": text}], "k": k})
                if response.status_code == 200 and check:
                    ids = [hit["id"] for hit in response.json()["results"][0]["hits"]]
                    if (check[0] in ids) != check[2]:
                        state.failed_checks.append(f"{check[0]} {'missing after its add' if check[2] else 'found after its delete'}")
                    check = None
            elif kind == "embed":
                response = await http.post("/embed", json={"texts": [questions[rng.randrange(len(questions))]]})
            elif kind == "add":
                pid, text = f"new-{client}-{len(own)}-{state.issued}", next(state.fresh)
                response = await http.post("/passages", json={"passages": [{"id": pid, "text": text}]})
                if response.status_code == 200:
                    state.added[pid] = text
                    own.append(pid)
                    check = (pid, text, True)
            else:
                pid = own.pop(0) if own else reserved.pop()
                response = await http.request("DELETE", "/passages", json={"ids": [pid]})
                if response.status_code == 200:
                    state.removed.add(pid)
                    check = (pid, state.added.get(pid) or state.originals[pid], False)
            state.statuses[response.status_code] = state.statuses.get(response.status_code, 0) + 1
            if response.status_code != 200:
                state.errors.append(f"{kind}: HTTP {response.status_code}: {response.text[:200]}")
        except httpx.HTTPError as err:
            state.errors.append(f"{kind}: {type(err).__name__}: {err}")
        state.latencies[kind].append(time.perf_counter() - started)


async def mixed_load(url: str, state: MixedState, questions: list[str], concurrency: int, total: int, seconds: float,
                     k: int) -> float:
    """``concurrency`` mixed clients, each with its own connection; returns the elapsed seconds."""
    clients = [httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=1)) for _ in range(concurrency)]
    try:
        await asyncio.gather(*(http.get("/healthz") for http in clients))
        started = time.perf_counter()
        await asyncio.gather(*(mixed_client(http, c, concurrency, state, total, started + seconds, questions, k)
                               for c, http in enumerate(clients)))
        return time.perf_counter() - started
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))


def run_mixed(index_dir: Path, sentences: list[tuple[str, str]], questions: list[str], args, tmp: Path) -> dict:
    """The mixed run against one server, then the restart check on its folder."""
    import shutil

    from uae.retrieval.index import DenseIndex

    live = tmp / "live"
    shutil.copytree(index_dir, live)
    unique = [text for _, text in dict.fromkeys(sentences)]
    originals = {p.id: p.text for p in DenseIndex.load(live).passages}
    state = MixedState(originals, unique[args.passages:])
    concurrency = max(args.concurrency)
    process, url = start_server(live, True, args.server_threads, tmp / "server-mixed.log", ("--persist",) if args.persist else (),
                                timeout=args.start_timeout)
    try:
        asyncio.run(warm_up(url, questions, args.k))
        cpu_before = cpu_seconds(process)
        elapsed = asyncio.run(mixed_load(url, state, questions, concurrency, args.requests, args.seconds, args.k))
        server_cpu = cpu_seconds(process) - cpu_before
        served_size = httpx.get(f"{url}/healthz", timeout=30).json()["corpus_size"]
    finally:
        stop_server(process)
    expected = (set(originals) | set(state.added)) - state.removed
    lost = extra = None
    if args.persist:
        saved = {p.id for p in DenseIndex.load(live).passages}
        lost, extra = sorted(expected - saved), sorted(saved - expected)
    every = [t for values in state.latencies.values() for t in values]
    ms = lambda values, q: float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")  # noqa: E731
    return {"concurrency": concurrency, "requests": len(every), "seconds": elapsed, "rps": len(every) / elapsed,
            "p50_ms": ms(every, 50), "p99_ms": ms(every, 99), "server_cpu_s": server_cpu,
            "by_kind": {kind: {"count": len(values), "p50_ms": ms(values, 50), "p99_ms": ms(values, 99)}
                        for kind, values in state.latencies.items()},
            "statuses": state.statuses, "errors": len(state.errors), "first_error": state.errors[0] if state.errors else "",
            "server_5xx": sum(count for status, count in state.statuses.items() if status >= 500),
            "failed_checks": state.failed_checks, "added": len(state.added), "removed": len(state.removed),
            "size_ok": served_size == len(expected), "lost": lost, "resurrected": extra}


def mixed_main(args, info: dict, command: str, sentences, questions) -> None:
    with tempfile.TemporaryDirectory(prefix="uae-bench-mixed-") as tmp:
        tmp = Path(tmp)
        build_s = build_index(sentences, args.passages, tmp / "index", args.server_threads)
        print(f"index: {args.passages:,} SQuAD sentences encoded by MiniLM in {build_s:.1f} s", flush=True)
        result = run_mixed(tmp / "index", sentences, questions, args, tmp)
    load_after = os.getloadavg()[0]
    loaded = max(info["load_average"], load_after) > (info["cores"] or 1)
    flag = (f"FLAGGED: load average {info['load_average']:.1f} before, {load_after:.1f} after, above the {info['cores']} cores: "
            "the timings below are not a measurement of the service" if loaded else
            f"load average {info['load_average']:.1f} before, {load_after:.1f} after")
    rows = ["| operation | requests | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    rows += [f"| {kind} | {v['count']} | {v['p50_ms']:.1f} | {v['p99_ms']:.1f} |" for kind, v in result["by_kind"].items()]
    rows.append(f"| all | {result['requests']} | {result['p50_ms']:.1f} | {result['p99_ms']:.1f} |")
    checks = (f"{result['added']} adds and {result['removed']} deletes acknowledged; {len(result['failed_checks'])} not seen as "
              f"done by the next search{(' (e.g. ' + result['failed_checks'][0] + ')') if result['failed_checks'] else ''}; "
              f"served corpus size {'matches' if result['size_ok'] else 'DOES NOT match'} the acknowledged edits; "
              + (f"after the server stopped, the saved folder lost {len(result['lost'])} acknowledged add(s) and kept "
                 f"{len(result['resurrected'])} acknowledged delete(s)" if result["lost"] is not None else "not persisted (--no-persist)"))
    print(flag)
    print("\n".join(rows))
    print(f"{result['rps']:.1f} req/s over {result['seconds']:.1f} s, statuses {result['statuses']}, "
          f"{result['server_5xx']} 5xx; {checks}")
    if result["first_error"]:
        print(f"first error: {result['first_error']}")
    section = "\n".join([
        section_heading(f"Service under mixed load, {args.passages:,} passages", args.quick), "",
        f"Command: `{command}`", "",
        f"Machine: {describe_machine(info)}; httpx {httpx.__version__}. {flag}.", "",
        f"Setup: `uae serve minilm --index DIR --threads {args.server_threads}{' --persist' if args.persist else ''}` "
        f"(batching on) over an exact index of {args.passages:,} SQuAD v1.1 dev sentences; {result['concurrency']} clients, "
        f"{args.requests} requests or {args.seconds:.0f} s: 70% search (k={args.k}), 10% embed, 10% add, 10% delete.", "",
        "\n".join(rows), "",
        f"{result['rps']:.1f} req/s; statuses {result['statuses']}; {checks}.",
    ])
    if not args.no_write:
        print(f"appended to {append_benchmarks(section)}")
    figures = {"req/s": f"{result['rps']:.1f}", "p50 ms": f"{result['p50_ms']:.0f}", "search p50 ms":
               f"{result['by_kind']['search']['p50_ms']:.0f}", "5xx": result["server_5xx"],
               "failed checks": len(result["failed_checks"]), "lost": "n/a" if result["lost"] is None else len(result["lost"]),
               "load": "flagged" if loaded else "ok"}
    print(result_line(f"service mixed load{' (quick)' if args.quick else ''}", figures))


# -- report -------------------------------------------------------------------------------


def table(modes: dict[str, list[dict]]) -> str:
    off = {level["concurrency"]: level for level in modes["off"]}
    lines = ["| concurrency | batching | requests | req/s | p50 ms | p99 ms | errors | queries per encoder call | server CPU s "
             "| req per server CPU-s | req/s vs off | req per CPU-s vs off |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode in ("on", "off"):
        for level in modes[mode]:
            base = off[level["concurrency"]]
            lines.append(f"| {level['concurrency']} | {mode} | {level['requests']} | {level['rps']:.1f} | {level['p50_ms']:.1f} | "
                         f"{level['p99_ms']:.1f} | {level['errors']} | {level['per_call']:.1f} | {level['server_cpu_s']:.1f} | "
                         f"{level['per_cpu_s']:.1f} | "
                         f"{level['rps'] / base['rps']:.2f}x | {level['per_cpu_s'] / base['per_cpu_s']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    args.passages = args.passages or (1_000 if args.quick else 10_000)
    if args.mixed:
        args.requests = args.requests or (300 if args.quick else 2_000)
        args.seconds = args.seconds or (120.0 if args.quick else 600.0)
        args.concurrency = [64] if args.concurrency == [1, 8, 32, 64] else args.concurrency
    args.requests = args.requests or (64 if args.quick else 512)
    args.seconds = args.seconds or (10.0 if args.quick else 60.0)
    info = machine()
    command = command_line(__file__)
    print(f"command: {command}")
    print(f"machine: {describe_machine(info)}; httpx {httpx.__version__}")

    sentences, questions = squad_sentences_and_questions()
    if args.mixed:
        return mixed_main(args, info, command, sentences, questions)
    with tempfile.TemporaryDirectory(prefix="uae-bench-serve-") as tmp:
        tmp = Path(tmp)
        build_s = build_index(sentences, args.passages, tmp / "index", args.server_threads)
        print(f"index: {args.passages:,} SQuAD sentences encoded by MiniLM in {build_s:.1f} s; "
              f"{len(questions):,} SQuAD questions as queries", flush=True)
        modes = run_modes(tmp / "index", questions, args, tmp)

    report = table(modes)
    print(report)
    top = max(args.concurrency)
    on, off = modes["on"][-1], modes["off"][-1]
    figures = {
        f"c={top} batching on req/s": f"{on['rps']:.1f}",
        "off req/s": f"{off['rps']:.1f}",
        "gain": f"{on['rps'] / off['rps']:.2f}x",
        "gain per server CPU-s": f"{on['per_cpu_s'] / off['per_cpu_s']:.2f}x",
        f"c={top} p99 ms on/off": f"{on['p99_ms']:.0f}/{off['p99_ms']:.0f}",
        f"errors at c={top} on/off": f"{on['errors']}/{off['errors']}",
        "errors total": sum(level["errors"] for mode in modes.values() for level in mode),
        f"queries per encoder call at c={top} (on)": f"{on['per_call']:.1f}",
    }
    section = "\n".join([
        section_heading(f"Service load, {args.passages:,} passages", args.quick),
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {describe_machine(info)}; httpx {httpx.__version__}. The load generator shares the 2 cores with the server.",
        "",
        f"Setup: `uae serve minilm --index DIR --threads {args.server_threads}` (uvicorn, one process, access log off) "
        f"on 127.0.0.1 over an exact index "
        f"of {args.passages:,} SQuAD v1.1 dev sentences encoded by the packaged all-MiniLM-L6-v2 (built in {build_s:.0f} s); "
        f"queries are SQuAD dev questions, one per `POST /search`, k={args.k}. Each level: {args.requests} requests "
        f"or {args.seconds:.0f} s, whichever ends first, after 4 sequential warm-up requests. Batching on: max batch 64, "
        f"max wait 5 ms. Queries per encoder call: from the server's own counters (`GET /stats`) around each level. "
        "Gains: with batching / without, same run, same level. Req/s depends "
        "on how much CPU the other jobs left to the server; requests per server CPU-second (user + system time of the server "
        "process, all threads, from /proc) measures the work each request cost and is less sensitive to that.",
        "",
        report,
    ])
    if not args.no_write:
        print(f"appended to {append_benchmarks(section)}")
    print(result_line(f"service load{' (quick)' if args.quick else ''}", figures))


if __name__ == "__main__":
    main()
