"""A run's trials in an Optuna storage (``runs/<name>/study.db``, SQLite).

Every finished trial is one Optuna trial: the decisions as ``params`` (so
``optuna-dashboard runs/<name>/study.db`` plots them), the reward (or accuracy and latency) as
``values``, and as user attributes the trial's index in ask order, the architecture's JSON,
accuracy, latency, cost and, for a failed candidate, the reason (state FAIL); a trial scored on
Ray also keeps the node it ran on (``node_id``), its ``attempts`` and why earlier attempts were
lost (``retried``). A trial is written in one transaction as soon as it finishes, so a killed
search loses nothing finished.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

from nas.errors import ResumeMismatch
from nas.search.reward import Reward
from nas.search.trial import TrialResult
from nas.spec import ArchSpec
from search_spaces.mobilenetv3 import BlockwiseSpace

__all__ = ["STUDY_NAME", "RunStore"]

# optuna is imported where it is used: it takes ~0.3 s to import (-X importtime), and the
# search's spawned worker processes import this module (through nas.search.runner) without
# ever storing a trial.

STUDY_NAME = "search"


class RunStore:
    """Read and append the trials of one run."""

    def __init__(self, path: str | Path, space: BlockwiseSpace, reward: Reward):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.space, self.reward = space, reward
        self.url = f"sqlite:///{self.path.resolve()}"
        self.study = optuna.create_study(storage=self.url, study_name=STUDY_NAME,
                                         directions=reward.directions, load_if_exists=True)
        if len(self.study.directions) != len(reward.directions):
            raise ResumeMismatch(f"{self.path} holds a study with {len(self.study.directions)} "
                                 f"objective(s); this search has {len(reward.directions)}")
        self.distributions = space.distributions()

    def write(self, result: TrialResult) -> None:
        import optuna

        attrs: dict[str, Any] = {
            "index": result.index, "spec": result.spec.to_json(),
            "latency_ms": result.latency_ms, "accuracy": result.accuracy,
            "reward": result.reward, "cost_seconds": result.cost_seconds,
            "reason": result.reason, "details": json.dumps(result.details, default=str),
        }
        if result.node_id or result.retried:  # scored on Ray
            attrs.update(node_id=result.node_id, attempts=result.attempts, retried=result.retried)
        trial = optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL if result.failed else
            optuna.trial.TrialState.COMPLETE,
            values=None if result.failed else self.reward.values(result.accuracy,
                                                                 result.latency_ms),
            params=self.space.params(result.spec), distributions=self.distributions,
            user_attrs=attrs)
        try:
            self.study.add_trial(trial)
        except Exception as exc:  # noqa: BLE001 - the storage wraps the cause in its own error
            cause = _root_cause(exc)
            if isinstance(cause, OSError) or "disk is full" in str(cause) \
                    or "disk I/O error" in str(cause):
                raise OSError(errno.ENOSPC if "full" in str(cause) else errno.EIO,
                              f"could not write trial {result.index} to {self.path}: {cause} "
                              f"(every trial finished before it is kept)") from exc
            raise

    def history(self) -> dict[int, TrialResult]:
        """Finished trials by index (the first record of an index wins)."""
        results: dict[int, TrialResult] = {}
        for trial in self.study.get_trials(deepcopy=False):
            attrs = trial.user_attrs
            if "index" not in attrs or attrs["index"] in results:
                continue
            results[attrs["index"]] = TrialResult(
                spec=ArchSpec.from_json(attrs["spec"]), index=attrs["index"],
                latency_ms=attrs["latency_ms"], accuracy=attrs["accuracy"],
                reward=attrs["reward"], cost_seconds=attrs["cost_seconds"],
                failed=trial.state.name == "FAIL", reason=attrs["reason"],
                details=json.loads(attrs.get("details") or "{}"),
                node_id=attrs.get("node_id", ""), attempts=attrs.get("attempts", 1),
                retried=attrs.get("retried", ""))
        return dict(sorted(results.items()))


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return exc
