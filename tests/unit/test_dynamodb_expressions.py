"""The DynamoDB expression builder: stable placeholders, reserved words, REMOVE for a value of
None, conditions, and the condition of a task write built from its Expect."""

import pytest
from taskrunner.adapters.dynamodb_expressions import Expression, UpdateExpression, all_of, any_of
from taskrunner.adapters.dynamodb_tasks import expected_condition
from taskrunner.domain.models import Expect, TaskStatus

S = {"S": "x"}


def test_a_name_has_one_placeholder_and_reserved_words_never_appear_bare():
    expr = Expression()
    assert expr.name("status") == "#status"
    assert expr.name("name") == "#name"
    assert expr.name("status") == "#status"  # asked again: the same one
    assert expr.names == {"#status": "status", "#name": "name"}


def test_a_name_a_placeholder_cannot_spell_gets_a_numbered_one():
    expr = Expression()
    assert expr.name("n0") == "#n0"
    assert expr.name("a-b") == "#n1"
    assert expr.name("c.d") == "#n2"
    assert expr.name("a-b") == "#n1"
    assert expr.names == {"#n0": "n0", "#n1": "a-b", "#n2": "c.d"}


def test_values_are_named_by_their_hint_and_a_different_value_gets_a_suffix():
    expr = Expression()
    assert expr.value({"N": "1"}, "one") == ":one"
    assert expr.value({"N": "1"}, "one") == ":one"  # the same value shares it
    assert expr.value({"N": "2"}, "one") == ":one_2"
    assert expr.value({"N": "3"}, "one") == ":one_3"
    assert expr.values == {":one": {"N": "1"}, ":one_2": {"N": "2"}, ":one_3": {"N": "3"}}


def test_the_same_build_gives_the_same_text():
    def build():
        update = UpdateExpression().increment("version").set("status", {"S": "DONE"}).remove("lease_expires_at")
        return update.request(update.is_in("status", [{"S": "A"}, {"S": "B"}]))

    assert build() == build()


def test_set_none_removes_the_attribute_and_remove_is_listed_once():
    update = UpdateExpression().set("result", S).set("lease_expires_at", None).remove("lease_expires_at")
    update.remove("sweep_pk")
    assert update.expression() == "SET #result = :result REMOVE #lease_expires_at, #sweep_pk"
    assert update.removed == ["lease_expires_at", "sweep_pk"]
    assert update.values == {":result": S}


def test_if_not_exists_forms_and_increments():
    update = UpdateExpression().increment("version").increment("segments", from_zero=True)
    update.set_if_absent("started_at", S)
    update.set_from("prior", "started_at", {"S": ""}, hint="none")
    assert update.expression() == (
        "SET #version = #version + :one, #segments = if_not_exists(#segments, :zero) + :one, "
        "#started_at = if_not_exists(#started_at, :started_at), #prior = if_not_exists(#started_at, :none)"
    )
    assert update.values == {":one": {"N": "1"}, ":zero": {"N": "0"}, ":started_at": S, ":none": {"S": ""}}


def test_only_used_placeholders_are_sent_and_an_empty_update_is_refused():
    update = UpdateExpression().remove("due_at")
    assert update.request() == {"UpdateExpression": "REMOVE #due_at", "ExpressionAttributeNames": {"#due_at": "due_at"}}
    with pytest.raises(ValueError, match="nothing"):
        UpdateExpression().expression()


def test_condition_clauses():
    expr = Expression()
    assert expr.is_in("status", [{"S": "A"}, {"S": "B"}], hint="want") == "#status IN (:want0, :want1)"
    assert expr.equals("attempts", {"N": "2"}) == "#attempts = :attempts"
    assert expr.compare("lease", "<", S) == "#lease < :lease"
    assert expr.exists("task_id") == "attribute_exists(#task_id)"
    assert expr.not_exists("handed_over_at") == "attribute_not_exists(#handed_over_at)"
    assert expr.begins_with("task_id", S, hint="prefix") == "begins_with(#task_id, :prefix)"
    with pytest.raises(ValueError):
        expr.compare("a", "BETWEEN", S)
    with pytest.raises(ValueError):
        expr.is_in("a", [])


def test_compound_clauses_are_grouped():
    assert all_of("a") == "a"
    assert all_of("a", "b OR c") == "a AND (b OR c)"
    assert any_of("a AND b", "c") == "(a AND b) OR c"
    assert any_of("a") == "a"


def test_the_condition_of_a_task_write():
    expr = Expression()
    expect = Expect(frozenset({TaskStatus.RUNNING}), attempts=2, segments=1, handed_over=False)
    assert expected_condition(expr, expect) == (
        "#status IN (:expected_status0) AND #attempts = :expected_attempts AND "
        "#segments = :expected_segments AND attribute_not_exists(#handed_over_at)"
    )
    assert expr.values[":expected_attempts"] == {"N": "2"}


def test_the_condition_of_a_claim_that_may_take_an_expired_lease():
    expr = Expression()
    expect = Expect(frozenset({TaskStatus.PENDING}), lease_expired_before="2026-01-01T00:00:00.000Z")
    assert expected_condition(expr, expect) == (
        "#status IN (:expected_status0) OR (#status = :running AND #lease_expires_at < :lease_before)"
    )
    assert expr.values[":running"] == {"S": "RUNNING"}


def test_a_condition_without_statuses_still_needs_the_task():
    expr = Expression()
    assert expected_condition(expr, Expect(frozenset(), attempts=1)) == (
        "attribute_exists(#task_id) AND #attempts = :expected_attempts"
    )
    assert expected_condition(Expression(), Expect(frozenset())) == "attribute_exists(#task_id)"
