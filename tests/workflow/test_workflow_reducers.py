"""Every reducer on conflicting and nested inputs, as plain binary functions and through merge_states."""

from __future__ import annotations

import pytest

from alma_core import ALMA, ValidationError
from alma_core.workflow.reducers import latest_wins, merge_lists, priority_agent, reduce_states


def test_latest_wins_merges_nested_dicts_and_later_value_wins_conflicts() -> None:
    left = {"a": 1, "nested": {"x": 1, "y": [1, 2]}, "only_left": True, "kind": {"d": 1}}
    right = {"a": 2, "nested": {"y": [3]}, "kind": [1]}
    assert latest_wins(left, right) == {"a": 2, "nested": {"x": 1, "y": [3]}, "only_left": True, "kind": [1]}
    assert left["nested"] == {"x": 1, "y": [1, 2]}  # inputs untouched


def test_latest_wins_a_later_none_replaces() -> None:
    assert latest_wins({"a": 1}, {"a": None}) == {"a": None}


def test_merge_lists_concatenates_in_order_without_duplicates_even_unhashable() -> None:
    left = {"findings": [{"id": 1}, "x", 1], "nested": {"l": [1, 2]}, "tags": {"a"}, "n": 1}
    right = {"findings": ["x", {"id": 1}, {"id": 2}], "nested": {"l": [2, 3]}, "tags": {"b"}, "n": 2}
    merged = merge_lists(left, right)
    assert merged["findings"] == [{"id": 1}, "x", 1, {"id": 2}]
    assert merged["nested"] == {"l": [1, 2, 3]}
    assert merged["tags"] == {"a", "b"}
    assert merged["n"] == 2


def test_merge_lists_type_conflict_goes_to_the_later_value() -> None:
    assert merge_lists({"k": [1]}, {"k": "scalar"}) == {"k": "scalar"}
    assert merge_lists([1, 1, 2], [2, 3]) == [1, 2, 3]
    assert merge_lists((1,), (1, 2)) == (1, 2)


def test_priority_agent_highest_priority_wins_conflicts_at_any_depth() -> None:
    entries = [
        ("lead", {"plan": "lead's", "cfg": {"retries": 5, "lead_only": 1}}),
        ("intern", {"plan": "intern's", "cfg": {"retries": 1, "intern_only": 2}, "note": "kept"}),
        ("stranger", {"plan": "stranger's"}),
    ]
    merged = reduce_states(entries, "priority_agent", priorities=["lead", "intern"])
    assert merged == {"plan": "lead's", "cfg": {"retries": 5, "lead_only": 1, "intern_only": 2}, "note": "kept"}
    assert priority_agent(["a"])({"x": 1}, {"x": 2}) == {"x": 2}  # binary form = latest_wins


def test_per_key_reducers_with_default() -> None:
    entries = [("a", {"findings": [1], "status": "old"}), ("b", {"findings": [2, 1], "status": "new"})]
    merged = reduce_states(entries, {"findings": "merge_lists", "*": "latest_wins"})
    assert merged == {"findings": [1, 2], "status": "new"}


def test_callable_reducer() -> None:
    total = reduce_states([(None, {"n": 1}), (None, {"n": 2})], {"n": lambda a, b: a + b})
    assert total == {"n": 3}


def test_bad_reducers_are_validation_errors() -> None:
    with pytest.raises(ValidationError):
        reduce_states([(None, {})], "nope")
    with pytest.raises(ValidationError, match="priorities"):
        reduce_states([(None, {})], "priority_agent")
    with pytest.raises(ValidationError):
        reduce_states([], "latest_wins")


def test_merge_states_checkpoints_the_result_with_provenance(open_alma: ALMA) -> None:
    first = open_alma.checkpoint("wf", {"findings": ["a"]}, agent="helena")
    loaded = open_alma.get_checkpoint("wf", first.id)
    merged = open_alma.merge_states(
        "wf", [loaded, ("victor", {"findings": ["b", "a"]}), {"findings": ["c"]}], reducer="merge_lists"
    )
    assert open_alma.resume("wf") == {"findings": ["a", "b", "c"]}
    assert merged.metadata["merged_from"] == [
        {"agent": "helena", "checkpoint_id": first.id},
        {"agent": "victor", "checkpoint_id": None},
        {"agent": None, "checkpoint_id": None},
    ]
    assert merged.metadata["reducer"] == "merge_lists"
    assert merged.sequence == 2


def test_merge_states_rejects_non_dict_states(open_alma: ALMA) -> None:
    with pytest.raises(ValidationError, match=r"states\[1\]"):
        open_alma.merge_states("wf", [{}, [1, 2]])
    assert open_alma.list_checkpoints("wf") == []
