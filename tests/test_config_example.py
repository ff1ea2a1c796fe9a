"""config.example.toml documents every key of vocab/config.py, set to its default, so it can never drift."""

from __future__ import annotations

import dataclasses
import re
import tomllib

from tests.daemon_fixtures import REPO_ROOT
from vocab.config import Config, ModelConfig, load_config, parse_config

EXAMPLE = REPO_ROOT / "config.example.toml"
# Every section dataclass of Config, by section name ([models.<name>] tables are optional).
SECTIONS = {f.name: type(getattr(Config(), f.name)) for f in dataclasses.fields(Config) if f.name != "models"}


def test_example_parses_to_exactly_the_defaults() -> None:
    assert load_config(EXAMPLE, environ={}) == Config()


def test_every_section_and_key_is_present_and_commented() -> None:
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert set(raw) == set(SECTIONS)  # [models.*] stays commented out: no model by default
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for section, cls in SECTIONS.items():
        fields = [f.name for f in dataclasses.fields(cls)]
        assert list(raw[section]) == fields, f"[{section}] keys differ from {cls.__name__}'s fields (or their order)"
        for key in fields:
            line = next(i for i, text in enumerate(lines) if text.startswith(f"{key} = ")
                        and _section_of(lines, i) == section)
            assert lines[line - 1].startswith("#"), f"[{section}] {key} has no comment line above it"


def test_the_commented_model_table_is_valid_once_uncommented() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    block = re.search(r"^# (\[models\.my-detector\])\n((?:# \w+ = .*\n)+)", text, re.M)
    assert block, "the [models.my-detector] example is missing"
    uncommented = block.group(1) + "\n" + block.group(2).replace("# ", "")
    raw = tomllib.loads(uncommented)
    assert set(raw["models"]["my-detector"]) == {f.name for f in dataclasses.fields(ModelConfig)}
    cfg = parse_config(raw, environ={})
    assert cfg.models["my-detector"].dataset == "/data/my-detector/data.yaml"


def _section_of(lines: list[str], index: int) -> str:
    for text in reversed(lines[:index]):
        m = re.match(r"^\[([\w.-]+)\]$", text)
        if m:
            return m.group(1)
    return ""
