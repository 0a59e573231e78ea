"""The seed's Quick Start, with only the import changed, against the README's starter config."""

from __future__ import annotations

from pathlib import Path

import pytest

from alma_core import ALMA
from alma_core._config import STARTER_CONFIG, load_config


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / ".alma" / "config.yaml"
    config.parent.mkdir()
    config.write_text(STARTER_CONFIG)
    return config


def _quick_start(alma: ALMA) -> str:
    alma.learn(
        agent="helena",
        task="Test login form",
        outcome="success",
        strategy_used="Tested empty fields, invalid email, valid submission",
    )
    memories = alma.retrieve(task="Test the login form validation", agent="helena", top_k=5)
    return memories.to_prompt()


def test_starter_config_is_valid_and_defines_helena(project: Path) -> None:
    config = load_config(project)
    assert "testing_strategies" in config.agents["helena"].can_learn
    assert config.agents["helena"].share_with == ["qa_lead"]


def test_quick_start_prints_the_learned_strategy(project: Path) -> None:
    with ALMA.from_config(".alma/config.yaml", embedder="mock") as alma:
        prompt = _quick_start(alma)
    assert "Tested empty fields, invalid email, valid submission" in prompt
    assert "Test login form" in prompt
    assert (project.parent / "alma.db").exists()  # the starter's storage_dir, relative to the cwd


def test_quick_start_with_mock_provider_in_the_config(project: Path) -> None:
    project.write_text(STARTER_CONFIG.replace("embedding_provider: local", "embedding_provider: mock"))
    with ALMA.from_config(project) as alma:
        assert alma.embedder.name == "mock"
        prompt = _quick_start(alma)
    assert "Tested empty fields, invalid email, valid submission" in prompt


def test_quick_start_memory_survives_a_restart(project: Path) -> None:
    with ALMA.from_config(project, embedder="mock") as alma:
        _quick_start(alma)
    with ALMA.from_config(project, embedder="mock") as alma:
        prompt = alma.retrieve(task="Test the login form validation", agent="helena", top_k=5).to_prompt()
        assert "valid submission" in prompt
        assert alma.stats(agent="helena").outcomes == 1


def test_no_config_at_all_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with ALMA(embedder="mock") as alma:
        alma.learn(agent="anyone", task="Test login form", outcome=True, strategy_used="empty fields first")
        assert "empty fields first" in alma.retrieve(task="login form", agent="anyone").to_prompt()
    assert (tmp_path / ".alma" / "alma.db").exists()
