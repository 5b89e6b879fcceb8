"""The ``uae`` command: thin wrappers that parse arguments and call the library."""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

app = typer.Typer(
    help="Utility-Aligned Embeddings: train retrievers on what helps an LLM answer.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()
error_console = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[Path, typer.Argument(help="BEIR folder with answers: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")]


def _fail(message: str) -> None:
    error_console.print(Text.assemble(("error: ", "red"), message), highlight=False)
    raise typer.Exit(code=2)


def _guarded(action):
    """Run ``action``; input errors (:data:`uae.errors.USER_ERRORS`) become one red line and exit code 2, not a traceback."""
    from uae.errors import USER_ERRORS, one_line

    try:
        return action()
    except USER_ERRORS as err:
        _fail(one_line(err))


def _read_pooled(data: Path, pools: Path):
    """The dataset, the pools of ``uae mine`` and the pooled queries; pools of another dataset are refused."""
    from uae.data.beir import read_dataset
    from uae.data.tables import read_pools
    from uae.errors import DataError

    dataset = read_dataset(data)
    pool_table = read_pools(pools)
    if not pool_table:
        raise DataError(pools, None, "no pools in this file; expected the pools of `uae mine` (did mining find no usable queries?)")
    if unknown := [qid for qid in pool_table if qid not in dataset.queries]:
        raise DataError(pools, None, f"{len(unknown)} pooled query id(s) are not in {data}/queries.jsonl, "
                                     f"e.g. {unknown[:5]}; were the pools mined from another dataset?")
    return dataset, pool_table, [dataset.queries[qid] for qid in pool_table]


def _peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="run folder")] = Path("runs/quickstart"),
    steps: Annotated[int, typer.Option(help="training steps (0: the default)", min=0)] = 0,
    fresh: Annotated[bool, typer.Option(help="recompute every stage")] = False,
) -> None:
    """Every stage, offline, on the embedded synthetic QA set: MiniLM base, Dirichlet teacher."""
    from uae.config import quickstart_config
    from uae.data.synthetic import write_quickstart_data
    from uae.pipeline import run_pipeline

    started = time.perf_counter()
    if fresh and out.exists():
        import shutil

        shutil.rmtree(out)
    data_dir = write_quickstart_data(out / "data")
    config = quickstart_config(data_dir, out, steps or None)
    result = _guarded(lambda: run_pipeline(config))
    stats = {"wall_seconds": round(time.perf_counter() - started, 1), "peak_memory_mib": round(_peak_memory_mib(), 1)}
    (out / "run_stats.json").write_text(json.dumps(stats, indent=2))
    with open(out / "report.md", "a", encoding="utf-8") as report:
        report.write(f"\n## Cost\n\nWall time {stats['wall_seconds']} s, peak memory {stats['peak_memory_mib']} MiB "
                     f"(resident set of the `uae quickstart` process), on {os.cpu_count()} CPU cores.\n")
    console.print(f"quickstart: {stats['wall_seconds']} s, peak memory {stats['peak_memory_mib']} MiB; "
                  f"metrics in {result.out_dir / 'metrics.json'}")


@app.command()
def run(config_path: Annotated[Path, typer.Argument(help="YAML config (see examples/config.yaml)")]) -> None:
    """Every stage on your own data, as described by a config file."""
    from uae.config import load_config
    from uae.pipeline import run_pipeline

    config = _guarded(lambda: load_config(config_path))
    _guarded(lambda: run_pipeline(config))


@app.command()
def mine(
    data: DataDir,
    out: Annotated[Path, typer.Option(help="pools parquet file")] = Path("pools.parquet"),
    split: Annotated[str, typer.Option(help="qrels split whose queries get pools")] = "train",
    model: Annotated[str, typer.Option(help="base encoder (path, hub name, or 'minilm')")] = "minilm",
    pool_size: Annotated[int, typer.Option(help="candidates per query", min=2)] = 16,
    depth: Annotated[int, typer.Option(help="depth of each ranking before fusion", min=1)] = 100,
    include_gold: Annotated[bool, typer.Option(help="always include gold evidence")] = True,
) -> None:
    """Mine candidate pools with BM25 + the base encoder, fused by reciprocal rank."""
    from uae.data.beir import read_dataset
    from uae.data.tables import write_pools
    from uae.progress import report_skips
    from uae.retrieval.mining import mine_pools
    from uae.retrieval.retriever import Retriever

    def action():
        dataset = read_dataset(data)
        queries, skipped = dataset.training_queries(split)
        report_skips("mine", skipped)
        retriever = Retriever.build(model, dataset.corpus)
        pools = mine_pools(dataset, queries, retriever, pool_size, depth, include_gold)
        write_pools(pools, out)
        console.print(f"wrote {len(pools)} pools of up to {pool_size} to {out}")

    _guarded(action)


@app.command()
def label(
    data: DataDir,
    pools: Annotated[Path, typer.Option(help="pools parquet from `uae mine`")] = Path("pools.parquet"),
    out: Annotated[Path, typer.Option(help="labels folder (resumable)")] = Path("labels"),
    teacher: Annotated[str, typer.Option(help="dirichlet | dirichlet:mu=N | hf:<model-or-path> | openai:<base_url> | vllm:<model>")] = "dirichlet",
    part_queries: Annotated[int, typer.Option(help="queries per part file (unit of resumption)", min=1)] = 64,
    batch_tokens: Annotated[int, typer.Option(help="hf: padded tokens per forward pass", min=1)] = 4096,
    model: Annotated[Optional[str], typer.Option(help="openai: served model name (default: the only one the server lists)")] = None,
    concurrency: Annotated[int, typer.Option(help="openai: requests in flight", min=1)] = 8,
    ray: Annotated[bool, typer.Option("--ray/--no-ray", help="spread parts over Ray workers (one per GPU)")] = False,
    ray_address: Annotated[Optional[str], typer.Option(help="--ray: cluster address (auto, ray://host:10001); default a local Ray")] = None,
    workers: Annotated[Optional[int], typer.Option(help="--ray: number of workers (default one per GPU, else per CPU)", min=1)] = None,
    gpus_per_worker: Annotated[Optional[float], typer.Option(help="--ray: GPUs per worker (default 1 if the cluster has GPUs, else 0)", min=0)] = None,
) -> None:
    """Score each pooled passage: the answer's NLL with and without it, per gold answer."""
    from uae.labeling import label_pools
    from uae.teachers import load_teacher

    def action():
        dataset, pool_table, queries = _read_pooled(data, pools)
        options: dict = {"batch_tokens": batch_tokens} if teacher.startswith("hf:") else {}
        if teacher.startswith("openai:"):
            options = {"concurrency": concurrency, **({"model": model} if model else {})}
        try:
            if ray:
                from uae.labeling.ray import label_pools_ray

                summary = label_pools_ray(queries, pool_table, dataset.corpus, teacher, out, part_queries,
                                          teacher_options=options, workers=workers, gpus_per_worker=gpus_per_worker,
                                          address=ray_address)
            else:
                summary = label_pools(queries, pool_table, dataset.corpus, load_teacher(teacher, **options), out, part_queries)
        except ImportError as err:
            _fail(str(err))
        for line in summary.skipped.lines():
            console.print(f"[yellow]label: {line}")
        if summary.truncated:
            console.print(f"[yellow]label: {summary.truncated} passage(s) cut to fit the teacher's context")
        console.print(json.dumps(summary.to_dict(), indent=2))

    _guarded(action)


@app.command()
def train(
    data: DataDir,
    pools: Annotated[Path, typer.Option(help="pools parquet from `uae mine`")] = Path("pools.parquet"),
    labels: Annotated[list[Path], typer.Option(help="labels folder from `uae label` (not needed for infonce_gold); "
                                                "repeat for several teachers")] = [],
    teacher_weights: Annotated[Optional[str], typer.Option(help="several --labels: comma-separated weights, in --labels order (default equal)")] = None,
    combine: Annotated[str, typer.Option(help="several --labels: mean_distribution | mean_zscore")] = "mean_distribution",
    out: Annotated[Path, typer.Option(help="output model folder")] = Path("model"),
    base_model: Annotated[str, typer.Option(help="encoder to fine-tune")] = "minilm",
    split: Annotated[str, typer.Option(help="qrels split of the training questions")] = "train",
    loss: Annotated[Optional[str], typer.Option(help="um_infonce | infonce_gold | hard_utility | pool_kl | margin_mse")] = None,
    tau_t: Annotated[Optional[float], typer.Option(help="teacher temperature")] = None,
    tau_s: Annotated[Optional[float], typer.Option(help="student temperature")] = None,
    normalize: Annotated[Optional[str], typer.Option(help="none | zscore (per-query utility normalisation)")] = None,
    confidence: Annotated[Optional[str], typer.Option(help="queries whose best passage barely helps: weight | soften | skip | none")] = None,
    confidence_quantile: Annotated[Optional[float], typer.Option(help="the confidence threshold: this quantile of the training queries' best utilities")] = None,
    confident_utility: Annotated[Optional[float], typer.Option(help="a fixed confidence threshold (nats per answer token) instead")] = None,
    gold_rule: Annotated[Optional[str], typer.Option("--gold", help="gold passages the teacher finds useless: mask | floor | none")] = None,
    hard_mix: Annotated[Optional[float], typer.Option(help="weight of hard InfoNCE on the top-utility passage")] = None,
    steps: Annotated[Optional[int], typer.Option(help="optimisation steps (model selection may stop earlier)")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="queries per step")] = None,
    train_pool_size: Annotated[Optional[int], typer.Option(help="passages per query in training")] = None,
    pool_selection: Annotated[Optional[str], typer.Option(help="rows keep: gold_first | rank | utility_first (the last two ignore "
                                                          "the gold flags)")] = None,
    max_gold: Annotated[Optional[int], typer.Option(help="gold_first rows: the most gold passages a row keeps")] = None,
    multi_positive: Annotated[Optional[str], typer.Option(help="infonce_gold: spread | mask (several gold passages in a row)")] = None,
    learning_rate: Annotated[Optional[float], typer.Option()] = None,
    max_seq_length: Annotated[Optional[int], typer.Option()] = None,
    dev_fraction: Annotated[Optional[float], typer.Option(help="share of the training questions held out for model selection (0: off)")] = None,
    selection_metric: Annotated[Optional[str], typer.Option(help="auto | evidence | answer | utility")] = None,
    eval_every: Annotated[Optional[int], typer.Option(help="steps between dev evaluations")] = None,
    patience: Annotated[Optional[int], typer.Option(help="dev evaluations without improvement before stopping")] = None,
    fallback: Annotated[Optional[str], typer.Option(help="when the student does not beat the base on dev: save the base | student")] = None,
    aggregate: Annotated[str, typer.Option(help="mean | max over several gold answers")] = "mean",
    seed: Annotated[Optional[int], typer.Option()] = None,
    gather_across_devices: Annotated[Optional[bool], typer.Option(
        "--gather-across-devices/--no-gather-across-devices",
        help="under torchrun / accelerate launch: in-batch negatives from every process (default) or the local batch only")] = None,
    push_to_hub: Annotated[Optional[str], typer.Option(help="after training, upload the model folder (with its card) to this "
                                                        "Hugging Face repo, e.g. user/uae-minilm (token: HF_TOKEN or "
                                                        "`hf auth login`)")] = None,
) -> None:
    """Fine-tune the encoder on utility targets (or an ablation loss), keeping the best checkpoint on a dev split.

    Defaults are those of `uae run` (examples/config.yaml).
    """
    from uae.config import RunConfig, SelectionConfig, TargetConfig, TeacherMixConfig, TrainingConfig
    from uae.pipeline import stage_train
    from uae.progress import report_skips
    from uae.targets.mixing import load_training_labels
    from uae.training.losses import label_kind_of

    def action():
        training = TrainingConfig(**_given(loss=loss, tau_s=tau_s, hard_mix=hard_mix, steps=steps, batch_size=batch_size,
                                           train_pool_size=train_pool_size, pool_selection=pool_selection, max_gold=max_gold,
                                           multi_positive=multi_positive, learning_rate=learning_rate,
                                           max_seq_length=max_seq_length, seed=seed,
                                           gather_across_devices=gather_across_devices))
        targets = TargetConfig(**_given(tau_t=tau_t, normalize=normalize, confidence=confidence,
                                        confidence_quantile=confidence_quantile, confident_utility=confident_utility,
                                        gold=gold_rule))
        selection = SelectionConfig(**_given(dev_fraction=dev_fraction, metric=selection_metric, eval_every=eval_every,
                                             patience=patience, fallback=fallback))
        dataset, pool_table, queries = _read_pooled(data, pools)
        utilities, record = None, {}
        teacher = _labels_teacher(labels) or "dirichlet"
        if label_kind_of(training.loss) != "gold":
            if not labels:
                _fail(f"loss {training.loss} learns from utilities: pass --labels from `uae label`")
            weights = [float(w) for w in teacher_weights.split(",")] if teacher_weights and len(labels) > 1 else None
            mix = TeacherMixConfig(weights=weights, mode=combine) if len(labels) > 1 else None
            learned = load_training_labels(labels, aggregate, targets, mix)
            for stage, skipped in learned.skipped.items():
                report_skips(stage, skipped)
            if mix is not None:
                console.print(f"targets from {len(labels)} teachers ({mix.mode}): {learned.record['teacher']['teachers']}, "
                              f"weights {mix.weights or 'equal'}")
            utilities, targets, record, teacher = learned.utilities, learned.targets, learned.record, learned.teacher
        config = RunConfig(data=str(data), out=str(out.parent), base_model=base_model, train_split=split,
                           labeling={"teacher": teacher, "aggregate": aggregate}, targets=targets,
                           training=training, selection=selection)
        stage_train(config, dataset, queries, pool_table, utilities, training.loss, out.name, out=out, record=record)
        console.print(f"saved model to {out}")
        if push_to_hub:
            from uae.retrieval.encoders import load_encoder

            url = load_encoder(str(out)).push_to_hub(push_to_hub, local_model_path=str(out), exist_ok=True)
            console.print(f"pushed {out} to {url}")

    _guarded(action)


def _given(**options):
    """The options the user gave (not ``None``), so that the config models' defaults fill the rest."""
    return {name: value for name, value in options.items() if value is not None}


def _labels_teacher(labels: list[Path]) -> str | None:
    """The teacher recorded in the one labels folder's manifest, if any."""
    from uae.labeling.jobs import teacher_name

    return teacher_name(labels[0]) if len(labels) == 1 else None


@app.command()
def qrels(
    from_utilities: Annotated[Path, typer.Option("--from-utilities", help="labels folder from `uae label`, or its nlls.parquet")],
    out: Annotated[Path, typer.Option(help="qrels TSV to write, e.g. DATA/qrels/teacher_b.tsv (then `uae eval DATA --split teacher_b`)")],
    grades: Annotated[int, typer.Option(help="highest grade G; helpful passages get 1..G", min=1)] = 3,
    aggregate: Annotated[str, typer.Option(help="mean | max over several gold answers")] = "mean",
    scheme: Annotated[str, typer.Option(help="quantile (within-query quantiles of positive utilities) | threshold")] = "quantile",
    thresholds: Annotated[Optional[str], typer.Option(help="threshold scheme: G-1 increasing utilities (nats/token), comma-separated")] = None,
    min_utility: Annotated[float, typer.Option(help="a passage is helpful when its utility exceeds this")] = 0.0,
) -> None:
    """Graded qrels from a teacher's utilities, to judge retrievers by a held-out teacher."""
    from uae.data.beir import write_qrels
    from uae.evaluation.cross_teacher import grade_histogram, graded_qrels
    from uae.labeling.jobs import teacher_name
    from uae.progress import report_skips
    from uae.targets.utilities import utilities_from_labels

    def action():
        if aggregate not in ("mean", "max"):
            raise ValueError(f"--aggregate must be mean or max, got {aggregate!r}")
        cuts = [float(t) for t in thresholds.split(",")] if thresholds else None
        utilities, skipped = utilities_from_labels(from_utilities, aggregate)
        report_skips("utilities", skipped)
        judged, empty = graded_qrels(utilities, grades, scheme, cuts, min_utility)
        report_skips("qrels", empty)
        write_qrels(judged, out)
        console.print(f"wrote {out}: {len(judged)} queries judged by {teacher_name(from_utilities)} ({scheme}, grades 0..{grades}); "
                      f"passages per grade {grade_histogram(judged)}")

    _guarded(action)


@app.command()
def index(
    model: Annotated[str, typer.Argument(help="model folder (or 'minilm')")],
    data: DataDir,
    out: Annotated[Path, typer.Option(help="index folder")] = Path("index"),
    kind: Annotated[str, typer.Option(help="exact | hnsw | ivfpq")] = "exact",
    hnsw_m: Annotated[Optional[int], typer.Option(help="hnsw: neighbours per node (M)")] = None,
    ef_construction: Annotated[Optional[int], typer.Option(help="hnsw: candidate list while building")] = None,
    ef_search: Annotated[Optional[int], typer.Option(help="hnsw: candidate list while searching")] = None,
    nlist: Annotated[Optional[int], typer.Option(help="ivfpq: coarse cells (default sqrt(n))")] = None,
    pq_m: Annotated[Optional[int], typer.Option(help="ivfpq: sub-quantizers, divides the dimension")] = None,
    nbits: Annotated[Optional[int], typer.Option(help="ivfpq: bits per code")] = None,
    nprobe: Annotated[Optional[int], typer.Option(help="ivfpq: cells visited per query")] = None,
    backend: Annotated[str, typer.Option(help="faiss (in this process) | milvus (a Milvus collection: embedded Milvus Lite "
                                              "in OUT, or a cluster with --uri); pip install 'uae[milvus]'")] = "faiss",
    uri: Annotated[Optional[str], typer.Option(help="milvus: http://host:19530 for a server or cluster (default: OUT/milvus.db, "
                                                    "embedded); credentials from MILVUS_TOKEN")] = None,
    collection: Annotated[str, typer.Option(help="milvus: collection name")] = "uae_passages",
    replace_collection: Annotated[bool, typer.Option(help="milvus: drop an existing collection of that name first")] = False,
    ray: Annotated[bool, typer.Option("--ray/--no-ray", help="encode the corpus in resumable shards (OUT/shards) on Ray workers")] = False,
    ray_address: Annotated[Optional[str], typer.Option(help="--ray: cluster address (auto, ray://host:10001); default a local Ray")] = None,
    workers: Annotated[Optional[int], typer.Option(help="--ray: number of workers (default one per GPU, else per CPU)")] = None,
    gpus_per_worker: Annotated[Optional[float], typer.Option(help="--ray: GPUs per worker (default 1 if the cluster has GPUs, else 0)")] = None,
    shard_size: Annotated[int, typer.Option(help="--ray: passages per shard (the unit of resumption)")] = 10_000,
) -> None:
    """Encode the corpus with MODEL and write an index bound to it (FAISS, or a Milvus collection with --backend milvus)."""
    from uae.data.beir import read_dataset
    from uae.retrieval.index import IndexConfig, check_index_folder
    from uae.retrieval.retriever import Retriever

    def action():
        options = {"hnsw_m": hnsw_m, "ef_construction": ef_construction, "ef_search": ef_search, "nlist": nlist,
                   "pq_m": pq_m, "nbits": nbits, "nprobe": nprobe}
        config = IndexConfig(kind=kind, **{name: value for name, value in options.items() if value is not None})
        check_index_folder(out)  # before the encoding, not after it
        store = _store_config(backend, uri, collection, replace_collection)
        ray_only = {"--ray-address": ray_address, "--workers": workers, "--gpus-per-worker": gpus_per_worker,
                    "--shard-size": None if shard_size == 10_000 else shard_size}
        if not ray and any(value is not None for value in ray_only.values()):
            _fail(f"{', '.join(name for name, value in ray_only.items() if value is not None)} only apply with --ray")
        dataset = read_dataset(data)
        vectors = None
        if ray:
            from uae.retrieval.ray_encoding import encode_corpus_ray

            vectors = encode_corpus_ray(model, dataset.corpus, out, shard_size=shard_size, workers=workers,
                                        gpus_per_worker=gpus_per_worker, address=ray_address)
        Retriever.build(model, dataset.corpus, index_config=config, store=store, folder=out, vectors=vectors).save(out)
        where = f"{backend} collection {collection}" if store else config.kind
        console.print(f"indexed {len(dataset.corpus)} passages into {out} ({where})")

    _guarded(action)


def _store_config(backend: str, uri: str | None, collection: str, replace: bool):
    """The vector database ``uae index --backend`` writes into (``None`` for FAISS)."""
    if backend == "faiss":
        if uri is not None:
            _fail("--uri names a vector database server; it needs --backend milvus")
        return None
    if backend != "milvus":
        _fail(f"--backend must be faiss or milvus, got {backend!r}")
    from uae.retrieval.vector_store import StoreConfig

    return StoreConfig(uri=uri, collection=collection, replace=replace, token=os.environ.get("MILVUS_TOKEN"))


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="model folder (or 'minilm') to export")],
    out: Annotated[Path, typer.Option(help="new folder for the export")],
    onnx: Annotated[bool, typer.Option("--onnx", help="export to ONNX (the only format so far)")] = False,
    quantize: Annotated[Optional[str], typer.Option(help="int8: dynamic int8 quantisation (per channel)")] = None,
    min_cosine: Annotated[float, typer.Option(help="mean cosine to the source model at which the export keeps its fingerprint")] = 0.99,
) -> None:
    """Export MODEL for fast CPU query encoding with ONNX Runtime; search, index and serve accept the folder."""
    from uae.retrieval.onnx_encoder import export_onnx

    if not onnx:
        _fail("uae export: pass --onnx (the only export format so far)")
    manifest = _guarded(lambda: export_onnx(model, out, quantize, min_cosine))
    cosine = manifest["cosine_to_source"]
    console.print(f"exported {model} to {out} ({manifest['precision']}); cosine to the source: mean {cosine['mean']:.4f}, "
                  f"min {cosine['min']:.4f} over {cosine['texts']} texts")
    if manifest["shares_source_fingerprint"]:
        console.print(f"fingerprint {manifest['fingerprint']} (the source's): searches indexes built by {model}")
    else:
        console.print(f"[yellow]fingerprint {manifest['fingerprint']} (its own: mean cosine below {min_cosine}); "
                      f"build an index with it: uae index {out} DATA")


@app.command()
def search(
    index_dir: Annotated[Path, typer.Argument(help="index folder from `uae index` or a run's index/")],
    query: Annotated[list[str], typer.Argument(help="one or more queries")],
    k: Annotated[int, typer.Option("-k", help="passages per query", min=1)] = 5,
    scope: Annotated[Optional[str], typer.Option(help="search only the passages of this doc_id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    model: Annotated[Optional[str], typer.Option(help="encode queries with this model (e.g. an ONNX export) instead of "
                                                      "the index's; its fingerprint must match")] = None,
    hybrid: Annotated[bool, typer.Option("--hybrid", help="fuse the dense ranking with BM25's (reciprocal rank fusion)")] = False,
) -> None:
    """Search an index with the model it was built with (or an export of it)."""
    from uae.retrieval.retriever import Retriever

    def action():
        retriever = Retriever.load(index_dir, model_path=model)
        if scope is not None and not retriever.index.has_scope(scope):
            raise ValueError(f"--scope: unknown scope {scope!r} (no passage of {index_dir} has this doc_id)")
        results = retriever.search(query, k, [scope] * len(query), hybrid=hybrid)
        records = [[retriever.hit_record(h) for h in hits] for hits in results]
        if as_json:
            payload = [{"query": q, "hits": hits} for q, hits in zip(query, records)]
            typer.echo(json.dumps(payload, ensure_ascii=False))
            return
        for text, hits in zip(query, records):
            console.print(f"[bold]{text}")
            for rank, hit in enumerate(hits, start=1):
                shown = f"{hit['title']}. {hit['text']}" if hit["title"] else hit["text"]
                console.print(f"  {rank}. [cyan]{hit['passage_id']}[/] {hit['score']:.4f}  {shown[:120]}")

    _guarded(action)


@app.command()
def serve(
    model: Annotated[str, typer.Argument(help="model folder (or 'minilm') the index was built with")],
    index_dir: Annotated[Path, typer.Option("--index", help="index folder from `uae index`")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on (0: any free port)", min=0, max=65535)] = 8000,
    batching: Annotated[bool, typer.Option("--batching/--no-batching", help="micro-batch concurrent queries")] = True,
    max_batch: Annotated[int, typer.Option(help="most queries per encoder call", min=1)] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="longest wait for more queries, in ms", min=0)] = 5.0,
    persist: Annotated[bool, typer.Option("--persist/--no-persist", help="save the index folder after every add or remove")] = False,
    ef_search: Annotated[Optional[int], typer.Option(help="hnsw: override the stored efSearch", min=1)] = None,
    nprobe: Annotated[Optional[int], typer.Option(help="ivfpq: override the stored nprobe", min=1)] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level (warning hides the access log)")] = "info",
    threads: Annotated[Optional[int], typer.Option(help="torch, ONNX Runtime and FAISS threads (default: one per core)", min=1)] = None,
    api_key: Annotated[Optional[str], typer.Option(envvar="UAE_API_KEY", show_default=False,
                                                   help="require 'Authorization: Bearer KEY' on every endpoint but /healthz "
                                                        "(prefer the UAE_API_KEY variable: arguments show in ps)")] = None,
    read_only: Annotated[bool, typer.Option("--read-only", help="refuse POST and DELETE /passages")] = False,
    hybrid: Annotated[bool, typer.Option("--hybrid", help="fuse every search's dense ranking with BM25's (reciprocal rank fusion)")] = False,
) -> None:
    """Serve search, embedding and live index edits over HTTP (OpenAPI at /docs)."""
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # read by the OpenMP runtimes of torch and FAISS when they load
        os.environ["UAE_ONNX_THREADS"] = str(threads)  # ONNX Runtime's intra-op threads for an ONNX model
    import uvicorn

    from uae.retrieval.retriever import Retriever
    from uae.serving.access import check_bind
    from uae.serving.server import ServerSettings, create_app

    def action():
        check_bind(host, api_key, read_only)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        retriever = Retriever.load(index_dir, model_path=model)
        tuning = {name: value for name, value in {"ef_search": ef_search, "nprobe": nprobe}.items() if value is not None}
        if tuning:
            retriever.index.tune(**tuning)
        settings = ServerSettings(batching=batching, max_batch=max_batch, max_wait_ms=max_wait_ms,
                                  persist_dir=index_dir if persist else None, api_key=api_key or None, read_only=read_only,
                                  hybrid=hybrid)
        return create_app(retriever, settings)

    api = _guarded(action)
    console.print(f"serving {index_dir} ({len(api.state.retriever.index)} passages) on http://{host}:{port} "
                  f"(batching {'on' if batching else 'off'}{', API key required' if api_key else ''}{', read-only' if read_only else ''}); "
                  f"OpenAI embeddings at http://{host}:{port}/v1, model {api.state.retriever.model_name!r}")
    uvicorn.run(api, host=host, port=port, log_level=log_level)


@app.command(name="eval")
def evaluate_command(
    data: DataDir,
    system: Annotated[list[str], typer.Option(help="NAME=MODEL_DIR, repeatable; bm25 and base are always included")] = [],
    split: Annotated[str, typer.Option(help="qrels split to evaluate")] = "test",
    out: Annotated[Path, typer.Option(help="folder for metrics.json and report.md")] = Path("eval"),
    base_model: Annotated[str, typer.Option(help="base encoder")] = "minilm",
    depth: Annotated[int, typer.Option(help="ranking depth", min=1)] = 100,
    teacher: Annotated[str, typer.Option(help="teacher of the oracle row")] = "dirichlet",
    rerank: Annotated[list[str], typer.Option(help="re-ranker METHOD:BACKEND over the base top-K, repeatable: "
                                              "upr:hf:<model>, judge:hf:<model>, rankgpt:hf:<model>, oracle:dirichlet")] = [],
    rerank_depth: Annotated[int, typer.Option(help="K: base-encoder passages each re-ranker re-scores", min=1)] = 20,
    generate: Annotated[Optional[str], typer.Option(help="answer quality: a reader answers from each system's top-k: "
                                                    "extractive (offline, not an LLM) | hf:<model> | openai:<base_url>")] = None,
    generate_k: Annotated[int, typer.Option(help="--generate: passages given to the reader", min=1)] = 5,
    generate_prompt: Annotated[Optional[str], typer.Option(help="--generate hf:/openai: prompt template with {context} and {question}")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="--generate hf:/openai: most tokens per answer", min=1)] = 32,
    hybrid: Annotated[bool, typer.Option("--hybrid", help="also evaluate NAME+bm25 for base and every --system "
                                         "(dense and BM25 fused by reciprocal rank)")] = False,
    trec_run: Annotated[Optional[Path], typer.Option(help="folder for one TREC run file per system (NAME.run)")] = None,
) -> None:
    """Compare BM25, the base encoder, the teacher oracle, trained models and LLM re-rankers on a split."""
    from uae.config import EvalConfig, GenerationConfig, LabelingConfig, RunConfig
    from uae.data.beir import read_dataset
    from uae.pipeline import stage_eval
    from uae.rerankers import load_reranker

    def action():
        models = {}
        for item in system:
            name, sep, path = item.partition("=")
            if not sep or not Path(path).is_dir():
                _fail(f"--system expects NAME=MODEL_DIR with an existing folder, got {item!r}")
            models[name] = Path(path)
        generation = GenerationConfig(backend=generate, k=generate_k, prompt=generate_prompt, max_new_tokens=max_new_tokens) if generate else None
        config = RunConfig(data=str(data), out=str(out), base_model=base_model, generation=generation,
                           labeling=LabelingConfig(teacher=teacher), eval=EvalConfig(split=split, depth=depth, hybrid=hybrid))
        if rerank and not 1 <= rerank_depth <= depth:
            _fail(f"--rerank-depth must be between 1 and --depth ({depth}), got {rerank_depth}")
        rerankers = {}
        for spec in rerank:
            name = spec.partition(":")[0]
            name = name if name not in rerankers and name not in models else f"{name}_{len(rerankers) + 1}"
            rerankers[name] = load_reranker(spec)
        out.mkdir(parents=True, exist_ok=True)
        stage_eval(config, read_dataset(data), models, utilities={}, rerankers=rerankers, rerank_depth=rerank_depth,
                   trec_dir=trec_run)

    _guarded(action)


data_app = typer.Typer(help="Real datasets: list them, download their official files, prepare BEIR folders.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("list")
def data_list() -> None:
    """The datasets `uae data` knows: description, licence, official files and checksums."""
    from rich.table import Table

    from uae.data.loaders import DATASETS

    table = Table("name", "description", "licence", "official files (sha256)")
    table.columns[0].no_wrap = True
    table.columns[3].overflow = "fold"
    for info in DATASETS.values():
        files = "\n".join(f"{f.url} ({f.sha256[:12] + '…' if f.sha256 else 'no checksum'})" for f in info.files)
        table.add_row(info.name, info.description, info.license, files or info.manual or "")
    console.print(table)


@data_app.command("download")
def data_download(
    name: Annotated[str, typer.Argument(help="dataset name (see `uae data list`) or beir/<name>")],
    out: Annotated[Optional[Path], typer.Option(help="folder for the raw files (default $UAE_DATA_HOME/NAME)")] = None,
    from_path: Annotated[Optional[Path], typer.Option("--from", help="copy and verify a local copy instead")] = None,
) -> None:
    """Download a dataset's official files, verifying their sha256 where it is known."""
    from uae.data.loaders import download

    for item in _guarded(lambda: download(name, out, from_path)):
        console.print(f"{item.path}  [dim]{item.check}[/]")


@data_app.command("prepare")
def data_prepare(
    name: Annotated[str, typer.Argument(help="dataset name (see `uae data list`)")],
    out: Annotated[Path, typer.Option(help="BEIR folder to write")],
    from_paths: Annotated[Optional[list[Path]], typer.Option("--from", help="raw files or their folder (repeatable; default: the download folder)")] = None,
    option: Annotated[list[str], typer.Option("--option", "-o", help="loader option KEY=VALUE, e.g. scoped=false, chunk_tokens=200")] = [],
    answers: Annotated[Optional[Path], typer.Option(help="beir: JSON lines of {\"_id\", \"answers\"}")] = None,
    resplit: Annotated[Optional[bool], typer.Option("--resplit/--keep-splits", help="split by document (default: only if the source lacks train or test)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the split by document")] = 13,
) -> None:
    """Load a dataset's raw files and write the BEIR folder with answers that every stage reads."""
    from uae.data.loaders.prepare import parse_options, prepare

    def action():
        options = parse_options(option) | ({"answers": answers} if answers else {})
        source = None if not from_paths else from_paths[0] if len(from_paths) == 1 else from_paths
        manifest = prepare(name, source, out, resplit=resplit, seed=seed, **options)
        for line in manifest["skip_lines"]:
            console.print(f"[yellow]{name}: {line}")
        console.print(json.dumps(manifest["stats"], indent=2))
        console.print(f"wrote {out}")

    _guarded(action)


if __name__ == "__main__":
    app()
