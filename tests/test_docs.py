"""The docs stay honest: every CLI command and public name is documented, links resolve, and the README's
Quick Start and config block are the real thing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import alma_core
from alma_core._config import STARTER_CONFIG
from alma_core.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = {path.name: path.read_text(encoding="utf-8") for path in sorted((ROOT / "docs").glob("*.md"))}
ALL_DOCS = README + "\n".join(DOCS.values())


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", commands())
def test_every_cli_command_is_documented(command: str) -> None:
    assert f"alma {command}" in README, f"README.md does not mention `alma {command}`"
    assert f"## `alma {command}" in DOCS["cli.md"], f"docs/cli.md has no section for `alma {command}`"


@pytest.mark.parametrize("name", [n for n in alma_core.__all__ if n != "__version__"])
def test_every_public_name_is_documented(name: str) -> None:
    assert re.search(rf"\b{re.escape(name)}\b", ALL_DOCS), f"{name} is in alma_core.__all__ but not in README/docs"


@pytest.mark.parametrize("model", ["AlmaConfig", "AgentConfig", "RetrievalConfig", "LearningConfig"])
def test_every_config_key_is_documented(model: str) -> None:
    fields = getattr(alma_core, model).model_fields
    missing = [key for key in fields if f"`{key}`" not in DOCS["configuration.md"]]
    assert not missing, f"docs/configuration.md does not document {model} keys {missing}"


def test_readme_links_resolve() -> None:
    for target in re.findall(r"\]\(([^)#:]+)\)", README):
        assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_doc_is_linked_from_the_readme(name: str) -> None:
    assert f"](docs/{name})" in README, f"README.md does not link docs/{name}"


def test_readme_opens_with_the_two_commands() -> None:
    first = code_blocks(README, "bash")[0]
    assert [line.split("#")[0].strip() for line in first.splitlines()] == ["make demo", "make test"]


def test_readme_config_block_is_the_starter_config() -> None:
    assert STARTER_CONFIG in code_blocks(README, "yaml")


def test_readme_quick_start_runs_and_the_next_retrieve_shows_the_lesson(tmp_path: Path) -> None:
    quick_start = next(block for block in code_blocks(README, "python") if "ALMA.from_config" in block)
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert main(["init"]) == 0
    finally:
        os.chdir(previous)
    config = tmp_path / ".alma" / "config.yaml"
    config.write_text(config.read_text().replace("embedding_provider: local", "embedding_provider: mock"))
    check = (
        "\nassert 'Test the login form validation' in prompt"
        "\nprint(alma.retrieve(task='Test the login form validation', agent='helena').to_prompt())\n"
    )
    result = subprocess.run([sys.executable, "-c", quick_start + check], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Tested empty fields, invalid email, valid submission" in result.stdout
