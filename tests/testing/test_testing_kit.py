"""The testing kit: MockStorage and the factories make a working ALMA; the pytest plugin's fixtures work in
a user's own test run (run here with pytester, as a user's suite would load it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from alma_core import Heuristic, UnknownAgent
from alma_core.storage._base import PutMemories
from alma_core.testing import (
    MockEmbedder,
    MockStorage,
    create_test_alma,
    create_test_anti_pattern,
    create_test_heuristic,
    create_test_knowledge,
    create_test_outcome,
    create_test_preference,
)

pytest_plugins = ["pytester"]


def test_factories_build_valid_memories_that_a_test_alma_stores_and_finds() -> None:
    with create_test_alma() as alma:
        assert isinstance(alma.storage, MockStorage) and isinstance(alma.embedder, MockEmbedder)
        memories = [create_test_heuristic(), create_test_outcome(), create_test_anti_pattern(),
                    create_test_preference(), create_test_knowledge(fact="Tokens expire after 24 hours")]  # fmt: skip
        alma.context.embed(memories)
        alma.storage.execute(PutMemories(memories))
        stats = alma.stats()
        assert (stats.heuristics, stats.outcomes, stats.anti_patterns, stats.preferences, stats.knowledge) == (
            1, 1, 1, 1, 1)  # fmt: skip
        found = alma.retrieve("Validate form fields", agent="test-agent", user_id="test-user")
        assert found.heuristics[0].strategy == "Validate form fields one at a time"
    custom = create_test_heuristic(agent="Helena", strategy="Use data-testid", success_count=1)
    assert isinstance(custom, Heuristic) and (custom.agent, custom.strategy, custom.success_count) == (
        "helena", "Use data-testid", 1)  # fmt: skip


def test_two_mock_storages_are_independent_and_scopes_hold() -> None:
    with create_test_alma(agents={"helena": {"can_learn": ["testing_strategies"]}}) as a, create_test_alma() as b:
        a.learn("helena", "Test login", True, strategy_used="s", task_type="testing_strategies")
        assert a.stats().outcomes == 1 and b.stats().outcomes == 0
        with pytest.raises(UnknownAgent):
            a.learn("victor", "Fix API", True)


def test_the_plugin_gives_users_an_alma_fixture(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # only the plugin under test (and fast)
    pytester.makepyfile(
        """
        def test_my_agent_learns(alma):
            for _ in range(3):
                alma.learn("helena", "Test the login form", True, strategy_used="incremental validation")
            assert alma.retrieve("login form", agent="helena").heuristics

        def test_each_test_gets_a_fresh_store(alma):
            assert alma.stats().total == 0

        def test_factory_with_agents(alma_factory):
            alma = alma_factory(agents={"helena": {"can_learn": ["testing_strategies"]}})
            assert list(alma.config.agents) == ["helena"]
        """
    )
    result = pytester.runpytest("-p", "alma_core.testing.pytest_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["pytest11"] == {"alma": "alma_core.testing.pytest_plugin"}
