"""`hwcrm kb ...`: ingest, search, answer, status, evaluate, export-corpus, calibrate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape as escape_markup
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.cli import console, err_console, run_async
from app.settings import KbSection, load_settings

kb_app = typer.Typer(help="Knowledge base: ingest articles, search, answer, evaluate.")

STAGES = {
    "read": "Reading files",
    "embed": "Embedding chunks",
    "embed-en": "Embedding English chunks (English model)",
    "index": "Building index",
}
STAGES_EVAL = {"embed": "Embedding corpus", "query": "Running queries"}


class _ProgressBar:
    """Adapts the core's progress callback (stage, done, total) to a Rich progress bar."""

    def __init__(self, progress: Progress, labels: dict[str, str]) -> None:
        self.progress = progress
        self.labels = labels
        self.tasks: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(self.labels.get(stage, stage), total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def _kb_settings(embedder: str | None = None) -> KbSection:
    settings = load_settings().kb
    if embedder:
        settings = settings.model_copy(update={"embedder": embedder})
    return settings


def _knowledge_base(settings: KbSection) -> Any:
    from knowledge_base.service import KnowledgeBase

    return KnowledgeBase.from_settings(settings)


@kb_app.command("ingest")
def ingest(
    directory: Path = typer.Argument(None, help="Folder of articles (default: kb.articles_dir)."),
    embedder: str = typer.Option(None, help="Override kb.embedder (switching re-embeds all)."),
) -> None:
    """Ingest Markdown/HTML/text/PDF articles incrementally and publish a new index version."""
    from crm_core.db import create_session_factory
    from knowledge_base.ingest import Ingestor

    full = load_settings()
    settings = _kb_settings(embedder)
    source = directory or settings.articles_dir

    async def go() -> Any:
        from app.container import build_container

        container = await build_container(full)
        try:
            ingestor = Ingestor.from_settings(create_session_factory(container.engine), settings)
            with _progress() as progress:
                return await ingestor.ingest(source, _ProgressBar(progress, STAGES))
        finally:
            await container.aclose()

    try:
        report = run_async(go())
    except (FileNotFoundError, TimeoutError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if report.full_reembed_reason:
        console.print(f"full re-embed: {report.full_reembed_reason}")
    state = "published" if report.published else "unchanged, still"
    console.print(
        f"index {state} [bold]{report.version}[/bold]: {report.articles} articles, "
        f"{report.chunks} chunks; added {len(report.added)}, updated {len(report.updated)}, "
        f"removed {len(report.removed)}, unchanged {len(report.unchanged)}; "
        f"{report.embedded_chunks} chunks embedded"
    )
    if report.skipped:
        table = Table(title=f"{len(report.skipped)} file(s) skipped")
        table.add_column("file")
        table.add_column("reason")
        table.add_column("previous version")
        for item in report.skipped:
            table.add_row(item.path, item.reason, "kept" if item.kept_previous else "-")
        console.print(table)


@kb_app.command("search")
def search(
    query: str = typer.Argument(..., help="What the customer asked."),
    lang: str = typer.Option(None, "--lang", help="Only articles in this language (zh|en)."),
    category: str = typer.Option(None, "--category", help="Only this product category."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid | dense | lexical"),
    k: int = typer.Option(5, "-k", help="Number of articles."),
) -> None:
    """Print the ranked articles for a query."""
    if mode not in ("hybrid", "dense", "lexical"):
        raise typer.BadParameter("mode must be hybrid, dense or lexical")
    kb = _knowledge_base(_kb_settings())
    try:
        hits = kb.search(query, k=k, lang=lang, category=category, mode=mode)
    except (FileNotFoundError, RuntimeError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    table = Table(title=f"{mode} search: {query}")
    for column in ("#", "score", "article", "lang", "categories", "title / snippet"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(
            str(rank),
            f"{hit.score:.4f}",
            hit.article_id,
            hit.language,
            ",".join(hit.categories) or "(all)",
            f"[bold]{hit.title}[/bold]\n{hit.snippet}\n[dim]{hit.url or ''}[/dim]",
        )
    console.print(table)
    if not hits:
        console.print("no matching articles")


@kb_app.command("answer")
def answer(
    query: str = typer.Argument(..., help="What the customer asked."),
    lang: str = typer.Option(None, "--lang", help="Reply language (default: the query's)."),
    category: str = typer.Option(None, "--category", help="Product category of the customer."),
) -> None:
    """Print the bot's answer with its citation and calibrated confidence."""
    kb = _knowledge_base(_kb_settings())
    try:
        result = kb.answer(query, lang=lang, category=category)
    except (FileNotFoundError, RuntimeError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    threshold = kb.answer_threshold
    if not result.confident:
        console.print(
            f"[yellow]no confident answer[/yellow] (confidence {result.confidence:.2f} < "
            f"threshold {threshold:.2f}): the bot hands off to a human agent"
        )
        if result.article_id:
            console.print(f"[dim]closest article: {result.article_id} — {result.title}[/dim]")
        return
    console.print(f"[bold]{result.title}[/bold] ({result.article_id}, {result.language})")
    if result.heading:
        console.print(f"[dim]matched: {escape_markup(result.heading)}[/dim]")
    if result.solution_headings:  # what the customer reads (the bot renders it for Telegram)
        shown = escape_markup(" · ".join(result.solution_headings))
        console.print(f"[dim]shown: {shown}[/dim]")
    console.print(result.display_markdown, markup=False)
    console.print(f"source: {result.url or result.article_id}")
    console.print(f"confidence {result.confidence:.2f} (threshold {threshold:.2f})")


@kb_app.command("status")
def status() -> None:
    """Show the live index version, counts and embedder."""
    kb = _knowledge_base(_kb_settings())
    st = kb.status()
    table = Table(title="knowledge base", show_header=False)
    table.add_column("key")
    table.add_column("value")
    mismatch = st.embedder is not None and st.embedder != st.configured_embedder
    rows = [
        ("index dir", st.index_dir),
        ("version", st.version or "(none: run `hwcrm kb ingest`)"),
        ("created", st.created_at or "-"),
        ("embedder", f"{st.embedder or '-'} (dim {st.dim or '-'})"),
        (
            "configured embedder",
            st.configured_embedder + (" [red]≠ index: re-ingest[/red]" if mismatch else ""),
        ),
        ("faiss index", st.index_type or "-"),
        ("articles", str(st.articles)),
        ("chunks", str(st.chunks)),
        ("languages", ", ".join(f"{k}: {v}" for k, v in sorted(st.languages.items())) or "-"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


@kb_app.command("evaluate")
def evaluate(
    corpus: Path = typer.Option(..., "--corpus", help="JSONL: {id, title, text, lang?}"),
    queries: Path = typer.Option(..., "--queries", help="JSONL: {query, relevant: [ids]}"),
    embedder: str = typer.Option(None, "--embedder", help="Default: kb.embedder."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid | dense | lexical"),
    output: Path = typer.Option(None, "--output", help="Write the metrics as JSON here."),
    lang: str = typer.Option(None, "--lang", help="Only documents in this language."),
) -> None:
    """Evaluate retrieval on any corpus/query set (temporary in-memory index)."""
    from knowledge_base.embedders import get_embedder
    from knowledge_base.evaluation import build_corpus_index, evaluate_index, load_jsonl
    from knowledge_base.service import search_params_from

    if mode not in ("hybrid", "dense", "lexical"):
        raise typer.BadParameter("mode must be hybrid, dense or lexical")
    settings = _kb_settings(embedder)
    try:
        corpus_rows = load_jsonl(corpus)
        query_rows = load_jsonl(queries)
    except (OSError, ValueError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    model = get_embedder(settings.embedder)
    with _progress() as progress:
        bar = _ProgressBar(progress, STAGES_EVAL)
        index = build_corpus_index(
            corpus_rows,
            model,
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
            progress=bar,
        )
        result = evaluate_index(
            index,
            model,
            query_rows,
            mode=mode,  # type: ignore[arg-type]
            params=search_params_from(settings),
            lang=lang,
            progress=bar,
        )
    table = Table(
        title=f"{mode} · {model.name} · {result.n_queries} queries · {len(corpus_rows)} docs"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.as_json().items():
        table.add_row(key, f"{value:.2f}" if key.startswith("latency") else f"{value:.4f}")
    console.print(table)
    if result.skipped_queries:
        console.print(f"{result.skipped_queries} queries had no relevant document in the corpus")
    if output:
        output.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {output}")


@kb_app.command("export-corpus")
def export_corpus(
    output: Path = typer.Option(..., "--output", help="JSONL file to write."),
    lang: str = typer.Option(None, "--lang", help="Only articles in this language."),
    articles: Path = typer.Option(None, "--articles", help="Default: kb.articles_dir."),
) -> None:
    """Write our articles in the `kb evaluate` corpus format."""
    from knowledge_base.evaluation import article_corpus, write_jsonl

    rows = article_corpus(articles or _kb_settings().articles_dir, lang=lang)
    console.print(f"wrote {write_jsonl(output, rows)} articles to {output}")


@kb_app.command("calibrate")
def calibrate(
    queries: Path = typer.Option(
        Path("tests/data/kb_queries_dev.jsonl"), "--queries", help="Labelled DEV queries."
    ),
    embedder: str = typer.Option(None, "--embedder", help="Default: kb.embedder."),
) -> None:
    """Refit the answer-confidence calibration on the DEV set; writes kb.calibration_file."""
    from knowledge_base.calibrate import fit_and_save

    settings = _kb_settings(embedder)
    summary = fit_and_save(settings, queries)
    console.print_json(json.dumps(summary, ensure_ascii=False))


def register(cli: typer.Typer) -> None:
    """Add the `kb` command group to the `hwcrm` CLI."""
    cli.add_typer(kb_app, name="kb")
