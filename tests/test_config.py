"""Config files and flags: defaults, overrides, and one-line errors naming the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from guardstream import Guard
from guardstream.config import Config, load_config
from guardstream.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "guardstream.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_gives_the_documented_defaults() -> None:
    config = load_config(None)
    assert config.server.port == 8080
    assert config.moderation.packs == ("pii", "secrets")
    assert config.moderation.on_violation == "error"


def test_every_section_is_read(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            '[server]\nport = 9000\n[upstreams]\nopenai = "http://127.0.0.1:1/"\n'
            '[moderation]\npacks = ["secrets"]\non_violation = "finish"\nmax_holdback_chars = 64\n',
        )
    )
    assert config.server.port == 9000
    assert config.upstreams.openai == "http://127.0.0.1:1"
    assert config.moderation == type(config.moderation)(("secrets",), "finish", 64, 256)


def test_pack_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "own.toml").write_text('[pack]\nname = "own"\n[[rule]]\nid = "own.x"\npattern = "x"\n')
    config = load_config(write(tmp_path, '[moderation]\npacks = ["own.toml", "pii"]\n'))
    assert config.moderation.packs == (str(tmp_path / "own.toml"), "pii")


def test_bad_value_names_file_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, '[moderation]\nmax_holdback_chars = "lots"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: [moderation] max_holdback_chars has value 'lots'. Not a valid int (>= 1)."


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'prot'"):
        load_config(write(tmp_path, "[server]\nprot = 1\n"))


def test_bad_upstream_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Use an http:// or https:// URL"):
        load_config(write(tmp_path, '[upstreams]\nopenai = "api.openai.com"\n'))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_flags_override_the_file() -> None:
    config = Config().with_overrides(upstream="http://127.0.0.1:5", port=1234, packs="secrets, pii")
    assert config.upstreams.openai == config.upstreams.gemini == "http://127.0.0.1:5"
    assert config.server.port == 1234
    assert config.moderation.packs == ("secrets", "pii")


def test_classifiers_are_read_into_the_config(tmp_path: Path) -> None:
    text = '[[classifiers]]\nname = "omni"\nkind = "openai-moderation"\nurl = "http://127.0.0.1:1/v1/moderations"\n'
    config = load_config(write(tmp_path, text))
    assert [(c.name, c.kind, c.mode) for c in config.classifiers] == [("omni", "openai-moderation", "strict")]
    assert load_config(None).classifiers == ()


def test_a_bad_classifier_names_file_classifier_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[[classifiers]]\nname = "x"\nkind = "http"\nurl = "http://h/"\nmode = "fast"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: [[classifiers]] 'x': mode has value 'fast'. Use one of 'strict', 'async'."


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('kind = "http"\nurl = "http://h/"\napi_key_env = "GUARDSTREAM_TEST_UNSET_KEY"', "api_key_env names"),
        ('kind = "python"\nmodule = "no_such_module_xyz:f"', "cannot import 'no_such_module_xyz'"),
    ],
)
def test_what_a_classifier_lacks_at_start_up_names_the_file(tmp_path: Path, table: str, message: str) -> None:
    path = write(tmp_path, f'[moderation]\npacks = []\n[[classifiers]]\nname = "x"\n{table}\n')
    with pytest.raises(ConfigError) as caught:
        Guard(load_config(path))
    assert str(caught.value).startswith(f"{path}: classifier 'x': ")
    assert message in str(caught.value)


def test_unknown_pack_in_a_config_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[moderation]\npacks = ["nosuchpack"]\n')
    with pytest.raises(
        ConfigError, match=rf"^{re.escape(str(path))}: \[moderation\] packs: unknown built-in rule pack"
    ):
        load_config(path)
