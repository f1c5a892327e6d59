"""Search strategies behind one small ask/tell interface.

A strategy proposes architectures (``ask``) and learns from their results (``tell``). It never
builds a model or times anything: the runner evaluates, the latency predictor is only reached
through the optional ``constraint``. Every strategy is deterministic given its seed and the
results it was told, which is what lets the runner resume a search by replaying its history.

* ``random``: uniform over the decisions;
* ``evolution``: regularized (aging) evolution with Once-for-All's defaults: population 100,
  parents from the best 25%, half the children by mutation and half by crossover;
* ``tpe`` and ``nsga2``: Optuna's samplers over one categorical distribution per decision;
* ``rl`` and ``ppo``: MnasNet's controller, an LSTM that emits the decisions one after the
  other, trained with REINFORCE (or PPO's clipped objective) against a moving-average baseline.

Every strategy can start from a seed architecture (``seed_arch``): it is the first candidate
and biases what follows (evolution mutates it, the controller's initial policy prefers it,
Optuna samplers get it enqueued), as MobileNetV3-Large's search started from MnasNet-A1.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from nas.errors import StrategyError
from nas.search.trial import TrialResult
from nas.spec import ArchSpec
from nas.threads import torch_threads
from search_spaces.mobilenetv3 import BlockwiseSpace

__all__ = ["STRATEGIES", "Evolution", "OptunaStrategy", "RLController", "RandomSearch",
           "Strategy", "StrategyError", "make_strategy", "spec_key"]

# (spec) -> violation; <= 0 means feasible (Optuna's constraints convention).
Constraint = Callable[[ArchSpec], float]

# optuna (~0.3 s to import, -X importtime) is imported by the strategies that use it: the
# search's spawned worker processes import this module (through nas.search.runner) and never do.
MAX_TRIES = 200


def spec_key(spec: ArchSpec) -> tuple:
    """Identity of an architecture, ignoring its name."""
    return spec.stem, spec.blocks, spec.head


class Strategy(ABC):
    """Ask/tell interface shared by every search strategy."""

    name = ""

    def __init__(self, space: BlockwiseSpace, *, seed: int = 0,
                 seed_arch: ArchSpec | None = None, constraint: Constraint | None = None,
                 multi_objective: bool = False):
        if seed_arch is not None and not space.contains(seed_arch):
            raise StrategyError(f"the seed architecture {seed_arch.name!r} is not in the "
                                f"{space.name} search space")
        self.space, self.seed, self.seed_arch = space, seed, seed_arch
        self.constraint, self.multi_objective = constraint, multi_objective
        self.rng = np.random.default_rng(seed)
        self.asked = 0
        self._seen: set[tuple] = set()

    @abstractmethod
    def _propose(self) -> ArchSpec:
        """One candidate (may repeat or violate the constraint; ``ask`` filters)."""

    def tell(self, spec: ArchSpec, result: TrialResult) -> None:  # noqa: B027 - optional
        """Learn from a finished (or failed) candidate."""

    def feasible(self, spec: ArchSpec) -> bool:
        return self.constraint is None or self.constraint(spec) <= 0

    def _acceptable(self, spec: ArchSpec) -> bool:
        return spec_key(spec) not in self._seen and self.feasible(spec)

    def ask(self) -> ArchSpec:
        """The next candidate: the seed architecture first, then new feasible proposals (an
        infeasible or already-asked proposal is drawn again, up to MAX_TRIES times)."""
        if self.asked == 0 and self.seed_arch is not None:
            spec = self.seed_arch
            self._on_seed(spec)
        else:
            for _ in range(MAX_TRIES):
                spec = self._propose()
                if self._acceptable(spec):
                    break
        self._seen.add(spec_key(spec))
        self.asked += 1
        return spec

    def _on_seed(self, spec: ArchSpec) -> None:  # noqa: B027 - optional hook
        """Hook: the seed architecture is being asked."""


class RandomSearch(Strategy):
    """Uniform random choice of every decision."""

    name = "random"

    def _propose(self) -> ArchSpec:
        return self.space.decode(self.space.sample_vector(self.rng))


class Evolution(Strategy):
    """Regularized evolution (Real et al.) with Once-for-All's ratios.

    The first ``population`` candidates are random (or mutations of the seed architecture);
    afterwards each child is a mutation of one parent (probability ``mutation_ratio``) or a
    uniform crossover of two, the parents drawn from the best ``parent_ratio`` of the current
    population; the oldest member leaves when a new one joins.
    """

    name = "evolution"

    def __init__(self, space: BlockwiseSpace, *, population: int = 100,
                 parent_ratio: float = 0.25, mutation_ratio: float = 0.5,
                 mutate_prob: float = 0.1, stage_prob: float = 0.0, **kwargs: Any):
        super().__init__(space, **kwargs)
        if population < 2 or not 0 < parent_ratio <= 1 or not 0 <= mutation_ratio <= 1 \
                or not 0 <= stage_prob <= 1:
            raise StrategyError("evolution needs population >= 2, parent_ratio in (0, 1] and "
                                "mutation_ratio and stage_prob in [0, 1]")
        self.population_size, self.parent_ratio = population, parent_ratio
        self.mutation_ratio, self.mutate_prob = mutation_ratio, mutate_prob
        self.stage_prob = stage_prob  # stage moves (BlockwiseSpace.mutate); 0: OFA's mutation
        self.population: deque[tuple[ArchSpec, float]] = deque()

    def _propose(self) -> ArchSpec:
        if self.asked < self.population_size or len(self.population) < 2:
            if self.seed_arch is not None:
                return self._mutant(self.seed_arch)
            return self.space.decode(self.space.sample_vector(self.rng))
        ranked = sorted(self.population, key=lambda member: -member[1])
        parents = ranked[:max(2, math.ceil(self.parent_ratio * len(ranked)))]
        if self.rng.random() < self.mutation_ratio:
            return self._mutant(parents[int(self.rng.integers(len(parents)))][0])
        first, second = self.rng.choice(len(parents), size=2, replace=False)
        return self.space.crossover(parents[int(first)][0], parents[int(second)][0], self.rng)

    def _mutant(self, parent: ArchSpec) -> ArchSpec:
        """A mutation of ``parent``; under a constraint that the mutation breaks, a feasible
        descendant: mutations of it are taken one after another, each kept if it is nearer
        the constraint, until one meets it (or MAX_TRIES steps). A parent far above a hard
        budget (the seed architecture, when the budget is a share of its latency) then still
        has feasible children that differ from it in many decisions at once: one mutation of
        V3-Small lands within 0.85x its latency about once in 700 draws."""
        spec = self.space.mutate(parent, self.rng, self.mutate_prob, stage_prob=self.stage_prob)
        if self.constraint is None:
            return spec
        violation = self.constraint(spec)
        for _ in range(MAX_TRIES):
            if violation <= 0:
                break
            step = self.space.mutate(spec, self.rng, self.mutate_prob,
                                     stage_prob=self.stage_prob)
            if (closer := self.constraint(step)) < violation:
                spec, violation = step, closer
        return spec

    def tell(self, spec: ArchSpec, result: TrialResult) -> None:
        if not result.ok:
            return  # a failed candidate never becomes a parent
        self.population.append((spec, float(result.reward)))
        if len(self.population) > self.population_size:
            self.population.popleft()  # aging: the oldest leaves, however good


class OptunaStrategy(Strategy):
    """An Optuna sampler (TPE, NSGA-II, ...) driving an in-memory study.

    The run's persistent storage is written by the runner for every strategy alike; this study
    only feeds the sampler. Repeats and infeasible proposals are told to it at once (the known
    result, or the worst value) so that it learns from them without another evaluation.
    """

    def __init__(self, space: BlockwiseSpace, sampler_name: str = "tpe", **kwargs: Any):
        super().__init__(space, **kwargs)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.name = sampler_name
        if sampler_name == "tpe":
            sampler = optuna.samplers.TPESampler(seed=self.seed, multivariate=True,
                                                 constant_liar=True)
        elif sampler_name == "nsga2":
            sampler = optuna.samplers.NSGAIISampler(seed=self.seed, population_size=50)
        else:
            raise StrategyError(f"unknown Optuna sampler {sampler_name!r}")
        directions = ["maximize", "minimize"] if self.multi_objective else ["maximize"]
        self.study = optuna.create_study(directions=directions, sampler=sampler)
        self.distributions = space.distributions()
        self._pending: list[tuple[tuple, Any]] = []
        self._known: dict[tuple, list[float] | None] = {}
        if self.seed_arch is not None:
            self.study.enqueue_trial(space.params(self.seed_arch))

    def _worst(self) -> list[float]:
        return [0.0, 1e9] if self.multi_objective else [0.0]

    def _values(self, result: TrialResult) -> list[float] | None:
        if not result.ok:
            return None
        if self.multi_objective:
            return [float(result.accuracy), float(result.latency_ms)]
        return [float(result.reward)]

    def ask(self) -> ArchSpec:
        if self.asked == 0 and self.seed_arch is not None:
            trial = self.study.ask(self.distributions)  # the enqueued seed
            spec = self.space.from_params(trial.params)
        else:
            for _ in range(MAX_TRIES):
                trial = self.study.ask(self.distributions)
                spec = self.space.from_params(trial.params)
                key = spec_key(spec)
                if key in self._known:  # a repeat of a finished candidate: tell what it got
                    self._tell_trial(trial, self._known[key])
                elif key in self._seen:  # a repeat of a pending one: no information yet
                    self.study.tell(trial, state=_fail_state())
                elif not self.feasible(spec):
                    self._tell_trial(trial, self._worst())
                else:
                    break
        self._pending.append((spec_key(spec), trial))
        self._seen.add(spec_key(spec))
        self.asked += 1
        return spec

    def _tell_trial(self, trial: Any, values: list[float] | None) -> None:
        if values is None:
            self.study.tell(trial, state=_fail_state())
        else:
            self.study.tell(trial, values)

    def _propose(self) -> ArchSpec:  # pragma: no cover - ask is overridden
        raise NotImplementedError

    def tell(self, spec: ArchSpec, result: TrialResult) -> None:
        key = spec_key(spec)
        position = next((i for i, (pending, _) in enumerate(self._pending) if pending == key),
                        None)
        if position is None:
            raise StrategyError(f"told about {spec.name!r}, which was not asked")
        _, trial = self._pending.pop(position)
        values = self._values(result)
        self._known[key] = values
        self._tell_trial(trial, values)


def _fail_state():
    import optuna

    return optuna.trial.TrialState.FAIL


class RLController(Strategy):
    """MnasNet's controller: an LSTM policy emitting one categorical decision per step.

    Each episode samples every decision of the space in order, the previous choice fed back as
    the next input. After ``batch`` episodes the policy is updated with REINFORCE
    (``algo="reinforce"``) or PPO's clipped surrogate (``algo="ppo"``) on the advantage
    ``reward - baseline``, the baseline an exponential moving average of rewards. Decisions
    that do not affect the architecture (slots beyond a stage's depth) carry no gradient.
    """

    name = "rl"

    def __init__(self, space: BlockwiseSpace, *, algo: str = "reinforce", hidden: int = 64,
                 lr: float = 0.005, batch: int = 8, baseline_decay: float = 0.9,
                 entropy: float = 1e-3, ppo_epochs: int = 4, ppo_clip: float = 0.2,
                 seed_bias: float = 1.5, **kwargs: Any):
        super().__init__(space, **kwargs)
        if algo not in ("reinforce", "ppo"):
            raise StrategyError(f"algo must be 'reinforce' or 'ppo', got {algo!r}")
        self.name = "rl" if algo == "reinforce" else "ppo"
        self.algo = algo
        self.batch, self.baseline_decay, self.entropy = batch, baseline_decay, entropy
        self.ppo_epochs, self.ppo_clip = ppo_epochs, ppo_clip
        self.sizes = [len(d.choices) for d in space.decisions]
        offsets = np.concatenate([[1], 1 + np.cumsum(self.sizes)[:-1]])  # 0: start token
        self.offsets = torch.as_tensor(offsets)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.embed = torch.nn.Embedding(1 + sum(self.sizes), hidden)
            self.cell = torch.nn.LSTMCell(hidden, hidden)
            self.heads = torch.nn.ModuleList(torch.nn.Linear(hidden, n) for n in self.sizes)
        modules = torch.nn.ModuleList([self.embed, self.cell, self.heads])
        if self.seed_arch is not None:  # the initial policy prefers the seed's choices
            with torch.no_grad():
                for head, choice in zip(self.heads, space.encode(self.seed_arch), strict=True):
                    head.bias[int(choice)] += seed_bias
        self.optimizer = torch.optim.Adam(modules.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.baseline: float | None = None
        self.episodes: list[tuple[np.ndarray, float]] = []
        self._vectors: dict[tuple, np.ndarray] = {}

    # ------------------------------------------------------------------ policy
    def _run(self, actions: Any | None = None, episodes: int = 1):
        """Run the LSTM over whole episodes: sample ``episodes`` of them when ``actions`` is
        None, else score ``actions`` (episodes x decisions). Returns (actions, log-probs,
        entropies), each episodes x decisions."""
        count = episodes if actions is None else actions.shape[0]
        h = c = torch.zeros(count, self.cell.hidden_size)
        token = torch.zeros(count, dtype=torch.long)
        chosen, logps, entropies = [], [], []
        for step, head in enumerate(self.heads):
            h, c = self.cell(self.embed(token), (h, c))
            log_probs = torch.log_softmax(head(h), dim=-1)
            if actions is None:
                action = torch.multinomial(log_probs.exp().detach(), 1,
                                           generator=self.generator)[:, 0]
            else:
                action = actions[:, step]
            chosen.append(action)
            logps.append(log_probs.gather(1, action[:, None])[:, 0])
            entropies.append(-(log_probs.exp() * log_probs).sum(dim=1))
            token = self.offsets[step] + action
        return torch.stack(chosen, 1), torch.stack(logps, 1), torch.stack(entropies, 1)

    def _propose(self) -> ArchSpec:
        # The policy is tiny: one thread is much faster here than two contending ones.
        with torch.no_grad(), torch_threads(1):
            actions, _, _ = self._run()
        vector = actions[0].numpy().astype(np.int64)
        spec = self.space.decode(vector)
        self._vectors[spec_key(spec)] = vector
        return spec

    def _on_seed(self, spec: ArchSpec) -> None:
        self._vectors[spec_key(spec)] = self.space.encode(spec)

    # ------------------------------------------------------------------ learning
    def tell(self, spec: ArchSpec, result: TrialResult) -> None:
        vector = self._vectors.pop(spec_key(spec), None)
        if vector is None:
            vector = self.space.encode(spec)
        reward = float(result.reward) if result.ok else 0.0  # a failed network earns nothing
        self.episodes.append((vector, reward))
        if len(self.episodes) >= self.batch:
            with torch_threads(1):
                self._update()
            self.episodes = []

    def _update(self) -> None:
        rewards = np.array([r for _, r in self.episodes])
        if self.baseline is None:
            self.baseline = float(rewards.mean())
        advantages = rewards - self.baseline
        scale = float(np.std(rewards)) or 1.0
        advantages = torch.as_tensor(advantages / scale, dtype=torch.float32)
        actions = torch.as_tensor(np.stack([v for v, _ in self.episodes]))
        masks = torch.as_tensor(np.stack([self.space.active(v) for v, _ in self.episodes]))
        with torch.no_grad():
            old_logp = (self._run(actions)[1] * masks).sum(1)
        for _ in range(self.ppo_epochs if self.algo == "ppo" else 1):
            _, logp, ent = self._run(actions)
            logp = (logp * masks).sum(1)
            if self.algo == "ppo":
                ratio = torch.exp(logp - old_logp)
                clipped = torch.clamp(ratio, 1 - self.ppo_clip, 1 + self.ppo_clip)
                objective = torch.minimum(ratio * advantages, clipped * advantages)
            else:
                objective = logp * advantages
            loss = -(objective + self.entropy * (ent * masks).sum(1)).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        for reward in rewards:
            self.baseline = self.baseline_decay * self.baseline + \
                (1 - self.baseline_decay) * float(reward)


STRATEGIES = ("random", "evolution", "tpe", "nsga2", "rl", "ppo")


def make_strategy(name: str, space: BlockwiseSpace, **kwargs: Any) -> Strategy:
    """A strategy by name (one of ``STRATEGIES``); ``kwargs`` go to its constructor."""
    if name == "random":
        return RandomSearch(space, **kwargs)
    if name == "evolution":
        return Evolution(space, **kwargs)
    if name in ("tpe", "nsga2"):
        return OptunaStrategy(space, name, **kwargs)
    if name in ("rl", "ppo"):
        return RLController(space, algo="reinforce" if name == "rl" else "ppo", **kwargs)
    raise StrategyError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
