"""Taking over the RUNNING trials of runners that died (see :mod:`core.hpo.liveness` for "dead").

Called under the storage's budget lock. Each such trial is re-tagged as this runner's; its job is adopted if this
runner's executor can still follow it (it may have finished meanwhile: the next poll collects it), otherwise the
trial FAILs as lost (and is re-queued when ``retry_lost`` is set). A RUNNING trial that no runner ever tagged (one
that died inside ``ask``, or a foreign Optuna process) is left alone until it is ``grace`` seconds old.

Example:
    >>> import optuna
    >>> from core.hpo.executor import ThreadExecutor
    >>> from core.hpo.wakeup import Wakeup
    >>> study = optuna.create_study()
    >>> orphan = study.ask()
    >>> study._storage.set_trial_system_attr(orphan._trial_id, RUNNER_KEY, "gone-runner")
    >>> executor = ThreadExecutor(lambda t: 0.0, 1, None, Wakeup())
    >>> adopted, lost = take_over(study, RunnerRecord.current(), grace=0.0, executor=executor)
    >>> adopted, [(t.number, f.reason) for t, f in lost]
    ([], [(0, 'lost: runner gone-runner died while it ran')])
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from core.hpo.executor import TrialExecutor
from core.hpo.liveness import RUNNER_KEY, RunnerRecord, owner_of, runner_records
from core.hpo.outcomes import Failure, Flight

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


def take_over(
    study: optuna.Study, me: RunnerRecord, grace: float, executor: TrialExecutor
) -> tuple[list[Flight], list[tuple[optuna.Trial, Failure]]]:
    """The dead runners' RUNNING trials: (flights this runner now follows, trials to record as lost)."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    trials = storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,))
    if not trials:
        return [], []
    records = runner_records(storage.get_study_system_attrs(study._study_id))
    now = time.time()
    adopted: list[Flight] = []
    lost: list[tuple[optuna.Trial, Failure]] = []
    for frozen in trials:
        owner = owner_of(frozen.system_attrs)
        if owner == me.runner_id:
            continue
        record = records.get(owner) if isinstance(owner, str) else None
        if record is None:
            started = frozen.datetime_start.timestamp() if frozen.datetime_start else now
            if now - started <= grace:
                continue
        elif not record.is_dead(now, grace, me):
            continue
        storage.set_trial_system_attr(frozen._trial_id, RUNNER_KEY, me.runner_id)
        trial = optuna.Trial(study, frozen._trial_id)
        flight = executor.adopt(trial, frozen)
        if flight is None:
            log.warning("trial %d: its runner %s is gone; recorded as FAIL (lost)", frozen.number, owner)
            lost.append((trial, Failure(f"lost: runner {owner} died while it ran", lost=True)))
        else:
            log.warning("trial %d: its runner %s is gone; adopted its job", frozen.number, owner)
            adopted.append(flight)
    return adopted, lost
