"""Rasa as a separate service: its virtualenv, training with a fingerprint, and the server.

Rasa 3.6 runs on Python 3.10 in its own virtualenv (``.venv-rasa``); this module only
starts processes in it and never imports rasa. Used by ``hwcrm nlu setup|train|serve``, by
the evaluation and by the integration tests.

- :func:`setup_venv` creates the virtualenv and installs ``nlu/rasa/requirements-rasa.txt``
  (skipped when every pinned requirement is already installed there).
- :func:`train_rasa` trains an NLU model into ``<out>/nlu-<fingerprint>.tar.gz`` and writes
  the fingerprint file next to it; unchanged data + config (+ epochs, Rasa version) = no
  training.
- :class:`RasaServer` runs ``rasa run --enable-api`` on loopback with a token and waits
  until the model is loaded. The token is passed to the process but never logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
import yaml

from nlu.errors import RasaServiceError
from nlu.rasa_data import nlu_files

log = logging.getLogger(__name__)

RASA_VERSION = "3.6.21"
DEFAULT_REQUIREMENTS = (f"rasa=={RASA_VERSION}", "jieba==0.42.1")
REQUIREMENTS_FILE = "requirements-rasa.txt"
TOKEN_FILE = "rasa.token"
FINGERPRINT_SUFFIX = ".fingerprint.json"

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def rasa_env(cache_dir: Path | None = None) -> dict[str, str]:
    """Environment for Rasa processes: no telemetry, quiet TensorFlow, our cache folder."""
    env = dict(os.environ)
    env.update(
        {
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONWARNINGS": "ignore",
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        }
    )
    # The Rasa venv must not see the application's venv.
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    if cache_dir is not None:
        env["RASA_CACHE_DIRECTORY"] = str(cache_dir)
    return env


# --- virtualenv -------------------------------------------------------------------------


def rasa_bin(venv: Path) -> Path:
    return venv.absolute() / "bin" / "rasa"


def venv_python(venv: Path) -> Path:
    return venv.absolute() / "bin" / "python"


def requirements(project: Path) -> list[str]:
    """Pinned requirements from ``<project>/requirements-rasa.txt`` (or the defaults)."""
    path = project / REQUIREMENTS_FILE
    if not path.is_file():
        return list(DEFAULT_REQUIREMENTS)
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def venv_status(venv: Path, wanted: Sequence[str]) -> tuple[bool, str]:
    """(ready, why-not): the venv exists, runs Python 3.10 and has every pinned requirement."""
    python = venv_python(venv)
    if not python.exists():
        return False, f"{venv} does not exist"
    try:
        version = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        freeze = subprocess.run(
            [str(python), "-m", "pip", "freeze", "--all"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"{venv} is broken: {exc}"
    if version != "3.10":
        return False, f"{venv} runs Python {version}, Rasa {RASA_VERSION} needs 3.10"
    installed = {}
    for line in freeze.splitlines():
        if "==" in line:
            name, _, ver = line.partition("==")
            installed[_canonical(name)] = ver.strip()
    for req in wanted:
        if "==" not in req:
            continue
        name, _, ver = req.partition("==")
        name = name.split("[", 1)[0]
        if installed.get(_canonical(name)) != ver.strip():
            return False, f"{venv}: {req} is not installed"
    if not rasa_bin(venv).exists():
        return False, f"{venv}: the rasa command is missing"
    return True, "ready"


def _python_version(executable: str) -> str | None:
    try:
        out = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_python(spec: str = "python3.10", version: str = "3.10") -> str:
    """An interpreter of `version`: `spec` (a name on PATH or a path), else a pyenv install.

    pyenv's ``python3.10`` shim only works when 3.10 is an active pyenv version, so the
    installed versions (``$PYENV_ROOT/versions/3.10.*``) are tried directly as well.
    """
    candidates: list[str] = []
    found = shutil.which(spec)
    candidates.append(found or spec)
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for path in sorted((root / "versions").glob(f"{version}*/bin/python{version}"), reverse=True):
        candidates.append(str(path))
    for candidate in candidates:
        if _python_version(candidate) == version:
            return candidate
    raise RasaServiceError(
        f"Python {version} not found (tried {', '.join(candidates)}); install it "
        f"(e.g. 'pyenv install {version}') or set nlu.rasa_python to its path"
    )


def _run_logged(
    cmd: Sequence[str], *, cwd: Path | None, env: dict[str, str] | None, log_file: TextIO, say: Say
) -> int:
    """Run `cmd`, teeing its output lines to `log_file` and `say`; returns the exit code."""
    process = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    assert process.stdout is not None
    for line in process.stdout:
        log_file.write(line)
        log_file.flush()
        say(line.rstrip())
    return process.wait()


def setup_venv(
    venv: Path,
    project: Path,
    *,
    python: str = "python3.10",
    force: bool = False,
    say: Say = _quiet,
    log_path: Path | None = None,
) -> bool:
    """Create `venv` with Rasa installed; returns False when it was already ready."""
    wanted = requirements(project)
    ready, why = venv_status(venv, wanted)
    if ready and not force:
        say(f"{venv} is ready (Rasa {RASA_VERSION})")
        return False
    say(f"setting up {venv}: {why}")
    interpreter = find_python(python)
    say(f"using {interpreter}")
    log_path = log_path or Path(tempfile.gettempdir()) / "hwcrm-rasa-setup.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as handle:
        if not venv_python(venv).exists():
            code = _run_logged(
                [interpreter, "-m", "venv", str(venv)], cwd=None, env=None, log_file=handle, say=say
            )
            if code != 0:
                raise RasaServiceError(
                    f"'{python} -m venv {venv}' failed (exit {code}); is Python 3.10 installed? "
                    f"See {log_path}"
                )
        pip = [str(venv_python(venv)), "-m", "pip"]
        steps: list[list[str]] = [[*pip, "install", "--quiet", "--upgrade", "pip"]]
        req_file = project / REQUIREMENTS_FILE
        if req_file.is_file():
            steps.append([*pip, "install", "-r", str(req_file)])
        else:
            steps.append([*pip, "install", *wanted])
        for step in steps:
            code = _run_logged(step, cwd=None, env=None, log_file=handle, say=say)
            if code != 0:
                raise RasaServiceError(f"{' '.join(step[2:])} failed (exit {code}); see {log_path}")
    ready, why = venv_status(venv, wanted)
    if not ready:
        raise RasaServiceError(f"Rasa setup finished but the venv is not usable: {why}")
    return True


# --- training ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RasaModel:
    """A trained Rasa NLU model archive and the fingerprint it was trained from."""

    path: Path
    fingerprint: str
    trained: bool
    """True when this call trained it, False when the cached model was reused."""
    seconds: float = 0.0
    """How long the training took (also for a reused model: when it was trained)."""


def pipeline_config(config_path: Path, *, epochs: int | None = None) -> dict[str, Any]:
    """The Rasa config as data, with DIET/ResponseSelector epochs overridden when asked."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    if epochs is not None:
        for component in config.get("pipeline") or []:
            if component.get("name") in ("DIETClassifier", "ResponseSelector"):
                component["epochs"] = int(epochs)
    for component in config.get("pipeline") or []:
        # Relative paths in the config are relative to the project folder.
        if component.get("name") == "JiebaTokenizer" and component.get("dictionary_path"):
            path = Path(component["dictionary_path"])
            if not path.is_absolute():
                component["dictionary_path"] = str((config_path.parent / path).resolve())
    return config


def rasa_fingerprint(config: dict[str, Any], data_files: Sequence[Path], extra: str = "") -> str:
    """Hash of the effective config, the data files (names + bytes) and the Rasa version."""
    digest = hashlib.sha256()
    digest.update(f"rasa={RASA_VERSION};{extra}".encode())
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for path in sorted(data_files, key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    dictionary: str | None = None
    for component in config.get("pipeline") or []:
        if component.get("name") == "JiebaTokenizer":
            dictionary = component.get("dictionary_path")
    if dictionary and Path(dictionary).is_dir():
        for path in sorted(Path(dictionary).iterdir()):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _tail(path: Path, lines: int = 25) -> str:
    try:
        content = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(content[-lines:])


def cached_model(out_dir: Path, fingerprint: str) -> Path | None:
    """The model trained from `fingerprint` in `out_dir`, if it is there and intact."""
    name = f"nlu-{fingerprint[:16]}"
    model = out_dir / f"{name}.tar.gz"
    meta = out_dir / f"{name}{FINGERPRINT_SUFFIX}"
    if model.is_file() and meta.is_file():
        try:
            stored = json.loads(meta.read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, ValueError):
            return None
        if stored == fingerprint:
            return model
    return None


def train_rasa(
    venv: Path,
    project: Path,
    out_dir: Path,
    *,
    config_path: Path | None = None,
    data: Path | Sequence[Path] | None = None,
    epochs: int | None = None,
    force: bool = False,
    say: Say = _quiet,
    timeout_s: float = 3600.0,
) -> RasaModel:
    """Train (or reuse) a Rasa NLU model for `project` (or the given config and data).

    The model lands in `out_dir` as ``nlu-<fingerprint16>.tar.gz`` with
    ``nlu-<fingerprint16>.fingerprint.json`` next to it.
    """
    project, out_dir = project.absolute(), out_dir.absolute()
    config_path = (config_path or project / "config.yml").absolute()
    sources = [data] if isinstance(data, Path) else list(data or [project / "data"])
    files = [f for source in sources for f in nlu_files(source)]
    config = pipeline_config(config_path, epochs=epochs)
    fingerprint = rasa_fingerprint(config, files)
    name = f"nlu-{fingerprint[:16]}"
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = cached_model(out_dir, fingerprint)
    if existing is not None and not force:
        say(f"Rasa model {existing.name} is up to date (data and config unchanged)")
        try:
            meta = json.loads((out_dir / f"{name}{FINGERPRINT_SUFFIX}").read_text("utf-8"))
            seconds = float(meta.get("seconds") or 0.0)
        except (OSError, ValueError):
            seconds = 0.0
        return RasaModel(existing, fingerprint, trained=False, seconds=seconds)
    if not rasa_bin(venv).exists():
        raise RasaServiceError(f"Rasa is not installed in {venv}: run 'hwcrm nlu setup' first")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hwcrm-rasa-train-") as tmp:
        tmp_dir = Path(tmp)
        cfg = tmp_dir / "config.yml"
        cfg.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), "utf-8")
        data_dir = tmp_dir / "data"
        data_dir.mkdir()
        for index, path in enumerate(files):
            shutil.copy(path, data_dir / f"{index:03d}-{path.name}")
        log_path = out_dir / f"{name}.train.log"
        say(
            f"training Rasa NLU ({len(files)} data files, epochs: {epochs or 'as configured'}); "
            f"log: {log_path}"
        )
        cmd = [
            str(rasa_bin(venv)),
            "train",
            "nlu",
            "--config",
            str(cfg),
            "--nlu",
            str(data_dir),
            "--out",
            str(tmp_dir / "models"),
            "--fixed-model-name",
            name,
        ]
        with log_path.open("w", encoding="utf-8") as handle:
            try:
                result = subprocess.run(
                    cmd,
                    cwd=project,
                    env=rasa_env(out_dir / "cache"),
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    timeout=timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise RasaServiceError(
                    f"Rasa training took longer than {timeout_s:.0f}s; see {log_path}"
                ) from exc
        produced = tmp_dir / "models" / f"{name}.tar.gz"
        if result.returncode != 0 or not produced.is_file():
            raise RasaServiceError(
                f"Rasa training failed (exit {result.returncode}); last lines of {log_path}:\n"
                f"{_tail(log_path)}"
            )
        target = out_dir / f"{name}.tar.gz"
        shutil.move(str(produced), target)
    seconds = time.perf_counter() - started
    (out_dir / f"{name}{FINGERPRINT_SUFFIX}").write_text(
        json.dumps(
            {
                "fingerprint": fingerprint,
                "rasa": RASA_VERSION,
                "config": str(config_path),
                "data": [str(f) for f in files],
                "epochs": epochs,
                "seconds": round(seconds, 1),
                "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    say(f"trained {target.name} in {seconds:.0f}s")
    return RasaModel(target, fingerprint, trained=True, seconds=seconds)


# --- token and port ---------------------------------------------------------------------


def resolve_token(configured: str | None, token_file: Path, *, create: bool) -> str | None:
    """The Rasa auth token: the configured one (env), else the one in `token_file`.

    With `create`, a random token is generated and written to `token_file` (mode 0600)
    when neither exists. The token is never logged.
    """
    if configured:
        return configured
    if token_file.is_file():
        token = token_file.read_text(encoding="utf-8").strip()
        if token:
            return token
    if not create:
        return None
    token = secrets.token_urlsafe(32)
    token_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# --- the server -------------------------------------------------------------------------


class RasaServer:
    """One ``rasa run --enable-api`` process on loopback (start, wait until loaded, stop)."""

    def __init__(
        self,
        venv: Path,
        model: Path,
        *,
        token: str | None,
        port: int | None = None,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.venv = venv.absolute()
        self.model = model.absolute()
        self.token = token
        self.host = host
        self.port = port or free_port(host)
        self.log_path = (log_path or self.model.parent / f"rasa-server-{self.port}.log").absolute()
        self.cwd = (cwd or self.model.parent).absolute()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        cmd = [
            str(rasa_bin(self.venv)),
            "run",
            "--enable-api",
            "--model",
            str(self.model),
            "--interface",
            self.host,
            "--port",
            str(self.port),
        ]
        if self.token:
            cmd += ["--auth-token", self.token]
        return cmd

    def describe(self) -> str:
        """The command line with the token masked (safe to print)."""
        return " ".join("***" if part == self.token else part for part in self.command())

    def start(self) -> None:
        if not rasa_bin(self.venv).exists():
            raise RasaServiceError(f"Rasa is not installed in {self.venv}: run 'hwcrm nlu setup'")
        if not self.model.is_file():
            raise RasaServiceError(f"no Rasa model at {self.model}: run 'hwcrm nlu train'")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.log_path.open("wb")
        try:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.cwd,
                env=rasa_env(),
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() ends it and its children
            )
        finally:
            handle.close()
        log.info("started Rasa (pid %s) on %s", self.process.pid, self.url)

    def ready(self) -> bool:
        """Whether the server answers ``/status`` with a loaded model."""
        params = {"token": self.token} if self.token else {}
        try:
            response = httpx.get(f"{self.url}/status", params=params, timeout=2.0)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        try:
            body = response.json()
        except ValueError:
            return False
        return bool(isinstance(body, dict) and (body.get("model_file") or body.get("model_id")))

    def wait_ready(self, timeout_s: float = 180.0, poll_s: float = 0.5) -> float:
        """Block until the model is loaded; returns the seconds waited.

        Raises :class:`RasaServiceError` (with the server log's last lines) when the process
        exits or the model is not loaded within `timeout_s`; the process is stopped then.
        """
        started = time.monotonic()
        while True:
            if self.process is None:
                raise RasaServiceError("Rasa server was not started")
            code = self.process.poll()
            if code is not None:
                raise RasaServiceError(
                    f"Rasa exited with code {code} before loading the model; last lines of "
                    f"{self.log_path}:\n{_tail(self.log_path)}"
                )
            if self.ready():
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                self.stop()
                raise RasaServiceError(
                    f"Rasa did not load {self.model.name} within {timeout_s:.0f}s; last lines "
                    f"of {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(poll_s)

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL to its process group), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `timeout_s`)."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> RasaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
