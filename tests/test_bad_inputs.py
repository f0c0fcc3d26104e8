"""The bad-input suite: every verb of every area, given inputs a hostile-but-fair user would try.

Each case runs the real CLI as a subprocess (``python -m core.cli ...``) and must end with exit status 2, exactly
one ``error:`` line on stderr, no traceback, and within a time bound (no hang). The cases run in parallel
subprocesses; the suite prints how many there are and which verbs they cover, and fails if a verb of
``kakehashi --help`` has no case.

A case that fails because of a defect in an area is marked ``xfail(strict=True, reason="<area>: <what>")``, so
fixing the defect turns the mark into a failure that asks for its removal.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import core
from core.jobs.processes import terminate_group

REPO = Path(core.__file__).resolve().parents[1]
TIME_BOUND_S = 90.0  # wall time of one case on a loaded 2-core machine: a refusal takes ~2 s, a hang forever
WORKERS = max(2, min(6, (os.cpu_count() or 2) * 2))

# bundled configs the cases start from (paths relative to the repository)
DEMO = "core/config/examples/demo.yaml"
QUADRATIC = "core/hpo/config/examples/quadratic.yaml"
BRANIN = "core/hpo/simulator/examples/branin.yaml"
ANALYTIC = "core/bridge/config/examples/analytic.yaml"
DIGITS = "core/train/config/digits.yaml"
SCENARIO = "apps/traffic/config/scenario.yaml"
FAMILY = "apps/traffic/config/family.yaml"
CALIBRATE = "apps/traffic/config/calibrate.yaml"
TRAFFIC_DEMO = "apps/traffic/config/demo.yaml"
AVSL_DATA = "apps/avsl/config/data.yaml"
AVSL_TRAIN = "apps/avsl/config/train.yaml"
AVSL_ANNOTATE = "apps/avsl/config/annotate.yaml"
QA_DATA = "apps/audioqa/config/data.yaml"
QA_SED = "apps/audioqa/config/sed.yaml"
QA_QA = "apps/audioqa/config/qa.yaml"
FRONT_DATA = "apps/robots/frontend/config/data.yaml"
FRONT_TRAIN = "apps/robots/frontend/config/train.yaml"
IMITATION = "apps/robots/imitation/config/imitation.yaml"


@dataclass(frozen=True)
class Case:
    """One bad input: the verb it exercises, the command line (``{ws}`` is the workspace; bundled configs are
    named relative to the repository), and, for a known defect of an area, the reason it is expected to fail."""

    verb: str
    args: tuple[str, ...]
    xfail: str = ""
    env: tuple[tuple[str, str], ...] = field(default=())

    @property
    def id(self) -> str:
        text = " ".join(self.args).replace("{ws}/", "")
        return re.sub(r"\s+", " ", text)[:110]


def case(verb: str, *args: str, xfail: str = "", env: dict[str, str] | None = None) -> Case:
    return Case(verb, tuple(args), xfail, tuple((env or {}).items()))


def config_file_cases(verb: str, *extra: str) -> list[Case]:
    """The file-level mistakes every config-taking verb must turn into one line."""
    return [
        case(verb, "{ws}/absent.yaml", *extra),
        case(verb, "{ws}/folder", *extra),
        case(verb, "{ws}/syntax.yaml", *extra),
        case(verb, "{ws}/bomb.yaml", *extra),
        case(verb, "{ws}/deep.yaml", *extra),
    ]


# -- the cases ------------------------------------------------------------------------------------------------

CASES: list[Case] = [
    # config show: files, YAML, bounds, overrides
    *config_file_cases("config show"),
    case("config show", "{ws}/list.yaml"),
    case("config show", "{ws}/duplicate.yaml"),
    case("config show", "{ws}/binary.yaml"),
    case("config show", "{ws}/huge.yaml"),
    case("config show", "{ws}/flow_deep.yaml"),
    case("config show", "{ws}/multi_document.yaml"),
    case("config show", "{ws}/python_tag.yaml"),
    case("config show", "{ws}/unhashable_key.yaml"),
    case("config show", "{ws}/eval_round.yaml"),
    case("config show", "{ws}/eval_power.yaml"),
    case("config show", "{ws}/eval_call.yaml"),
    case("config show", "{ws}/eval_huge_literal.yaml"),
    case("config show", "{ws}/cycle_a.yaml"),
    case("config show", "{ws}/base_missing.yaml"),
    case("config show", "{ws}/base_folder.yaml"),
    case("config show", "{ws}/base_not_a_path.yaml"),
    case("config show", "{ws}/inherit_up.yaml"),
    case("config show", "{ws}/inherit_missing.yaml"),
    case("config show", "{ws}/interpolation_missing.yaml"),
    case("config show", "{ws}/interpolation_cycle.yaml"),
    case("config show", "{ws}/resolver_unknown.yaml"),
    case("config show", "{ws}/pkg_missing.yaml"),
    case("config show", "{ws}/schema_missing.yaml"),
    case("config show", "~no_such_user_kh/x.yaml"),
    case("config show", DEMO, "data.nosie=1"),
    case("config show", DEMO, "data.noise=1,2,3"),
    case("config show", DEMO, "data.noise=range(1,3)"),
    case("config show", DEMO, "data.noise"),
    case("config show", DEMO, "=1"),
    case("config show", DEMO, "data.noise=[1"),
    case("config show", DEMO, "+data.noise=2"),
    case("config show", DEMO, "~data.nope"),
    case("config show", DEMO, "~data.noise=3"),
    case("config show", DEMO, "data/noise=1"),
    case("config show", DEMO, "data.noise.x=1"),
    case("config show", DEMO, "models.ridge._args_[9]=1"),
    case("config show", DEMO, "data={nosie: 1}"),
    case("config show", DEMO, "x=" + "[" * 200 + "]" * 200),
    case("config show", DEMO, "--bogus"),
    case("config show", DEMO, "seed=${eval:'9**9**9'}"),
    # config get
    case("config get", DEMO, "data.nope"),
    case("config get", "{ws}/absent.yaml", "data"),
    case("config get", DEMO, "data", "data.nosie=2"),
    case("config get", DEMO),
    # config check-git
    *config_file_cases("config check-git"),
    case("config check-git", DEMO, "data.nosie=1"),
    # config run
    *config_file_cases("config run"),
    case("config run", "{ws}/target_missing.yaml", "--run-dir", "{ws}/runs/a"),
    case("config run", "{ws}/target_baddep.yaml", "--run-dir", "{ws}/runs/b"),
    case("config run", "{ws}/target_blocklisted.yaml", "--run-dir", "{ws}/runs/c"),
    case("config run", "{ws}/target_args_int.yaml", "--run-dir", "{ws}/runs/d"),
    case("config run", "{ws}/target_partial_str.yaml", "--run-dir", "{ws}/runs/e"),
    case("config run", "{ws}/target_bad_kwarg.yaml", "--run-dir", "{ws}/runs/f"),
    case("config run", DEMO, "--key", "nope", "--run-dir", "{ws}/runs/g"),
    case("config run", DEMO, "--run-dir", "{ws}/a_file"),
    case("config run", DEMO, "--run-dir", "/dev/full/run"),
    case("config run", DEMO, "--run-dir", "/proc/kh-run"),
    case("config run", DEMO, "run.folds=many", "--run-dir", "{ws}/runs/h"),
    # job local (and the other backends: the same front door)
    case("job local", "cpu", "{ws}/logs/a.log"),
    case("job local", "cpu", "--timeout", "-1", "{ws}/logs/b.log", "--", "true"),
    case("job local", "cpu", "--walltime", "forever", "{ws}/logs/c.log", "--", "true"),
    case("job local", "cpu", "--n-tasks", "0", "{ws}/logs/d.log", "--", "true"),
    case("job local", "cpu", "--n-tasks", "-3", "{ws}/logs/e.log", "--", "true"),
    case("job local", "cpu", "--n-tasks", "many", "{ws}/logs/f.log", "--", "true"),
    case("job local", "cpu", "--n-tasks-per-proc", "0", "{ws}/logs/g.log", "--", "true"),
    case("job local", "cpu", "{ws}/folder", "--", "true"),
    case("job local", "cpu", "/dev/full/x.log", "--", "true"),
    case("job local", "cpu", "{ws}/a_file/x.log", "--", "true"),
    case("job local", "quantum", "{ws}/logs/h.log", "--", "true"),
    case("job local", "cpu", "--env", "NOEQUALS", "{ws}/logs/i.log", "--", "true"),
    case(
        "job local",
        "cpu",
        "--option",
        "bogus=1",
        "{ws}/logs/j.log",
        "--",
        "true",
    ),
    case("job local", "cpu", "--config", "{ws}/absent.yaml", "{ws}/logs/k.log", "--", "true"),
    case("job local", "cpu", "--config", "{ws}/syntax.yaml", "{ws}/logs/l.log", "--", "true"),
    case("job local", "cpu", "--cwd", "{ws}/absent_dir", "{ws}/logs/m.log", "--", "true"),
    case("job slurm", "cpu", "--n-tasks", "0", "{ws}/logs/n.log", "--", "true"),
    case("job slurm", "cpu", "--walltime", "1:99:99:99", "{ws}/logs/o.log", "--", "true"),
    case("job slurm", "cpu", "--config", "{ws}/bomb.yaml", "{ws}/logs/p.log", "--", "true"),
    case("job sge", "cpu", "--n-tasks", "-1", "{ws}/logs/q.log", "--", "true"),
    case("job sge", "quantum", "{ws}/logs/r.log", "--", "true"),
    case("job pbs", "cpu", "--n-gpus", "-1", "{ws}/logs/s.log", "--", "true"),
    case("job pbs", "cpu", "--config", "{ws}/deep.yaml", "{ws}/logs/t.log", "--", "true"),
    # job status / cancel / logs
    case("job status", "{ws}/logs/.kakehashi/nothing.here"),
    case("job status", "--backend", "local", "no-such-job"),
    case("job status", "--backend", "quantum", "1"),
    case("job cancel", "--backend", "local", "no-such-job"),
    case("job cancel", "{ws}/absent_dir/job"),
    case("job logs", "--backend", "local", "no-such-job"),
    case("job logs", "--backend", "local", "no-such-job", "--tail", "-5"),
    case("job logs", "--backend", "local", "no-such-job", "--element", "many"),
    # hpo optimize
    *config_file_cases("hpo optimize"),
    case("hpo optimize", QUADRATIC, "n_trails=30", "--run-dir", "{ws}/runs/hpo-a"),
    case("hpo optimize", QUADRATIC, "n_trials=-1", "--run-dir", "{ws}/runs/hpo-b"),
    case("hpo optimize", QUADRATIC, "n_trials=many", "--run-dir", "{ws}/runs/hpo-c"),
    case("hpo optimize", QUADRATIC, "n_trials=1,2,3", "--run-dir", "{ws}/runs/hpo-d"),
    case("hpo optimize", QUADRATIC, "params.x.low=.nan", "--run-dir", "{ws}/runs/hpo-e"),
    case("hpo optimize", QUADRATIC, "params.x.low=5", "params.x.high=1", "--run-dir", "{ws}/runs/hpo-f"),
    case("hpo optimize", QUADRATIC, "study.storage={ws}/folder", "--run-dir", "{ws}/runs/hpo-g"),
    case("hpo optimize", QUADRATIC, "study.storage={ws}/user_file.yaml", "--run-dir", "{ws}/runs/hpo-h"),
    case("hpo optimize", QUADRATIC, "--run-dir", "/dev/full/run"),
    case("hpo optimize", QUADRATIC, "study.directions=[sideways]", "--run-dir", "{ws}/runs/hpo-i"),
    case("hpo optimize", QUADRATIC, "study.sampler._target_=nosuch.Sampler", "--run-dir", "{ws}/runs/hpo-j"),
    case("hpo optimize", "params.x=[0,1]", "n_trials=2", "--run-dir", "{ws}/runs/hpo-k"),
    # hpo report / trials
    case("hpo report", "{ws}/absent_dir"),
    case("hpo report", "{ws}/a_file"),
    case("hpo report", "{ws}/folder"),
    case("hpo report", "{ws}/folder", "--storage", "sqlite:////{ws}/new_dir/x.db"),
    case("hpo trials", "{ws}/absent_dir"),
    case("hpo trials", "{ws}/folder", "--storage", "{ws}/user_file.yaml"),
    case("hpo trials", "{ws}/folder", "--state", "BOGUS"),
    # hpo simulate
    *config_file_cases("hpo simulate"),
    case("hpo simulate", BRANIN, "n_trials=-5", "--run-dir", "{ws}/runs/sim-a"),
    case("hpo simulate", BRANIN, "n_workrs=4", "--run-dir", "{ws}/runs/sim-b"),
    case("hpo simulate", BRANIN, "n_workers=0", "--run-dir", "{ws}/runs/sim-c"),
    case(
        "hpo simulate",
        BRANIN,
        "--time-scale",
        "-1",
        "--run-dir",
        "{ws}/runs/sim-d",
    ),
    # bridge
    *config_file_cases("bridge run"),
    case("bridge run", ANALYTIC, "scenarios.n_train=many", "workspace={ws}/runs/br-a"),
    case("bridge run", ANALYTIC, "scenarios.n_trian=3", "workspace={ws}/runs/br-b"),
    case("bridge run", ANALYTIC, "+bogus_key=1", "workspace={ws}/runs/br-c"),
    case("bridge run", ANALYTIC, "scenarios.mapping=curvy", "workspace={ws}/runs/br-f"),
    case("bridge run", ANALYTIC, "scenarios.dim=2.5", "workspace={ws}/runs/br-g"),
    case("bridge run", ANALYTIC, "+scenarios.n_tests=3", "workspace={ws}/runs/br-h"),
    case("bridge run", ANALYTIC, "models.cheap.jobs.backend=cloud", "workspace={ws}/runs/br-i"),
    case("bridge run", ANALYTIC, "+models.cheap.sampler.n_startup_trials=5", "workspace={ws}/runs/br-j"),
    case("bridge run", ANALYTIC, "+models.expensive.command=[sim]", "workspace={ws}/runs/br-k"),
    case("bridge run", ANALYTIC, "models.cheap.params.xi0=[3,-3]", "workspace={ws}/runs/br-l"),
    case("bridge run", ANALYTIC, "fit.models=[ridge,lasso]", "workspace={ws}/runs/br-m"),
    case("bridge run", ANALYTIC, "evaluate.refine_sampler={_target_:nosuch.Sampler}", "workspace={ws}/runs/br-n"),
    case(
        "bridge run",
        ANALYTIC,
        "models.expensive.method=gauss_newton",
        "scenarios.n_train=2",
        "scenarios.n_test=1",
        "models.cheap.n_trials=2",
        "workspace={ws}/runs/br-o",
    ),
    case("bridge run", ANALYTIC, "workspace=/dev/full/ws"),
    case("bridge run", ANALYTIC, "fit.targets=guessed", "workspace={ws}/runs/br-p"),
    case("bridge study", ANALYTIC, "--scenario", "nosuch", "--role", "cheap", "workspace={ws}/runs/br-d"),
    case("bridge study", ANALYTIC, "--scenario", "train-000", "--role", "medium"),
    case("bridge study", "{ws}/absent.yaml", "--scenario", "train-000", "--role", "cheap"),
    case("bridge make-fragment", "extra"),
    case("bridge prepare", "{ws}/syntax.yaml"),
    case("bridge prepare", ANALYTIC, "scenarios.n_train=-2", "workspace={ws}/runs/br-e"),
    case("bridge optimize", "{ws}/absent.yaml"),
    case("bridge optimize", ANALYTIC, "workspace={ws}/a_file"),
    case("bridge collect", "{ws}/bomb.yaml"),
    case("bridge collect", ANALYTIC, "workspace={ws}/runs/never-prepared"),
    case("bridge fit", "{ws}/folder"),
    case("bridge fit", ANALYTIC, "workspace={ws}/runs/never-prepared"),
    case("bridge evaluate", "{ws}/deep.yaml"),
    case("bridge evaluate", ANALYTIC, "workspace={ws}/runs/never-prepared"),
    case("bridge report", "{ws}/absent.yaml"),
    case("bridge report", ANALYTIC, "workspace={ws}/runs/never-prepared"),
    # train
    *config_file_cases("train fit"),
    case("train fit", DIGITS, "trainer.max_epochs=many"),
    case("train fit", DIGITS, "trainer.max_epochs=-5"),
    case("train fit", DIGITS, "trainer.max_epoch=3"),
    case("train fit", DIGITS, "seed=1.5"),
    case("train fit", DIGITS, "trainer.num_nodes=0"),
    case("train fit", DIGITS, "trainer.gradient_clip_val=.nan"),
    case("train fit", DIGITS, "--resume", "{ws}/absent.ckpt", "--run-dir", "{ws}/runs/t-a"),
    case("train fit", DIGITS, "--run-dir", "{ws}/a_file"),
    case("train fit", DIGITS, "task._target_=nosuch.Task", "--run-dir", "{ws}/runs/t-b"),
    case("train validate", "{ws}/absent_dir"),
    case("train validate", "{ws}/folder", "--ckpt", "best"),
    case("train test", "{ws}/a_file"),
    case("train test", "{ws}/folder", "--ckpt", "last", "trainer.devices=1"),
    case("train predict", "{ws}/absent_dir"),
    case("train predict", "{ws}/folder"),
    case("train merge", "{ws}/absent_dir", "--top-k", "3"),
    case("train merge", "{ws}/folder", "--top-k", "0"),
    case("train merge", "{ws}/folder", "--top-k", "many"),
    case("train infer", "{ws}/absent_dir", "one", "{ws}/x.npy", "{ws}/y.npy"),
    case("train infer", "{ws}/folder", "sideways"),
    # traffic
    *config_file_cases("traffic scenario"),
    case("traffic scenario", SCENARIO, "scenario.network.size=big"),
    case("traffic scenario", SCENARIO, "network.size=big"),
    case("traffic scenario", SCENARIO, "network.sise=5"),
    case("traffic scenario", FAMILY, "scenarios.n_train=many"),
    case("traffic scenario", FAMILY, "+scenarios.n_jbos=1"),
    case("traffic scenario", FAMILY, "scenarios.network=5"),
    case("traffic calibrate", "{ws}/absent.yaml"),
    case("traffic calibrate", CALIBRATE, "n_trials=-1", "run_dir={ws}/runs/tc-a"),
    case("traffic calibrate", CALIBRATE, "model=sideways", "run_dir={ws}/runs/tc-b"),
    case("traffic calibrate", CALIBRATE, "n_trails=3", "run_dir={ws}/runs/tc-c"),
    case("traffic identify", "{ws}/absent.yaml"),
    case("traffic identify", "apps/traffic/config/grid.yaml", "--seeds", "1", "--scenario", "train-000"),
    case("traffic identify", "apps/traffic/config/grid.yaml", "--scenario", "nosuch-999"),
    case("traffic identify", "apps/traffic/config/grid.yaml", "--seeds", "many"),
    case("traffic bridge", "{ws}/syntax.yaml"),
    case("traffic bridge", TRAFFIC_DEMO, "scenarios.n_train=many", "workspace={ws}/runs/tb-a"),
    case("traffic bridge", TRAFFIC_DEMO, "score.fresh_seeds=0", "workspace={ws}/runs/tb-c"),
    case("traffic bridge", TRAFFIC_DEMO, "+score.fresh_seed=2", "workspace={ws}/runs/tb-d"),
    case("traffic bridge", TRAFFIC_DEMO, "bogus=1", "workspace={ws}/runs/tb-b"),
    # avsl
    case("avsl make-data", "{ws}/absent.yaml"),
    case(
        "avsl make-data",
        AVSL_DATA,
        "splits.train.n=-1",
        "out_dir={ws}/runs/av-a",
    ),
    case("avsl make-data", AVSL_DATA, "out_dir=/dev/full/data"),
    case("avsl make-data", AVSL_DATA, "scene=3", "out_dir={ws}/runs/av-d"),  # a scalar where a mapping belongs
    case("avsl make-data", AVSL_DATA, "splits.train=5", "out_dir={ws}/runs/av-e"),
    case("avsl train", "{ws}/syntax.yaml"),
    case("avsl train", AVSL_TRAIN, "trainer.max_epochs=many"),
    case("avsl eval", "{ws}/absent_dir"),
    case("avsl eval", "{ws}/folder", "--limit", "-1"),
    case("avsl infer", "{ws}/absent_dir", "{ws}/absent.h5", "--out", "{ws}/runs/av-b"),
    case("avsl annotate", "{ws}/absent.yaml"),
    case("avsl annotate", AVSL_ANNOTATE, "teacher={ws}/absent_dir", "out_dir={ws}/runs/av-c"),
    case("avsl node", "{ws}/absent_dir"),
    # audioqa
    case("audioqa make-data", "{ws}/bomb.yaml"),
    case("audioqa make-data", QA_DATA, "splits.train.n_clips=-5", "out_dir={ws}/runs/qa-a"),
    case("audioqa make-data", QA_DATA, "scene=[1]", "out_dir={ws}/runs/qa-b"),  # a list where a mapping belongs
    case("audioqa train-sed", "{ws}/absent.yaml"),
    case("audioqa train-sed", QA_SED, "trainer.max_epochs=many"),
    case("audioqa train-qa", "{ws}/deep.yaml"),
    case("audioqa train-qa", QA_QA, "trainer.max_epochs=-7"),
    case("audioqa eval", "{ws}/absent_dir"),
    case("audioqa eval", "{ws}/folder", "--split", "nosuch"),
    case(
        "audioqa ask",
        "{ws}/absent_dir",
        "{ws}/absent.wav",
        "what happened",
    ),
    case(
        "audioqa ask",
        "{ws}/folder",
        "{ws}/binary.yaml",
        "what happened",
    ),
    # robots
    case("robots make-frontend-data", "{ws}/absent.yaml"),
    case(
        "robots make-frontend-data",
        FRONT_DATA,
        "splits.train.n=-1",
        "out_dir={ws}/runs/rb-a",
    ),
    case("robots make-frontend-data", FRONT_DATA, "splits=[1]", "out_dir={ws}/runs/rb-c"),
    case("robots train-frontend", "{ws}/syntax.yaml"),
    case("robots train-frontend", FRONT_TRAIN, "trainer.max_epochs=many"),
    case("robots enhance", "--model", "{ws}/absent_dir", "{ws}/absent.wav", "{ws}/out.wav"),
    case("robots enhance", "--model", "{ws}/folder", "{ws}/binary.yaml", "{ws}/out.wav"),
    case("robots frontend-node", "--model", "{ws}/absent_dir"),
    case("robots record", "{ws}/absent.yaml"),
    case(
        "robots record",
        IMITATION,
        "record.episodes=-1",
        "record.out={ws}/runs/rb-b.h5",
    ),
    case("robots train-imitation", "{ws}/bomb.yaml"),
    case(
        "robots train-imitation",
        IMITATION,
        "trainer.max_epochs=many",
        "--run-dir",
        "{ws}/runs/rb-c",
    ),
    case("robots evaluate", "{ws}/absent.yaml"),
    case("robots evaluate", IMITATION, "evaluate.policy=sideways", "evaluate.episodes=1"),
    case(
        "robots evaluate",
        IMITATION,
        "evaluate.episodes=-2",
    ),
]


# -- the workspace the cases read ----------------------------------------------------------------------------

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
)

FILES = {
    "syntax.yaml": "a: [1, 2\nb: 3\n",
    "list.yaml": "- 1\n- 2\n",
    "duplicate.yaml": "a: 1\na: 2\n",
    "bomb.yaml": ALIAS_BOMB,
    "deep.yaml": "a:\n" + "".join(" " * i + "- \n" for i in range(1, 4000)),
    "flow_deep.yaml": "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "multi_document.yaml": "a: 1\n---\nb: 2\n",
    "python_tag.yaml": "a: !!python/object/apply:os.system [true]\n",
    "unhashable_key.yaml": "[1, 2]: x\n",
    "eval_round.yaml": "x: ${eval:'round(7, -10**9)'}\n",
    "eval_power.yaml": "x: ${eval:'9**9**9'}\n",
    "eval_call.yaml": 'x: ${eval:\'__import__("os").system("true")\'}\n',
    "eval_huge_literal.yaml": "x: ${eval:" + "9" * 1500 + "}\n",
    "cycle_a.yaml": "_base_: cycle_b.yaml\na: 1\n",
    "cycle_b.yaml": "_base_: cycle_a.yaml\nb: 1\n",
    "base_missing.yaml": "_base_: nowhere.yaml\n",
    "base_folder.yaml": "_base_: folder\n",
    "base_not_a_path.yaml": "_base_: {a: 1}\n",
    "inherit_up.yaml": "a: {b: {_inherit_: '${.....x}'}}\nx: {y: 1}\n",
    "inherit_missing.yaml": "a: {_inherit_: '${nowhere}'}\n",
    "interpolation_missing.yaml": "a: ${nowhere.at_all}\n",
    "interpolation_cycle.yaml": "a: ${b}\nb: ${a}\n",
    "resolver_unknown.yaml": "a: ${nosuchresolver:1}\n",
    "pkg_missing.yaml": "a: ${pkg:no.such.package}\n",
    "schema_missing.yaml": "_schema_: no.such.Schema\na: 1\n",
    "target_missing.yaml": "run: {_target_: no_such_module_kh.function}\n",
    "target_baddep.yaml": "run: {_target_: kh_baddep.function}\n",
    "target_blocklisted.yaml": "run: {_target_: os.system, _args_: ['true']}\n",
    "target_args_int.yaml": "run: {_target_: fractions.Fraction, _args_: 5}\n",
    "target_partial_str.yaml": "run: {_target_: fractions.Fraction, _partial_: 'yes'}\n",
    "target_bad_kwarg.yaml": "run: {_target_: fractions.Fraction, numerater: 1}\n",
    "user_file.yaml": "mine: precious\n",
    "kh_baddep.py": "import kh_dependency_that_is_not_installed\n\ndef function():\n    return 1\n",
    "a_file": "not a folder\n",
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("bad-inputs")
    for name, text in FILES.items():
        (ws / name).write_text(text)
    (ws / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01 not utf-8 \x80\x81")
    with open(ws / "huge.yaml", "wb") as handle:  # sparse: 17 MB that take no disk
        handle.truncate(17 * 1024 * 1024)
    (ws / "folder").mkdir()
    (ws / "logs").mkdir()
    (ws / "runs").mkdir()
    return ws


def _absolute(arg: str) -> str:
    """A bundled config named relative to the repository, made absolute (the cases run in the workspace)."""
    try:
        bundled = not arg.startswith(("/", "-", "~")) and (REPO / arg).is_file()
    except OSError:  # a name too long to be a file
        bundled = False
    return str(REPO / arg) if bundled else arg


def _run(item: Case, ws: Path) -> tuple[int, str, float]:
    args = [*item.verb.split(), *(_absolute(a.replace("{ws}", str(ws))) for a in item.args)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ws), str(REPO)]), "COLUMNS": "200"}
    env.update(dict(item.env))
    start = time.monotonic()
    with subprocess.Popen(
        [sys.executable, "-m", "core.cli", *args],
        cwd=ws,  # whatever a case writes by mistake lands in the workspace
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,  # on a timeout the case's whole tree goes (a data writer's workers too)
    ) as process:
        try:
            _, stderr = process.communicate(timeout=TIME_BOUND_S)
        except subprocess.TimeoutExpired:
            terminate_group(process.pid, grace=2, leader=process)
            return -1, f"(no exit within {TIME_BOUND_S:.0f} s)", time.monotonic() - start
    return process.returncode, stderr, time.monotonic() - start


@pytest.fixture(scope="module")
def outcomes(workspace: Path, request: pytest.FixtureRequest) -> Iterator[dict[Case, Future[tuple[int, str, float]]]]:
    """Start every selected case at once in parallel subprocesses; each test waits only for its own."""
    selected = [
        item.callspec.params["item"]
        for item in request.session.items
        if item.name.startswith("test_bad_input_is_one_error_line")
        and getattr(item, "module", None) is request.module  # other modules have tests of the same name
        and hasattr(item, "callspec")
    ]
    start, cpu = time.monotonic(), _children_cpu()
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    futures = {item: pool.submit(_run, item, workspace) for item in selected}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)
    print(
        f"\nbad-input suite: {len(selected)} cases in {time.monotonic() - start:.0f} s wall, "
        f"{_children_cpu() - cpu:.0f} s CPU in their subprocesses, {WORKERS} at a time",
        file=sys.stderr,
    )
    report = os.environ.get("KH_BAD_INPUTS_REPORT")  # a table of what each case printed, for reading
    if report:
        rows = []
        for item, future in futures.items():
            if future.done() and not future.cancelled() and future.exception() is None:
                code, stderr, seconds = future.result()
                rows.append(f"{item.verb}\t{item.id}\t{code}\t{seconds:.1f}\t{_last_error(stderr)}")
        Path(report).write_text("\n".join(rows) + "\n", encoding="utf-8")


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _last_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    return errors[-1] if errors else (stderr.strip().splitlines() or ["(nothing)"])[-1]


def _params() -> Iterator[object]:
    for item in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=item.xfail)] if item.xfail else []
        yield pytest.param(item, id=f"{item.verb}: {item.id}", marks=marks)


@pytest.mark.parametrize("item", list(_params()))
def test_bad_input_is_one_error_line(item: Case, outcomes: dict[Case, Future[tuple[int, str, float]]]) -> None:
    code, stderr, seconds = outcomes[item].result()
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    report = f"exit {code} after {seconds:.1f} s; stderr:\n{stderr[-3000:]}"
    assert code != -1, f"no exit within {TIME_BOUND_S:.0f} s (a hang); {report}"
    assert "Traceback" not in stderr, report
    assert code == 2, report
    assert len(errors) == 1, report
    assert "argument AREA" not in errors[0] and "argument VERB" not in errors[0], f"the case misses its verb; {report}"


def _verbs() -> set[str]:
    from core.cli import build_parser

    verbs: set[str] = set()
    parser = build_parser()
    areas = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for area, area_parser in areas.choices.items():  # type: ignore[attr-defined]
        sub = [a for a in area_parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not sub:  # an unavailable area: its one verb is the area itself
            verbs.add(area)
            continue
        verbs.update(f"{area} {verb}" for verb in sub[0].choices)
    return verbs


def test_the_suite_covers_every_verb_with_at_least_150_inputs() -> None:
    verbs = _verbs()
    covered = {item.verb for item in CASES}
    by_verb = {verb: sum(item.verb == verb for item in CASES) for verb in sorted(verbs)}
    print(
        f"\nbad-input suite: {len(CASES)} inputs over {len(covered)} verbs; {sum(bool(c.xfail) for c in CASES)} "
        f"known defects marked xfail",
        file=sys.stderr,
    )
    assert len(CASES) >= 150
    assert not verbs - covered, f"verbs without a bad input: {sorted(verbs - covered)}"
    assert all(count >= 1 for count in by_verb.values())
    assert len(set(CASES)) == len(CASES), "duplicate cases"
