"""Fixtures for the NLU tests: a tiny zh/en data set, a fast embedded model, Rasa availability.

The embedded model here uses the `hashing` embedder (the test double): training takes well
under a second. Tests that measure the real model say so and use the multilingual USE.
Rasa-marked tests need the Rasa virtualenv: locally they are skipped when it is missing;
in CI (``CI`` set) a missing Rasa is a failure, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge_base.embedders import HashingEmbedder
from nlu.embedded import EmbeddedConfig, EmbeddedModel, EmbeddedParser, train_embedded
from nlu.rasa_data import load_nlu_data

ROOT = Path(__file__).resolve().parents[2]
RASA_PROJECT = ROOT / "nlu" / "rasa"
RASA_VENV = Path(os.environ.get("HWCRM_NLU__RASA_VENV", ROOT / ".venv-rasa"))
if not RASA_VENV.is_absolute():
    RASA_VENV = ROOT / RASA_VENV

TINY_NLU = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello
    - hi there
    - good morning
    - hey, anyone here?
    - 你好
    - 您好
    - 早上好
    - 在吗
- intent: order_status
  examples: |
    - where is my order [SO-10023456](order_number)
    - has my order shipped yet
    - track my package please
    - when will my order arrive
    - 我的订单[SO-10098765](order_number)到哪了
    - 订单什么时候发货
    - 快递到哪里了
    - 查一下物流
- intent: report_fault
  examples: |
    - my [gpu](product_category) fan stopped spinning
    - the [graphics card]{"entity": "product_category", "value": "gpu"} shows artifacts
    - my [ssd](product_category) is not detected
    - pc will not boot any more
    - [显卡]{"entity": "product_category", "value": "gpu"}风扇不转了
    - [内存条]{"entity": "product_category", "value": "ram"}插上就蓝屏
    - 电脑开不了机
    - [固态]{"entity": "product_category", "value": "ssd"}掉盘了
- intent: out_of_scope
  examples: |
    - what is the weather today
    - tell me a joke
    - book a flight to tokyo
    - who won the game last night
    - 今天天气怎么样
    - 讲个笑话
    - 帮我订机票
    - 红烧肉怎么做
- synonym: gpu
  examples: |
    - graphics card
    - 显卡
- synonym: "RTX 4090"
  examples: |
    - rtx4090
    - 4090
- regex: order_number
  examples: |
    - (?<![A-Za-z0-9])[Ss][Oo][\\s]?[\\-－—_]?[\\s]?\\d{8}(?!\\d)
- regex: serial_number
  examples: |
    - (?<![A-Za-z0-9])[Ss][Nn][A-Za-z0-9]{10}(?![A-Za-z0-9])
- regex: product_category
  examples: |
    - (?i)(?<![A-Za-z0-9])(?:graphics[\\s\\-]?card|gpu|ssd|ram)(?![A-Za-z0-9])|显卡|内存条|固态
- lookup: product_model
  examples: |
    - rtx4090
    - 4090
    - rtx 4090
"""


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the tiny training data as Rasa YAML."""
    folder = tmp_path_factory.mktemp("tiny-nlu")
    (folder / "nlu.yml").write_text(TINY_NLU, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def hashing_config() -> EmbeddedConfig:
    """A fast configuration: hashing embedder, small grid."""
    return EmbeddedConfig(embedder="hashing", c_grid=(10.0,), cv_folds=4)


@pytest.fixture(scope="session")
def tiny_model(tiny_data_dir: Path, hashing_config: EmbeddedConfig) -> EmbeddedModel:
    """The embedded classifier trained on the tiny data with the hashing embedder."""
    return train_embedded(load_nlu_data(tiny_data_dir), hashing_config, embedder=HashingEmbedder())


@pytest.fixture
def tiny_parser(tiny_model: EmbeddedModel, tiny_data_dir: Path, tmp_path: Path) -> EmbeddedParser:
    """An EmbeddedParser already holding the tiny model (nothing trains in the test)."""
    return EmbeddedParser(tiny_data_dir, tmp_path / "model", tiny_model.config, model=tiny_model)


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def rasa_venv() -> Iterator[Path]:
    """The Rasa virtualenv; skipped locally when missing, a failure in CI."""
    from nlu.rasa_service import requirements, venv_status

    ready, why = venv_status(RASA_VENV, requirements(RASA_PROJECT))
    if not ready:
        message = f"Rasa is not available ({why}); run 'hwcrm nlu setup' (make rasa)"
        if _ci():
            pytest.fail(f"CI requires Rasa: {message}")
        pytest.skip(message)
    yield RASA_VENV
