"""The life of a (rule, subject): pending, open, raised, clearing, resolved, cooldown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.evaluate import Open, Raise, Resolve, RuleState, evaluate
from alerting.rules import Rule, RuleOperator, Severity

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def hot(**changes: object) -> Rule:
    """Temperature above 30 (warning) or 35 (critical), clearing at 29."""
    values: dict[str, object] = {
        "name": "hot",
        "kind": "panel",
        "metric": "temperature",
        "operator": RuleOperator.GT,
        "warning": 30.0,
        "critical": 35.0,
        "clear": 29.0,
        "cooldown_minutes": 0.0,
    }
    return Rule(**{**values, **changes})  # type: ignore[arg-type]


def run(rule: Rule, values: list[tuple[timedelta, float]]) -> list[object]:
    state = RuleState()
    return [t for at, v in values if (t := evaluate(rule, state, v, T0 + at)) is not None]


def test_flapping_around_the_threshold_gives_one_event() -> None:
    """30 ± 0.2 °C every 10 s for 10 minutes: one event, never resolved (clear is 29)."""
    values = [(n * 10 * S, 30.0 + (0.2 if n % 2 else -0.2)) for n in range(60)]
    transitions = run(hot(), values)
    assert len(transitions) == 1
    assert isinstance(transitions[0], Open)
    assert transitions[0].severity is Severity.WARNING


def test_without_hysteresis_the_same_values_flap() -> None:
    """The same stream without a clear threshold opens and resolves over and over."""
    values = [(n * 10 * S, 30.0 + (0.2 if n % 2 else -0.2)) for n in range(60)]
    transitions = run(hot(clear=None), values)
    assert sum(isinstance(t, Open) for t in transitions) == 30


def test_for_duration_must_hold() -> None:
    """A breach shorter than `for` raises nothing; one that holds opens at its end."""
    rule = hot(for_seconds=60)
    assert run(rule, [(0 * S, 31.0), (30 * S, 31.0), (40 * S, 28.0), (100 * S, 28.0)]) == []
    opened = run(rule, [(0 * S, 31.0), (30 * S, 31.5), (61 * S, 31.2)])
    assert [type(t) for t in opened] == [Open]
    assert isinstance(opened[0], Open)
    assert opened[0].since == T0


def test_raise_then_clear_for() -> None:
    """Warning, then critical (raised), then resolved once 29 or less held 30 s."""
    rule = hot(clear_for_seconds=30)
    transitions = run(
        rule,
        [(0 * S, 31.0), (10 * S, 36.0), (20 * S, 28.0), (30 * S, 29.5), (40 * S, 28.0),
         (60 * S, 28.5), (75 * S, 27.0)],
    )  # fmt: skip
    assert [type(t) for t in transitions] == [Open, Raise, Resolve]
    raised = transitions[1]
    assert isinstance(raised, Raise)
    assert raised.severity is Severity.CRITICAL


def test_cooldown_holds_back_a_new_event() -> None:
    """A breach within the cooldown after the last event waits; past it, it opens."""
    rule = hot(clear=None, cooldown_minutes=5.0)
    state = RuleState()
    assert isinstance(evaluate(rule, state, 31.0, T0), Open)
    assert isinstance(evaluate(rule, state, 20.0, T0 + S), Resolve)
    assert evaluate(rule, state, 31.0, T0 + 60 * S) is None
    assert state.pending_since == T0 + 60 * S
    assert isinstance(evaluate(rule, state, 31.0, T0 + 301 * S), Open)


def test_a_hint_sets_the_severity() -> None:
    """A panel alarm's priority is the event's severity."""
    rule = Rule(name="panic", kind="panel", metric="alarm_panic1", operator="eq", critical=1.0)  # type: ignore[arg-type]
    opened = evaluate(rule, RuleState(), 1.0, T0, Severity.INFO)
    assert isinstance(opened, Open)
    assert opened.severity is Severity.INFO


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"warning": None, "critical": None}, "give a warning or a critical"),
        ({"critical": 25.0}, "beyond the warning"),
        ({"clear": 31.0}, "safe side"),
        ({"operator": "eq", "clear": 29.0}, "needs gt, gte, lt or lte"),
        ({"warning": float("nan")}, "finite"),
        ({"for_seconds": -1}, "0 or more"),
        ({"scope": "zone", "scope_value": "north"}, "zone is a number"),
        ({"scope": "device"}, "names its device"),
        ({"operator": "between"}, "between"),
    ],
)
def test_rules_that_cannot_work_are_refused(changes: dict[str, object], message: str) -> None:
    """Each malformed rule is refused when it is made, saying why."""
    with pytest.raises(ValueError, match=message):
        hot(**changes)


@given(st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), max_size=80))
def test_open_and_resolve_alternate(values: list[float]) -> None:
    """Whatever the values, events open and resolve in turn, and one is open at most."""
    kinds = [type(t) for t in run(hot(), [(n * S, v) for n, v in enumerate(values)])]
    opens_and_resolves = [k for k in kinds if k in (Open, Resolve)]
    assert opens_and_resolves[::2] == [Open] * len(opens_and_resolves[::2])
    assert opens_and_resolves[1::2] == [Resolve] * len(opens_and_resolves[1::2])


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["gt", "gte", "lt", "lte"]),
            st.floats(min_value=-100, max_value=100, allow_nan=False),
        ),
        min_size=1,
        max_size=6,
    ),
    st.floats(min_value=-150, max_value=150, allow_nan=False),
)
def test_a_quiet_value_breaches_none_of_the_rules(
    specs: list[tuple[str, float]], value: float
) -> None:
    """The fast path's interval never hides a breach, thresholds included."""
    from alerting.book import Matching

    rules = [
        Rule(name=f"r{n}", kind="panel", metric="temperature", operator=op, warning=t)  # type: ignore[arg-type]
        for n, (op, t) in enumerate(specs)
    ]
    matching = Matching.of(rules)
    if matching.quiet(value):
        assert all(rule.breach(value) is None for rule in rules)
    for rule in rules:  # exactly at a threshold
        threshold = rule.warning
        assert threshold is not None
        if rule.breach(threshold) is not None:
            assert not matching.quiet(threshold)


def test_eq_rules_take_the_long_way() -> None:
    """A rule with eq or neq cannot be bounded: every value is checked against it."""
    from alerting.book import Matching

    rule = Rule(name="flag", kind="panel", metric="siren", operator=RuleOperator.EQ, warning=1.0)
    assert not Matching.of([rule]).quiet(0.0)
