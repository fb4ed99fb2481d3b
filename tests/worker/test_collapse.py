"""In-batch collapse: folded effects must do exactly what the changes do one by one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.collapse import EffectKind, Plan, collapse
from worker.records import Change, Operation, Record

COLUMNS = ("id", "a", "b")
_offsets = iter(range(10**9))


def change(operation: str, id_: int, **values: object) -> Change:
    record = Record("activities.t", 0, next(_offsets), None, None)
    values = {} if operation == "delete" else {"id": id_, **values}
    return Change(
        record, "t", Operation(operation), (id_,), values, tuple(values), 1, 7
    )


def test_insert_update_delete_insert_of_one_key_is_one_fresh_row() -> None:
    changes = [
        change("insert", 1, a=1, b=1),
        change("update", 1, b=2),
        change("delete", 1),
        change("insert", 1, a=3),
    ]

    plan = collapse(changes)

    [[effect]] = plan.rounds
    assert effect.kind is EffectKind.UPSERT
    assert effect.replace, "b must become NULL, as after a real delete and insert"
    assert effect.values == {"id": 1, "a": 3}
    assert effect.columns(COLUMNS) == COLUMNS
    assert effect.sources == changes
    assert plan.missing_rows == ()


def test_update_after_delete_in_the_batch_is_a_missing_row() -> None:
    late_update = change("update", 1, a=5)

    plan = collapse([change("delete", 1), late_update])

    assert [e.kind for e in plan.rounds[0]] == [EffectKind.DELETE]
    assert plan.missing_rows == (late_update,)


def test_insert_after_update_waits_for_the_next_round() -> None:
    plan = collapse([change("update", 1, a=1), change("insert", 1, a=2)])

    assert [[e.kind for e in r] for r in plan.rounds] == [
        [EffectKind.UPDATE],
        [EffectKind.UPSERT],
    ]


def test_partial_changes_merge_to_the_columns_they_named() -> None:
    plan = collapse([change("upsert", 1, a=1), change("update", 1, b=None)])

    [[effect]] = plan.rounds
    assert effect.values == {"id": 1, "a": 1, "b": None}
    assert not effect.replace


def test_an_append_only_table_keeps_every_record_in_order() -> None:
    changes = [change("insert", 0, a=n) for n in range(3)]

    plan = collapse(changes, keyed=False)

    assert [e.values["a"] for e in plan.rounds[0]] == [0, 1, 2]


# --- the property: collapsed == one by one ----------------------------------------

Rows = dict[int, dict[str, object]]


def apply_one_by_one(rows: Rows, changes: list[Change]) -> set[int]:
    """What PostgreSQL does with the changes one by one; return rejected offsets."""
    rejected = set()
    for c in changes:
        key = c.key[0]
        if c.operation is Operation.DELETE:
            rows.pop(key, None)
        elif c.operation is Operation.UPDATE and key not in rows:
            rejected.add(c.record.offset)
        elif c.operation is Operation.UPDATE:
            rows[key].update(c.values)
        else:
            rows[key] = {**rows.get(key, dict.fromkeys(COLUMNS)), **c.values}
    return rejected


def apply_plan(rows: Rows, plan: Plan) -> set[int]:
    """What the worker's statements do with the plan, round by round."""
    rejected = {c.record.offset for c in plan.missing_rows}
    for round_ in plan.rounds:
        for effect in round_:
            key = effect.key[0]
            if effect.kind is EffectKind.DELETE:
                rows.pop(key, None)
            elif effect.kind is EffectKind.UPDATE and key not in rows:
                rejected.update(c.record.offset for c in effect.sources)
            elif effect.kind is EffectKind.UPDATE:
                rows[key].update(effect.values)
            elif effect.replace or key not in rows:
                rows[key] = {**dict.fromkeys(COLUMNS), **effect.values}
            else:
                rows[key].update(effect.values)
    return rejected


values = st.fixed_dictionaries({}, optional={"a": st.integers(0, 3), "b": st.none()})
changes = st.lists(
    st.builds(
        change,
        st.sampled_from(["insert", "upsert", "update", "delete"]),
        st.integers(1, 3),
    ).flatmap(
        lambda c: values.map(
            lambda v: (
                change(c.operation, c.key[0], **v)
                if c.operation is not Operation.DELETE
                else c
            )
        )
    ),
    max_size=12,
)
initial = st.dictionaries(
    st.integers(1, 3),
    st.fixed_dictionaries({"a": st.integers(0, 3), "b": st.integers(0, 3)}),
)


@settings(max_examples=400, deadline=None)
@given(changes=changes, initial=initial)
def test_collapsed_plan_equals_applying_one_by_one(
    changes: list[Change], initial: dict
) -> None:
    before = {k: {"id": k, **v} for k, v in initial.items()}
    one_by_one = {k: dict(v) for k, v in before.items()}
    planned = {k: dict(v) for k, v in before.items()}

    expected_rejects = apply_one_by_one(one_by_one, changes)
    plan = collapse(changes)
    rejects = apply_plan(planned, plan)

    assert planned == one_by_one
    assert rejects == expected_rejects
    for round_ in plan.rounds:
        keys = [effect.key for effect in round_]
        assert len(keys) == len(set(keys)), "a statement would touch a row twice"
