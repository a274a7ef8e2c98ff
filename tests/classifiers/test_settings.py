"""`[[classifiers]]` tables: defaults per kind, and one-line errors naming the file, the classifier and the key."""

from __future__ import annotations

from typing import Any

import pytest

from guardstream.classifiers import KINDS, ClassifierSettings, Verdict, parse_classifiers
from guardstream.errors import ConfigError
from tests.classifiers.conftest import settings

URL = "http://127.0.0.1:1/v1/moderations"


def test_defaults_are_the_documented_ones() -> None:
    omni = settings("openai-moderation", url=URL)
    assert omni == ClassifierSettings(
        name="test", kind="openai-moderation", url=URL, model="omni-moderation-latest", batch=True
    )
    assert (omni.mode, omni.every_chars, omni.overlap_chars, omni.timeout_ms) == ("strict", 200, 100, 1000)
    assert (omni.on_error, omni.max_concurrency, omni.direction, omni.category) == ("block", 8, "output", None)


def test_every_kind_reads_its_own_keys() -> None:
    judge = settings(
        "chat-judge",
        url="http://127.0.0.1:1/v1/chat/completions",
        model="llama-guard",
        parser="yes-no",
        template="Is this unsafe? {text}",
        system="You are a classifier.",
        codes={"S1": "violence"},
        max_tokens=4,
        headers={"X-Trace": "1"},
        api_key_env="JUDGE_KEY",
        mode="async",
        direction="both",
        category="unsafe-content",
    )
    assert (judge.parser, judge.template, judge.system, judge.max_tokens) == (
        "yes-no",
        "Is this unsafe? {text}",
        "You are a classifier.",
        4,
    )
    assert dict(judge.codes) == {"S1": "violence"} and dict(judge.headers) == {"X-Trace": "1"}
    assert (judge.mode, judge.direction, judge.category, judge.api_key_env) == (
        "async",
        "both",
        "unsafe-content",
        "JUDGE_KEY",
    )
    assert settings("http", url="http://h/", batch=True, max_batch=4, categories=["abuse"]).categories == ("abuse",)
    assert (
        settings("python", module="tests.classifiers.inhouse:flags_bad").module == "tests.classifiers.inhouse:flags_bad"
    )
    assert settings("local-offensive", threshold=0.8).threshold == 0.8
    assert dict(settings("openai-moderation", url=URL, thresholds={"hate": 0.5, "*": 1}).thresholds) == {
        "hate": 0.5,
        "*": 1.0,
    }


def test_settings_are_frozen_and_comparable() -> None:
    one = settings("openai-moderation", url=URL, thresholds={"hate": 0.5})
    assert one == settings("openai-moderation", url=URL, thresholds={"hate": 0.5})
    assert hash(one) == hash(settings("openai-moderation", url=URL, thresholds={"hate": 0.5}))
    with pytest.raises(TypeError):
        one.thresholds["hate"] = 0.9  # type: ignore[index]


def test_direction_and_category_helpers() -> None:
    output = settings("local-offensive")
    both = settings("local-offensive", direction="both", category="abuse")
    assert output.applies_to("output") and not output.applies_to("input")
    assert both.applies_to("input") and both.applies_to("output")
    flagged = Verdict(True, ("offensive",))
    assert output.category_of(flagged) == "offensive"
    assert both.category_of(flagged) == "abuse"
    assert output.category_of(Verdict(True)) == "other"


def test_several_classifiers_keep_their_order() -> None:
    parsed = parse_classifiers(
        [{"name": "b", "kind": "local-offensive"}, {"name": "a", "kind": "http", "url": "http://h/"}], "x.toml"
    )
    assert [s.name for s in parsed] == ["b", "a"]
    assert KINDS == ("openai-moderation", "chat-judge", "http", "python", "local-offensive")


BAD_TABLES: list[tuple[dict[str, Any], str]] = [
    # the name and the kind
    ({"kind": "http"}, "[[classifiers]] #1: name has value None. Every classifier needs a name"),
    ({"name": "bad name", "kind": "http"}, "[[classifiers]] #1: name has value 'bad name'."),
    ({"name": "x"}, "[[classifiers]] 'x': kind has value None. Use one of 'openai-moderation', 'chat-judge'"),
    ({"name": "x", "kind": "magic"}, "[[classifiers]] 'x': kind has value 'magic'."),
    # keys
    ({"name": "x", "kind": "local-offensive", "url": "http://h/"}, "unknown key 'url' for kind 'local-offensive'."),
    ({"name": "x", "kind": "http"}, "[[classifiers]] 'x': url is missing. Kind 'http' needs it."),
    ({"name": "x", "kind": "chat-judge", "url": "http://h/"}, "model is missing. Kind 'chat-judge' needs it."),
    ({"name": "x", "kind": "python"}, "module is missing. Kind 'python' needs it."),
    # values
    ({"name": "x", "kind": "http", "url": "ftp://h/"}, "url has value 'ftp://h/'. Use an http:// or https:// URL."),
    ({"name": "x", "kind": "local-offensive", "mode": "fast"}, "mode has value 'fast'. Use one of 'strict', 'async'."),
    ({"name": "x", "kind": "local-offensive", "on_error": "ignore"}, "on_error has value 'ignore'."),
    ({"name": "x", "kind": "local-offensive", "direction": "up"}, "direction has value 'up'."),
    ({"name": "x", "kind": "local-offensive", "every_chars": 0}, "every_chars has value 0. Not a valid int (>= 1)."),
    ({"name": "x", "kind": "local-offensive", "timeout_ms": "1s"}, "timeout_ms has value '1s'. Not a valid int"),
    ({"name": "x", "kind": "local-offensive", "max_concurrency": True}, "max_concurrency has value True."),
    (
        {"name": "x", "kind": "local-offensive", "overlap_chars": -1},
        "overlap_chars has value -1. Not a valid int (>= 0).",
    ),
    ({"name": "x", "kind": "local-offensive", "threshold": 1.5}, "threshold has value 1.5. Use a number from 0 to 1."),
    ({"name": "x", "kind": "local-offensive", "category": "bad category"}, "category has value 'bad category'."),
    ({"name": "x", "kind": "http", "url": "http://h/", "batch": "yes"}, "batch has value 'yes'. Use true or false."),
    ({"name": "x", "kind": "http", "url": "http://h/", "headers": ["a"]}, "headers has value ['a']. Use a table"),
    ({"name": "x", "kind": "http", "url": "http://h/", "headers": {"a b": "1"}}, "headers.a b has value '1'."),
    ({"name": "x", "kind": "http", "url": "http://h/", "headers": {"x": 1}}, "headers.x has value 1. A header value"),
    ({"name": "x", "kind": "http", "url": "http://h/", "api_key_env": "A-B"}, "api_key_env has value 'A-B'."),
    ({"name": "x", "kind": "http", "url": "http://h/", "categories": "abuse"}, "categories has value 'abuse'."),
    (
        {"name": "x", "kind": "openai-moderation", "url": "http://h/", "thresholds": {"hate": 2}},
        "thresholds.hate has value 2. Use a number from 0 to 1.",
    ),
    (
        {"name": "x", "kind": "openai-moderation", "url": "http://h/", "thresholds": {"a b": 0.5}},
        "thresholds.a b has value 0.5. A category is letters",
    ),
    (
        {"name": "x", "kind": "chat-judge", "url": "http://h/", "model": "m", "parser": "json"},
        "parser has value 'json'. Use one of 'safe-unsafe', 'yes-no', 'score'.",
    ),
    (
        {"name": "x", "kind": "chat-judge", "url": "http://h/", "model": "m", "template": "Judge this"},
        "template has value 'Judge this'. The template must contain {text}",
    ),
    (
        {"name": "x", "kind": "chat-judge", "url": "http://h/", "model": "m", "codes": {"S1": 3}},
        "codes.S1 has value 3.",
    ),
    ({"name": "x", "kind": "python", "module": "no_callable"}, "module has value 'no_callable'. Use 'package.module"),
    (
        {"name": "x", "kind": "openai-moderation", "url": "http://h/", "thresholds": {"self_harm": 0.3}},
        "thresholds.self_harm has value 0.3. 'self_harm' is no category of this classifier: use one of",
    ),
]


def test_a_threshold_may_name_a_category_the_table_lists() -> None:
    table = {"name": "x", "kind": "openai-moderation", "url": "http://h/", "categories": ["toxicity"]}
    (parsed,) = parse_classifiers([{**table, "thresholds": {"toxicity": 0.5, "self-harm": 0.3, "*": 0.9}}], "c")
    assert parsed.thresholds == {"toxicity": 0.5, "self-harm": 0.3, "*": 0.9}


@pytest.mark.parametrize(("table", "message"), BAD_TABLES)
def test_a_bad_table_names_the_file_the_classifier_and_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_classifiers([table], "conf.toml")
    assert str(caught.value).startswith("conf.toml: [[classifiers]] ")
    assert message in str(caught.value)


def test_names_are_unique() -> None:
    table = {"name": "x", "kind": "local-offensive"}
    with pytest.raises(ConfigError, match=r"^c.toml: \[\[classifiers\]\] 'x': the name is used twice"):
        parse_classifiers([table, table], "c.toml")


def test_classifiers_must_be_an_array_of_tables() -> None:
    with pytest.raises(ConfigError, match="must be an array of tables"):
        parse_classifiers({"name": "x"}, "c.toml")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"\[\[classifiers\]\] #2 must be a table"):
        parse_classifiers([{"name": "x", "kind": "local-offensive"}, "y"], "c.toml")
