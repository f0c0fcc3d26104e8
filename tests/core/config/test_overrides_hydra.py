"""Our overrides against ``hydra.compose`` on the same config, for the examples of Hydra's override-grammar docs
(basic and extended grammar pages, Hydra 1.3), plus the cases a red-team found to differ."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from core.config import load_config
from core.config.loader import apply_overrides, literal_override, parse_override
from core.errors import ConfigError

BASE = """\
foo: {bar: 1, baz: old}
db:
  driver: mysql
  user: ???
  pass: ???
msg: x
dir: x
key: x
nested: x
num: 0
flag: false
name: x
lst: [1, 2, 3]
"""

# Every example on Hydra's grammar pages that applies to a config object (not to config groups or the
# Defaults List), and the cases the red-team compared.
DOC_EXAMPLES = [
    # modifying the config object
    "foo.bar=value",
    "+foo.new=value",
    "++foo.bar=value",
    "++foo.other=value",
    "~foo.bar",
    "~foo.bar=1",
    "~foo.bar=2",  # refused by both: the value differs
    "+foo.bar=value",  # refused by both: the key exists
    "foo.nope=1",  # refused by both: the key does not exist
    "~foo.nope",
    # quoted values
    'msg="hello there"',
    "msg='hello there'",
    r'msg="escaped \"double quote\""',
    r"msg='escaped \'single quote\''",
    r'msg="the path is C:\\\"some folder\"\\"',
    r"msg='the path is C:\\\'some folder\'\\'",
    'msg="1,2,3"',
    "msg='1,2,3'",
    'msg="{a:10} ${xyz}"',
    'msg="{a:10} ${name}"',
    "msg='\"double quoted string\"'",
    "msg=\"'single quoted string'\"",
    'nested="{a: 10}"',
    "nested={a: 10}",
    # whitespace and escapes in unquoted values
    "msg=hello world",
    "msg=    hello world    ",
    r"dir=job\{a\=1\,b\=2\,c\=3\}",
    "dir=A[B",
    'dir="A[B"',
    r"dir=A\[B",
    # primitives
    "name=oompa10",
    "name=loompa_12",
    "num=null",
    "num=NULL",
    "num=10",
    "num=-20",
    "num=0",
    "num=1_000_000",
    "num=3.14",
    "num=-10e6",
    "num=1e-1",
    "num=inf",
    "num=-inf",
    "num=nan",
    "flag=true",
    "flag=TrUe",
    "flag=False",
    "name=foo.bar",
    "dir=/root/${name}",
    "dir=${oc.env:USER,me}",
    # lists and dictionaries
    "lst=[1,2,3]",
    "lst=[a,[b,[c]]]",
    "lst=[]",
    "nested={a:10,b:20}",
    "nested={a:10,b:{c:30,d:40}}",
    "db={user:root,pass:1234}",
    "db={user:alice}",
    "db={}",
    # sweeps: refused by both (compose takes one value)
    "key=a,b",
    'key="a,b","c,d"',
    "key=[a,b],[c,d]",
    "key={a:10, b:20},{c:30,d:40}",
    "key=choice(mysql,postgresql)",
    "num=range(5)",
    "num=range(0,10,3.3)",
    "num=interval(1.0,5.0)",
    "key=glob(*)",
    "key=tag(log,interval(0,1))",
    "key=sort(1,3,2,reverse=true)",
    # functions that give one value
    "lst=sort(list=[1,3,2])",
    "lst=sort(list=[1,3,2], reverse=true)",
    "num=int(3.14)",
    "num=int(value=3.14)",
    "num=float(10)",
    "num=str(10)",
    "flag=bool(1)",
    "flag=bool(false)",
    "lst=int([1.5,2.5])",
    # the red-team's differences
    "msg=yes",
    "msg=on",
    "msg=0x10",
    "name=",
    "num=1,2,3",
]


# Where we differ on purpose (also in core/config/README.md).
DIFFERENCES = {
    'msg="{a:10} ${xyz}"': "interpolations resolve at load: one to a missing key fails first",
}


def _hydra_compose(config_dir: Path, override: str) -> Any:
    """``hydra.compose`` of base.yaml with one override (Hydra is initialized once, by the ``base`` fixture)."""
    from hydra import compose

    cfg = compose(config_name="base", overrides=[override])
    return OmegaConf.to_container(cfg, resolve=False)


def _ours(path: Path, override: str) -> Any:
    return OmegaConf.to_container(load_config(path, [override]), resolve=False)


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except ConfigError:
        return "refused"
    except Exception as exc:  # Hydra's refusals: ConfigCompositionException, OverrideParseException...
        if type(exc).__module__.startswith(("hydra", "omegaconf")):
            return "refused"
        raise


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from hydra import initialize_config_dir

    folder = tmp_path_factory.mktemp("hydra")
    (folder / "base.yaml").write_text(BASE)
    with initialize_config_dir(config_dir=str(folder), version_base="1.3"):
        yield folder


@pytest.fixture(autouse=True)
def _user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "tester")


@pytest.mark.parametrize("override", DOC_EXAMPLES)
def test_override_agrees_with_hydra_compose(base: Path, override: str) -> None:
    theirs = _outcome(_hydra_compose, base, override)
    ours = _outcome(_ours, base / "base.yaml", override)
    if override in DIFFERENCES:
        assert ours == "refused" and theirs != "refused", DIFFERENCES[override]
        return
    assert _same(ours, theirs), f"{override}: ours {ours!r}, hydra.compose {theirs!r}"


def test_the_comparison_can_tell_results_apart(base: Path) -> None:
    """The agreement above is not vacuous: both sides produce values, and a changed value is seen as different."""
    theirs = _hydra_compose(base, "db={user:alice}")
    assert theirs["db"] == {"driver": "mysql", "user": "alice", "pass": "???"}
    assert not _same(theirs, _ours(base / "base.yaml", "db={user:bob}"))
    assert sum(_outcome(_hydra_compose, base, o) == "refused" for o in DOC_EXAMPLES) < len(DOC_EXAMPLES) // 2


# -- where we differ from Hydra on purpose ---------------------------------------------------------------------


def test_our_extras_list_indices_and_nearest_key(base: Path) -> None:
    cfg = load_config(base / "base.yaml", ["lst[1]=20", "lst.2=30", "+lst[3]=4"])
    assert list(cfg.lst) == [1, 20, 30, 4]
    with pytest.raises(ConfigError, match=r"no key 'foo\.barr'.*did you mean foo\.bar\?"):
        load_config(base / "base.yaml", ["foo.barr=1"])
    assert _outcome(_hydra_compose, base, "lst[1]=20") == "refused"  # Hydra has no index syntax


def test_a_sweep_is_refused_with_a_clear_line(base: Path) -> None:
    with pytest.raises(ConfigError, match=r"'num=1,2,3' is a sweep of several values") as info:
        load_config(base / "base.yaml", ["num=1,2,3"])
    assert "quote" in info.value.line() and "\n" not in info.value.line()


def test_a_dict_value_merges_and_cannot_add_keys_without_plus(base: Path) -> None:
    cfg = load_config(base / "base.yaml", ["db={user: alice, pass: s3cret}"])
    assert OmegaConf.to_container(cfg.db) == {"driver": "mysql", "user": "alice", "pass": "s3cret"}
    with pytest.raises(ConfigError, match=r"no key 'db\.port'"):
        load_config(base / "base.yaml", ["db={port: 5432}"])
    assert load_config(base / "base.yaml", ["++db={port: 5432}"]).db.port == 5432


@pytest.mark.parametrize(
    "value",
    [["echo", "${oc.env:PATH}"], ["a b", "it's", "back\\", "x={x}", "[1,2]", "{a: 1}", "é", "\\${y}", "1,2"], [""]],
)
def test_literal_override_keeps_values_as_written(base: Path, value: list[str]) -> None:
    cfg = load_config(base / "base.yaml", [literal_override("lst", value)])
    assert OmegaConf.to_container(cfg, resolve=True)["lst"] == value


def test_parse_override_names_the_parts() -> None:
    assert parse_override("~a.b") == ("a.b", "~", None)
    assert parse_override("++x[0]=[1, 2]") == ("x.0", "++", [1, 2])
    with pytest.raises(ConfigError, match="is not key=value"):
        parse_override("justakey")
    with pytest.raises(ConfigError, match="not a dotted path"):
        parse_override("group/option=x")


def test_apply_overrides_on_a_plain_tree() -> None:
    tree = {"a": {"b": 1}, "l": [1]}
    assert apply_overrides(tree, ["a={b: 2}", "~l"], "t") == {"a": {"b": 2}}
