"""Run configuration: YAML, defaults, `--set` overrides, one-line errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from dgm.budget import parse_duration
from dgm.config import ConfigError, load_config


def test_defaults_work_offline():
    config = load_config(None)
    assert config.benchmark.name == "builtin-polyglot"
    assert config.models.agent == "smollm2-135m-instruct"
    assert config.scheduler.mode == "async" and config.selector.name == "score_child_prop"


def test_file_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "name: mine\nbenchmark:\n  name: builtin-swebench\n  stages:\n    - subset: small\n"
        "      threshold: 0.4\n    - subset: all\nbudget:\n  usd: 10\n  wall_clock: 36h\n"
    )
    config = load_config(path, ["budget.usd=2.5", "scheduler.workers=4", "sandbox.memory_mb=512"])
    assert (config.name, config.budget.usd, config.scheduler.workers) == ("mine", 2.5, 4)
    assert config.budget.wall_clock == timedelta(hours=36)
    assert [s.subset for s in config.benchmark.stages] == ["small", "all"]
    assert config.sandbox.memory_mb == 512


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("budget:\n  usd: lots\n", [], "run.yaml: budget.usd: Input should be a valid number"),
        ("", ["budget.wall_clock=soon"], "budget.wall_clock: 'soon' is not a duration"),
        ("", ["budget.dollars=3"], "budget.dollars: no such setting"),
        ("", ["scheduler.mode=fast"], "scheduler.mode: Input should be 'async' or 'generational'"),
        ("", ["workers"], "--set 'workers': write it as dotted.key=value"),
        ("name: [unclosed\n", [], "is not valid YAML (line 2)"),
        ("- a\n- b\n", [], "must be a mapping of settings"),
    ],
)
def test_bad_configs_are_one_line(tmp_path, text, overrides, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)
    assert message in str(caught.value) and "\n" not in str(caught.value).strip()


def test_durations():
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(days=2)
    with pytest.raises(ValueError):
        parse_duration("36 hours")


@pytest.mark.parametrize("name", ["quickstart", "dgm-swebench", "hgm-swebench", "dgm-polyglot"])
def test_shipped_configs_are_valid(name):
    config = load_config(Path(__file__).parents[1] / "configs" / f"{name}.yaml")
    assert config.name == name


def test_dgm_swebench_has_the_papers_three_stages():
    # DGM paper: 10 tasks, then 50 more at 40%, then the rest of 200 for nodes at
    # max(0.4, the second-best full score) (get_full_eval_threshold in DGM_outer.py)
    config = load_config(Path(__file__).parents[1] / "configs" / "dgm-swebench.yaml")
    stages = [(s.subset, s.threshold) for s in config.benchmark.stages]
    assert stages == [("dgm-small", 0.4), ("dgm-medium", "dgm"), ("dgm-big", 0.0)]
