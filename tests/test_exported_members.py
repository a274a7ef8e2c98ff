"""Every public name is exported from the package root and only there (as httpx does)."""

from __future__ import annotations

import guardstream


def test_all_exports_are_sorted_and_resolve() -> None:
    exported = [name for name in guardstream.__all__ if name != "__version__"]
    assert exported == sorted(exported, key=str.casefold) or exported == sorted(exported)
    for name in guardstream.__all__:
        assert hasattr(guardstream, name), name


def test_public_members_are_documented_in_all() -> None:
    members = {name for name in dir(guardstream) if not name.startswith("_")} - {"annotations"}
    modules = {name for name in members if type(getattr(guardstream, name)).__name__ == "module"}
    assert members - modules == set(guardstream.__all__) - {"__version__"}


def test_version_is_a_string() -> None:
    assert isinstance(guardstream.__version__, str)


def test_the_public_api_is_exactly_what_users_call_and_extend() -> None:
    # test for #8: faces, the guard, config, rules, the codec types a custom format needs, and the
    # errors guardstream raises. Internals stay importable from their modules.
    assert guardstream.__all__ == [
        "Blocked",
        "BodyVerdict",
        "Config",
        "ConfigError",
        "Event",
        "Guard",
        "GuardStreamMiddleware",
        "GuardstreamError",
        "GuardstreamProxy",
        "ModerationSettings",
        "ParsedEvent",
        "PayloadCodec",
        "Provider",
        "ProviderError",
        "RouteSettings",
        "Rule",
        "RuleError",
        "RuleSet",
        "ServerSettings",
        "StreamCodec",
        "StreamModerator",
        "TextPart",
        "TextVerdict",
        "Timeouts",
        "Upstreams",
        "Violation",
        "__version__",
        "create_app",
        "load_config",
        "load_rules",
    ]


def test_load_rules_takes_one_pack_name_as_a_string() -> None:
    assert guardstream.load_rules("pii").packs == ("pii",)
    assert guardstream.load_rules("pii, secrets").packs == ("pii", "secrets")
