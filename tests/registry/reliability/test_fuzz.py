"""Property-based fuzzing (hypothesis) of everything a caller can hand the registry: names, aliases, URIs,
metrics, params, tags, reasons, operation keys and version numbers. The only allowed failures are the
registry's typed errors, and a refused call leaves the store byte-identical."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.errors import InvalidName, RegistryError
from prefect_model_registry.registry.names import check_alias, check_model_name, parse_model_uri
from tests.conftest import snapshot

EXAMPLES = int(os.environ.get("PMR_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PURE = settings(max_examples=EXAMPLES * 10, deadline=None, derandomize=True)

# Text that includes what broke things before: lone surrogates, "²" and other non-ASCII digits, newlines.
nasty = st.text(
    alphabet=st.one_of(
        st.characters(codec=None, exclude_categories=()),  # any code point, surrogates included
        st.sampled_from(list("aZ09._-/@:\n\t ²١\u200b\ud800\udfff")),
    ),
    max_size=40,
)
names = st.one_of(nasty, st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}\n?", fullmatch=True))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), nasty)
json_keys = st.one_of(nasty, st.integers(), st.booleans(), st.none(), st.tuples(st.integers()))
params = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(json_keys, inner, max_size=3)),
    max_leaves=8,
)
versions = st.one_of(st.integers(min_value=-5, max_value=10**12), st.booleans(), st.floats(), nasty, st.none())


@pytest.fixture
def seeded(reg: Registry) -> Registry:
    reg.register("good", b"model-bytes", fmt="bytes")
    return reg


@PURE
@given(names)
def test_model_names_match_the_rule_exactly(name: str) -> None:
    valid = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", name) is not None and ".." not in name
    if valid:
        assert check_model_name(name) == name
    else:
        with pytest.raises(InvalidName):
            check_model_name(name)


@PURE
@given(nasty)
def test_aliases_match_the_rule_exactly(alias: str) -> None:
    valid = re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", alias) is not None
    valid = valid and alias not in {"none", "staging", "production", "archived", "latest"}
    if valid:
        assert check_alias(alias) == alias
    else:
        with pytest.raises(InvalidName):
            check_alias(alias)


@PURE
@given(
    st.one_of(nasty, st.builds(lambda a, b: f"models:/{a}/{b}", nasty, nasty), st.builds("{}@{}".format, nasty, nasty))
)
def test_uris_parse_or_raise_a_typed_error(uri: str) -> None:
    try:
        ref = parse_model_uri(uri)
    except RegistryError as exc:
        assert isinstance(exc, ValueError)
        return
    assert str(parse_model_uri(str(ref))) == str(ref)


@FUZZ
@given(uri=st.one_of(nasty, st.builds("good/{}".format, nasty), st.builds("good@{}".format, nasty)))
def test_resolve_raises_only_typed_errors(seeded: Registry, uri: str) -> None:
    try:
        assert seeded.resolve(uri).name == "good"
    except RegistryError:
        pass


@FUZZ
@given(
    name=names,
    metrics=st.dictionaries(
        st.one_of(nasty, st.integers()), st.one_of(st.floats(), st.integers(), st.booleans(), nasty), max_size=3
    ),
    params=st.dictionaries(json_keys, params, max_size=3),
    tags=st.dictionaries(st.one_of(nasty, st.integers()), st.one_of(nasty, st.integers()), max_size=3),
    description=nasty,
    key=st.one_of(st.none(), nasty),
)
def test_register_refuses_with_a_typed_error_and_writes_nothing(
    seeded: Registry, name: Any, metrics: Any, params: Any, tags: Any, description: Any, key: Any
) -> None:
    # model_construct: hand the registry raw values, as a caller bypassing pydantic could.
    info = VersionInfo.model_construct(metrics=metrics, params=params, tags=tags, description=description)
    before = snapshot(seeded)
    try:
        mv = seeded.register(name, b"fuzzed-model", info, fmt="bytes", operation_key=key)
    except RegistryError as exc:
        assert isinstance(exc, ValueError | LookupError | PermissionError), exc
        assert snapshot(seeded) == before
        return
    # Accepted: it reads back exactly as given (nothing silently changed on the way).
    assert seeded.get_version(name, mv.version).params == params
    assert seeded.get_version(name, mv.version).tags == tags


@FUZZ
@given(
    alias=nasty,
    version=versions,
    stage=st.one_of(nasty, st.sampled_from(["staging", "production", "archived", "none"])),
    reason=nasty,
    key=st.one_of(st.none(), nasty),
    reviewer=st.one_of(nasty, st.none()),
)
def test_lifecycle_calls_refuse_with_typed_errors_and_write_nothing(
    seeded: Registry, alias: Any, version: Any, stage: Any, reason: Any, key: Any, reviewer: Any
) -> None:
    calls = [
        lambda: seeded.set_alias("good", alias, version, reason=reason, operation_key=key),
        lambda: seeded.promote("good", version, stage, reason=reason, operation_key=key),
        lambda: seeded.record_decision(
            "good", version, approved=False, reviewer=reviewer, comment=reason, operation_key=key
        ),
        lambda: seeded.record_report(
            "good", version, alias, {"passed": True, "why": reason}, passed=True, operation_key=key
        ),
        lambda: seeded.rollback("good", reason=reason, operation_key=key),
        lambda: seeded.remove_alias("good", alias, reason=reason, operation_key=key),
    ]
    for call in calls:
        before = snapshot(seeded)
        try:
            call()
        except RegistryError:
            assert snapshot(seeded) == before
