"""`hwcrm nlu …`: parse, Rasa service (setup/train/serve), evaluation (registered by app/cli.py).

Thin layer over :mod:`nlu`: options in, one call, Rich out. The Rasa token is never printed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from app.cli import console, err_console
from app.settings import NluSection, load_settings

nlu_app = typer.Typer(
    help="Understand customer messages: parse, Rasa service (setup/train/serve), evaluation.",
    no_args_is_help=True,
)


def register(cli: typer.Typer) -> None:
    """Attach this module's commands to the root CLI."""
    cli.add_typer(nlu_app, name="nlu")


def _settings() -> NluSection:
    return load_settings().nlu


def _say(message: str) -> None:
    console.print(f"[dim]{escape(message)}[/dim]")


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


# --- parse ------------------------------------------------------------------------------


def _render_parse(result: Any) -> None:
    head = (
        f"intent [bold]{escape(result.intent)}[/bold]  confidence {result.confidence:.3f}  "
        f"backend [bold]{escape(result.backend)}[/bold]  language {result.language}"
    )
    if result.latency_ms is not None:
        head += f"  {result.latency_ms:.1f} ms"
    console.print(head)
    if result.fallback_reason:
        console.print(f"[yellow]Rasa not used: {escape(result.fallback_reason)}[/yellow]")
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")
    ranking = Table(title="ranking (top 5)", show_edge=False)
    ranking.add_column("intent")
    ranking.add_column("confidence", justify="right")
    for item in result.ranking[:5]:
        ranking.add_row(escape(item.name), f"{item.confidence:.3f}")
    console.print(ranking)
    if result.entities:
        entities = Table(title="entities", show_edge=False)
        for column in ("entity", "value", "text", "span", "extractor"):
            entities.add_column(column)
        for item in result.entities:
            span = f"{item.start}-{item.end}" if item.start is not None else ""
            entities.add_row(
                escape(item.entity),
                escape(item.value),
                escape(item.text),
                span,
                escape(item.extractor or ""),
            )
        console.print(entities)
    else:
        console.print("entities: none")


@nlu_app.command("parse")
def parse_cmd(
    text: str = typer.Argument(..., help="The customer message (quote it)."),
    backend: str = typer.Option(
        "auto", "--backend", help="auto (Rasa when configured, else embedded) | embedded | rasa"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the parse as JSON."),
) -> None:
    """Parse one message: intent, confidence, ranking (top 5), entities, backend used."""
    from nlu.factory import build_embedded_parser, build_rasa_client
    from nlu.service import NluService

    settings = _settings()
    if backend not in ("auto", "embedded", "rasa"):
        raise _fail("--backend must be auto, embedded or rasa")
    embedded = build_embedded_parser(settings)
    rasa = None if backend == "embedded" else build_rasa_client(settings)
    if backend == "rasa" and rasa is None:
        raise _fail("no Rasa service configured: set nlu.rasa_url (HWCRM_NLU__RASA_URL)")
    service = NluService(
        embedded,
        rasa,
        budget_s=settings.rasa_timeout_s,
        rasa_threshold=settings.confidence_threshold,
        max_chars=settings.max_chars,
    )
    if rasa is None or backend == "auto":
        _ensure_embedded(settings)

    async def go() -> Any:
        try:
            return await service.parse(text)
        finally:
            await service.aclose()

    result = asyncio.run(go())
    if backend == "rasa" and result.backend != "rasa" and result.backend != "input":
        raise _fail(f"Rasa did not answer ({result.fallback_reason}); is 'hwcrm nlu serve' up?")
    if as_json:
        console.print_json(result.model_dump_json())
    else:
        _render_parse(result)


def _ensure_embedded(settings: NluSection) -> None:
    """Load the embedded model, training it first (with progress) when missing or stale."""
    from nlu.embedded import EmbeddedConfig, load_or_train
    from nlu.factory import embedded_dir, source_path

    with console.status("loading the embedded NLU model (trains on first use)…"):
        load_or_train(
            source_path(settings.data_dir),
            embedded_dir(settings),
            EmbeddedConfig(embedder=settings.embedder),
            progress=_say,
        )


@nlu_app.command("train-embedded")
def train_embedded_cmd(
    force: bool = typer.Option(False, "--force", help="Retrain even when data are unchanged."),
) -> None:
    """Train the embedded classifier from nlu.data_dir (skipped when unchanged)."""
    from nlu.embedded import EmbeddedConfig, load_or_train
    from nlu.factory import embedded_dir, source_path

    settings = _settings()
    started = time.perf_counter()
    model, trained = load_or_train(
        source_path(settings.data_dir),
        embedded_dir(settings),
        EmbeddedConfig(embedder=settings.embedder),
        force=force,
        progress=_say,
    )
    report = model.report
    verb = "trained" if trained else "up to date (data and config unchanged):"
    console.print(
        f"embedded model {verb} {embedded_dir(settings)}  [{time.perf_counter() - started:.1f}s]\n"
        f"  {len(model.labels)} intents, {report.n_train} examples, features {report.feature_set}, "
        f"C={report.c}, threshold {model.threshold:.3f}, validation ({report.validation}) "
        f"accuracy {report.validation_accuracy:.3f}"
    )


# --- Rasa service -----------------------------------------------------------------------


@nlu_app.command("setup")
def setup_cmd(
    force: bool = typer.Option(False, "--force", help="Reinstall even when the venv is ready."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show pip's output."),
) -> None:
    """Create the Rasa virtualenv (Python 3.10) and install Rasa into it (~2 min, 2.7 GB)."""
    from nlu.errors import RasaServiceError
    from nlu.factory import source_path
    from nlu.rasa_service import setup_venv

    settings = _settings()
    say = _say if verbose else (lambda _: None)
    try:
        with console.status(f"setting up {settings.rasa_venv} …"):
            created = setup_venv(
                settings.rasa_venv,
                source_path(settings.rasa_project),
                python=settings.rasa_python,
                force=force,
                say=say,
                log_path=settings.model_dir / "rasa" / "setup.log",
            )
    except RasaServiceError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"{settings.rasa_venv}: {'installed' if created else 'already up to date'} (Rasa ready)"
    )


def _train_rasa(settings: NluSection, *, force: bool, epochs: int | None) -> Path:
    from nlu.errors import RasaServiceError
    from nlu.factory import rasa_dir, source_path
    from nlu.rasa_service import train_rasa

    project = source_path(settings.rasa_project)
    try:
        with console.status("training the Rasa NLU model …"):
            model = train_rasa(
                settings.rasa_venv,
                project,
                rasa_dir(settings),
                data=source_path(settings.data_dir),
                epochs=epochs,
                force=force,
                say=_say,
            )
    except RasaServiceError as exc:
        raise _fail(str(exc)) from None
    if model.trained:
        console.print(f"trained {model.path} in {model.seconds:.0f}s")
    else:
        console.print(f"{model.path} is up to date (data and config unchanged); --force retrains")
    return model.path


@nlu_app.command("train")
def train_cmd(
    force: bool = typer.Option(False, "--force", help="Retrain even when data are unchanged."),
    epochs: int | None = typer.Option(None, "--epochs", help="Override DIET epochs."),
) -> None:
    """Train the Rasa NLU model (skipped when data and config are unchanged)."""
    _train_rasa(_settings(), force=force, epochs=epochs)


@nlu_app.command("serve")
def serve_cmd(
    port: int | None = typer.Option(None, "--port", help="Port (default nlu.rasa_port)."),
    train: bool = typer.Option(True, "--train/--no-train", help="Train first when stale."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait for the model."),
) -> None:
    """Run the Rasa NLU server on 127.0.0.1 with a token until Ctrl-C.

    The token is HWCRM_NLU__RASA_TOKEN or one generated into <model_dir>/rasa.token (which
    the application reads); it is never printed.
    """
    from nlu.errors import RasaServiceError
    from nlu.factory import rasa_dir, rasa_token, source_path
    from nlu.rasa_data import nlu_files
    from nlu.rasa_service import RasaServer, cached_model, pipeline_config, rasa_fingerprint

    settings = _settings()
    if train:
        model_path = _train_rasa(settings, force=False, epochs=None)
    else:
        project = source_path(settings.rasa_project)
        config = pipeline_config(project / "config.yml")
        fingerprint = rasa_fingerprint(config, nlu_files(source_path(settings.data_dir)))
        found = cached_model(rasa_dir(settings), fingerprint)
        if found is None:
            raise _fail("no up-to-date Rasa model: run 'hwcrm nlu train' (or drop --no-train)")
        model_path = found
    token = rasa_token(settings, create=True)
    server = RasaServer(
        settings.rasa_venv,
        model_path,
        token=token,
        port=port or settings.rasa_port,
        log_path=rasa_dir(settings) / "server.log",
    )
    try:
        server.start()
        with console.status(f"starting Rasa on {server.url} (about 40 s) …"):
            waited = server.wait_ready(timeout_s=timeout)
    except RasaServiceError as exc:
        server.stop()
        raise _fail(str(exc)) from None
    console.print(
        f"Rasa is serving {model_path.name} on [bold]{server.url}[/bold] (pid {server.pid}, "
        f"ready after {waited:.0f}s; log {server.log_path}).\n"
        f"Point the application at it: HWCRM_NLU__RASA_URL={server.url}. Ctrl-C stops it."
    )
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop and server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        code = server.process.poll() if server.process else None
        server.stop()
    if code is not None and not stop:
        raise _fail(f"Rasa exited with code {code}; see {server.log_path}")
    console.print("Rasa stopped")


# --- evaluation -------------------------------------------------------------------------


def _fmt(value: Any, pct: bool = True) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value != value:  # NaN
        return "—"
    return f"{value * 100:.2f}" if pct else f"{value:.1f}"


@nlu_app.command("evaluate")
def evaluate_cmd(
    train: list[Path] = typer.Option(..., "--train", help="Training data: a YAML file or folder."),
    test: list[Path] = typer.Option(..., "--test", help="Test data: a YAML file or folder."),
    val: list[Path] = typer.Option(
        [], "--val", help="Validation data (threshold/model selection), file or folder."
    ),
    backend: str = typer.Option("both", "--backend", help="rasa | embedded | both"),
    oos_label: str = typer.Option(
        "out_of_scope", "--oos-label", help="The out-of-scope intent name in the data."
    ),
    output: Path | None = typer.Option(None, "--output", help="Write the results as JSON."),
    rasa_epochs: int | None = typer.Option(
        None, "--rasa-epochs", help="DIET epochs for Rasa (default: as in the config)."
    ),
    embedder: str | None = typer.Option(
        None, "--embedder", help="Embedder of the embedded backend (default nlu.embedder)."
    ),
    refit_with_val: bool = typer.Option(
        False, "--refit-with-val", help="Train the final models on train + validation data."
    ),
    rasa_config: Path | None = typer.Option(
        None, "--rasa-config", help="Rasa pipeline config (default: nlu/rasa/config.yml)."
    ),
    work_dir: Path | None = typer.Option(
        None,
        "--work-dir",
        help="Keep trained Rasa models here and reuse them by fingerprint (default: a temp dir).",
    ),
) -> None:
    """Train each backend on TRAIN, score it on TEST (accuracy, macro-F1, OOS, latency)."""
    from nlu.errors import RasaServiceError
    from nlu.evaluation import EvaluationRequest, run_evaluation
    from nlu.factory import source_path
    from nlu.rasa_data import NluDataError

    settings = _settings()
    choices = {"both": ("embedded", "rasa"), "rasa": ("rasa",), "embedded": ("embedded",)}
    if backend not in choices:
        raise _fail("--backend must be rasa, embedded or both")
    request = EvaluationRequest(
        train=list(train),
        test=list(test),
        validation=list(val),
        backends=choices[backend],
        oos_label=oos_label or None,
        embedder=embedder or settings.embedder,
        rasa_epochs=rasa_epochs,
        refit_with_validation=refit_with_val,
        rasa_venv=settings.rasa_venv,
        rasa_config=rasa_config or source_path(settings.rasa_project) / "config.yml",
        work_dir=work_dir,
    )
    try:
        reports = run_evaluation(request, say=_say)
    except (NluDataError, ValueError, RasaServiceError) as exc:
        raise _fail(str(exc)) from None

    table = Table(title="NLU evaluation")
    table.add_column("metric")
    for name in reports:
        table.add_column(name, justify="right")
    rows: list[tuple[str, str, bool]] = [
        ("test messages", "n", False),
        ("accuracy %", "accuracy", True),
        ("macro-F1 %", "macro_f1", True),
        ("in-scope accuracy %", "in_scope_accuracy", True),
        (f"OOS recall % ({oos_label})", "oos_recall", True),
        ("latency p50 ms", "latency_ms_p50", False),
        ("latency p95 ms", "latency_ms_p95", False),
        ("train s", "train_seconds", False),
        ("OOS threshold", "threshold", False),
    ]
    for title, key, pct in rows:
        values = []
        for report in reports.values():
            value = getattr(report, key)
            if key == "n":
                values.append(str(value))
            elif key == "threshold":
                values.append("—" if value is None else f"{value:.3f}")
            else:
                values.append(_fmt(value, pct))
        table.add_row(title, *values)
    if any("cpu_ms_p50" in r.details for r in reports.values()):
        table.add_row(
            "CPU ms p50 / p95",
            *[
                f"{r.details['cpu_ms_p50']:.1f} / {r.details['cpu_ms_p95']:.1f}"
                if "cpu_ms_p50" in r.details
                else "—"
                for r in reports.values()
            ],
        )
    for lang in ("zh", "en"):
        if any(lang in r.per_language for r in reports.values()):
            table.add_row(
                f"accuracy % ({lang})",
                *[_fmt(r.per_language.get(lang, {}).get("accuracy")) for r in reports.values()],
            )
    console.print(table)
    for name, report in reports.items():
        worst = sorted(report.per_intent.items(), key=lambda kv: kv[1]["f1"])[:8]
        per_intent = Table(title=f"{name}: lowest-F1 intents", show_edge=False)
        for column in ("intent", "precision", "recall", "F1", "n"):
            per_intent.add_column(column, justify="right" if column != "intent" else "left")
        for intent, item in worst:
            per_intent.add_row(
                escape(intent),
                _fmt(item["precision"]),
                _fmt(item["recall"]),
                _fmt(item["f1"]),
                str(item["support"]),
            )
        console.print(per_intent)
        sweep = report.details.get("threshold_sweep_on_test") or []
        if sweep:
            points = ", ".join(
                f"{p['threshold']:.1f}: {_fmt(p['in_scope_accuracy'])}/{_fmt(p['oos_recall'])}"
                for p in sweep
            )
            console.print(
                f"{name}: trade-off on test, threshold: in-scope %/OOS recall % — {points} "
                f"(used: {report.threshold}, chosen on validation data)"
            )
        if report.confused:
            pairs = ", ".join(
                f"{escape(c['gold'])}→{escape(c['predicted'])} ×{c['count']}"
                for c in report.confused[:5]
            )
            console.print(f"{name}: most confused: {pairs}")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(
            json.dumps({k: v.to_json() for k, v in reports.items()}, indent=2, ensure_ascii=False),
            encoding="utf-8",
        )
        console.print(f"results written to {output}")
