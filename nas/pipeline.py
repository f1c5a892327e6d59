"""The whole MobileNetV3 recipe on this machine: block search → NetAdapt → long fine-tune, then
the found network against the canonical one (``nas reproduce v3-large --search``).

1. The target is the canonical network's latency, measured end to end here (the search's
   budget); NetAdapt aims at the canonical network's latency on its own (paired) scale.
2. Platform-aware block search with that model's reward (V3-Large: w = -0.07, seeded from
   MnasNet-A1, as the paper did; V3-Small: w = -0.15, from scratch), budget = the target; the
   winner is chosen among the best five on measured latency.
   With ``rescore`` N, the N best of those (by the reward of their measured latency) are each
   trained once more with the data set's final recipe, and the best by its validation top-1
   (under the same reward) wins: the search's short estimator ranks close candidates within
   its noise, and favours what learns fastest in one epoch.
3. NetAdapt from the winner (trained first) down to the target, then the long fine-tune.
4. The canonical network trained with the same recipe (first training, then the long
   fine-tune), both timed side by side, and the two tables row by row.

Every stage keeps its own resumable run directory under ``out_dir``; running the same command
again continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latency_models.store import LatencySetup, measure_ms
from nas.accuracy.base import adapt_spec
from nas.accuracy.final import Trainings, final_recipe, train_all, training_key
from nas.accuracy.train import Recipe, check_device
from nas.build import build_model, count_params
from nas.data import load_data
from nas.errors import NasError, RunError
from nas.export import save, write_text
from nas.flops import count_madds
from nas.netadapt import FineTuner, NetAdapt, NetAdaptSettings, device_latency
from nas.runlock import RunLock, timestamp
from nas.search.objective import AccuracyJob
from nas.search.report import measured_ranking
from nas.search.run import SearchRun, SearchSettings, resolve_seed_arch
from nas.spec import ArchSpec
from nas.spec.tables import table_diff
from search_spaces import zoo
from search_spaces.mobilenetv3 import default_space

__all__ = ["PRESETS", "PipelineSettings", "reproduce_search"]

# The rescoring training's seed is this plus the pipeline's seed: none of a final recipe's
# reporting seeds (0, 1, ...), so that a network chosen for one training's validation score is
# not then reported with that same training's test score.
RESCORE_SEED = 1000
# How many of the search's best are timed end to end (at least ``rescore``).
FINALISTS = 5

# The paper's two searches: reward preset and the architecture the search starts from.
PRESETS = {"mobilenet_v3_large": ("soft", "mnasnet-a1"), "mobilenet_v3_small": ("soft-small",
                                                                                 None)}


@dataclass(frozen=True)
class PipelineSettings:
    model: str                       # mobilenet_v3_large or mobilenet_v3_small
    strategy: str = "ppo"
    trials: int = 100
    # the search's accuracy estimator, as nas-search's --estimator: by default the supernet,
    # trained once on ``data`` at ``resolution`` (``supernet_steps``) and cached
    estimator: str = "supernet"
    supernet_steps: int = 400
    epochs: int = 1                  # training per search candidate (estimator "train")
    data: str = "digits"
    resolution: int = 16
    init_epochs: int = 10            # NetAdapt's first training (and the canonical network's)
    short_steps: int = 40
    long_epochs: int = 10
    delta: float = 0.01
    seed: int = 0
    device: str = "cpu"
    rounds: int = 30                 # end-to-end timing rounds
    # the search's first candidate (a zoo name or spec file); None: the paper's (PRESETS).
    # With fewer trials than evolution's population every candidate is a mutation of it.
    seed_arch: str | None = None
    # evolution's population; None: a third of the trials (at least 2, at most Once-for-All's
    # 100), so that a short search selects at all: with fewer trials than the population every
    # candidate is a random mutation of the start, and none is a child of a good one
    population: int | None = None
    # evolution's stage moves (BlockwiseSpace.mutate's stage_prob); 0: Once-for-All's mutation
    stage_moves: float = 0.0
    # the search's reward preset; None: the paper's for this model (PRESETS)
    reward: str | None = None
    # the search's budget and NetAdapt's target as a share of the canonical network's latency:
    # 0.85 with reward "hard" asks for the canonical network's accuracy at <= 0.85x its latency
    budget_fraction: float = 1.0
    # the best N finalists by measured reward trained again with the final recipe of ``data``
    # (nas.accuracy.final; seed RESCORE_SEED + seed), the best validation top-1 winning; 0: the
    # search's own score decides
    rescore: int = 0

    def __post_init__(self) -> None:
        if self.model not in PRESETS:
            raise RunError(f"--search reproduces mobilenet_v3_large or mobilenet_v3_small, not "
                           f"{self.model}")
        if self.rounds < 1:
            raise RunError(f"rounds must be at least 1, got {self.rounds}")
        if self.population is not None and (self.strategy != "evolution"
                                            or self.population < 2):
            raise RunError(f"population is a setting of the evolution strategy, at least 2; "
                           f"got {self.population} with {self.strategy}")
        if self.stage_moves and (self.strategy != "evolution" or not 0 < self.stage_moves <= 1):
            raise RunError(f"stage moves are a setting of the evolution strategy, a probability "
                           f"in (0, 1]; got {self.stage_moves} with {self.strategy}")
        if self.rescore < 0:
            raise RunError(f"rescore is a number of finalists, at least 0; got {self.rescore}")
        if self.rescore:
            try:
                self.rescore_recipe()
            except NasError as error:
                raise RunError(f"rescore trains the finalists with the data set's final "
                               f"recipe: {error}") from None
        # The stages' own checks, now: a bad setting fails before the target is measured and
        # written, not minutes later (the targets here are placeholders).
        self.search_settings(budget_ms=1.0)
        if self.seed_arch:
            resolve_seed_arch(self.seed_arch, default_space())
        NetAdaptSettings(target_ms=1.0, delta=self.delta, short_steps=self.short_steps,
                         long_epochs=self.long_epochs, init_epochs=self.init_epochs,
                         seed=self.seed, data=self.data, resolution=self.resolution,
                         device=self.device)
        Recipe(epochs=self.epochs)
        check_device(self.device)

    @property
    def start(self) -> str | None:
        """The search's seed architecture: ``seed_arch``, else the paper's for this model."""
        return self.seed_arch or PRESETS[self.model][1]

    @property
    def reward_preset(self) -> str:
        """The search's reward: ``reward``, else the paper's for this model."""
        return self.reward or PRESETS[self.model][0]

    def rescore_recipe(self):
        """The final recipe that rescores the finalists: ``data``'s, at ``resolution``."""
        return final_recipe(self.data).trial(resolution=self.resolution)

    @property
    def evolution_population(self) -> int:
        """Evolution's population: ``population``, else a third of the trials (2 to 100)."""
        return self.population or min(100, max(2, self.trials // 3))

    def search_settings(self, budget_ms: float) -> SearchSettings:
        """The block search's settings: this model's reward and start; its budget is this model's
        latency as the search predicts it (``budget_ms``, the measured target, is recorded)."""
        return SearchSettings(
            budget_ms=budget_ms, reward=self.reward_preset, strategy=self.strategy,
            trials=self.trials, seed=self.seed, seed_arch=self.start, budget_of=self.model,
            budget_fraction=self.budget_fraction,
            strategy_options={"population": self.evolution_population,
                              **({"stage_prob": self.stage_moves} if self.stage_moves else {})}
            if self.strategy == "evolution" else {},
            job=AccuracyJob(data=self.data, resolution=self.resolution, estimator=self.estimator,
                            epochs=self.epochs, supernet_steps=self.supernet_steps,
                            seed=self.seed, device=self.device))


Event = Callable[[str, dict[str, Any]], None]


def reproduce_search(settings: PipelineSettings, out_dir: str | Path, **options) -> dict[str, Any]:
    """Run the pipeline (see ``_reproduce_search``) with ``out_dir`` locked against other
    processes."""
    with RunLock(out_dir):
        return _reproduce_search(settings, Path(out_dir), **options)


def _reproduce_search(settings: PipelineSettings, out_dir: Path, *, workers: int = 1,
                      on_event: Event | None = None, predictor=None, netadapt_latency=None,
                      measure: Callable[[list[ArchSpec]], list[float]] | None = None,
                      target_ms: float | None = None, on_search_result=None,
                      on_netadapt_event: Event | None = None) -> dict[str, Any]:
    """Run the pipeline; returns the summary also written to ``out_dir/summary.json``.

    ``predictor``, ``netadapt_latency`` (a ProposalLatency), ``measure`` (end-to-end ms of
    specs, timed together) and ``target_ms`` replace the machine's own (tests use a synthetic
    device).
    """
    event = on_event or (lambda kind, payload: None)
    out_dir = Path(out_dir)
    started = time.perf_counter()
    canonical = zoo.get(settings.model)
    reward, seed_arch = settings.reward_preset, settings.start
    data = load_data(settings.data, settings.resolution, seed=settings.seed)  # a bad one: now

    # 1. the target: the canonical network, measured here (once: a rerun continues with the
    # stored value, which the search and NetAdapt runs were started with)
    target_path = out_dir / "target.json"
    if target_ms is None and target_path.exists():
        target_ms = json.loads(target_path.read_text())["target_ms"]
    elif target_ms is None:
        if measure is None:
            measure = _measure_here(canonical.input_size, settings.rounds)
        company = [zoo.get("v3-large"), zoo.get("v3-small")]
        target_ms = measure([canonical, *[s for s in company if s.name != canonical.name]])[0]
        write_text(target_path, json.dumps({"target_ms": target_ms, "model": canonical.name,
                                            "measured": timestamp()}, indent=2) + "\n")
    event("target", {"target_ms": target_ms, "model": canonical.name})

    # 2. block search
    search = SearchRun(settings.search_settings(target_ms), out_dir / "search",
                       predictor=predictor)
    with search:
        # the estimator first (the supernet's training, once per data set and resolution)
        search.prepare(on_step=lambda step, total, _loss: event(
            "supernet", {"step": step, "total": total, "data": settings.data,
                         "resolution": settings.resolution}))
        event("search", {"trials": settings.trials, "strategy": settings.strategy,
                         "reward": reward, "seed_arch": seed_arch, "dir": str(search.dir),
                         "estimator": settings.estimator, "budget_ms": search.budget_ms})
        results = search.run(workers=workers, on_result=on_search_result)
        # The winner is chosen once: a rerun continues with it. Timed again, the finalists
        # could change places within the timer's noise, and NetAdapt (started from the first
        # choice) could no longer resume.
        choice_path = out_dir / "searched.json"
        choice = json.loads(choice_path.read_text()) if choice_path.exists() else {}
        winner = next((r for r in results if r.index == choice.get("trial") and r.ok), None)
        if winner is None:
            winner, rescored = _choose(settings, search, results, out_dir, predictor is None,
                                       workers, event)
            if winner is not None:
                choice = {"trial": winner.index, "chosen": timestamp(),
                          **({"rescored": rescored} if rescored else {})}
                write_text(choice_path, json.dumps(choice, indent=2) + "\n")
    if winner is None:
        raise RuntimeError(f"no search candidate finished; see {search.dir / 'study.db'}")
    found = dataclasses.replace(winner.spec, name=f"{canonical.name}_found")
    event("searched", {"trial": winner.index, "latency_ms": winner.latency_ms,
                       "accuracy": winner.accuracy, "spec": found.to_dict()})

    # 3. NetAdapt from the search's winner down to the target, then the long fine-tune
    na_dir = out_dir / "netadapt"
    resume = (na_dir / "netadapt.json").exists()
    info, measure_networks = {}, None
    if netadapt_latency is None:
        netadapt_latency, info, measure_networks = device_latency(found, na_dir, resume=resume)
    # NetAdapt's target: the canonical network on NetAdapt's own latency scale. The machine
    # drifts between minutes (docs/latency.md), so a number measured at another moment would aim
    # NetAdapt too high or too low; predicted on one scale, "as fast as the canonical network"
    # means exactly that, and the side-by-side timing at the end checks it.
    # Chosen once, like the search's winner: on a rerun the scale has taken in the proposals'
    # timings, and a recomputed target would move (NetAdapt would resume towards another one).
    # With a budget fraction, the target is that share of the canonical network's latency.
    na_target = _kept(out_dir / "netadapt_target.json", lambda: {
        "target_ms": settings.budget_fraction * netadapt_latency(canonical),
        "model": canonical.name, "budget_fraction": settings.budget_fraction,
        "chosen": timestamp()})["target_ms"]
    event("netadapt_target", {"target_ms": na_target, "measured_target_ms": target_ms})
    na_settings = NetAdaptSettings(
        target_ms=na_target, delta=settings.delta, short_steps=settings.short_steps,
        long_epochs=settings.long_epochs, init_epochs=settings.init_epochs, seed=settings.seed,
        data=settings.data, resolution=settings.resolution, device=settings.device)
    run = NetAdapt(na_settings, na_dir, found, data, netadapt_latency, resume=resume,
                   extra_info=info, measure_networks=measure_networks,
                   on_event=on_netadapt_event)
    event("netadapt", {"dir": str(na_dir), "resumed": resume})
    with run:
        adapted = run.run()
    final_spec = adapted.spec

    # 4. the canonical network under the same recipe, both timed side by side
    def train_canonical() -> dict[str, Any]:
        event("canonical", {"epochs": settings.init_epochs + settings.long_epochs})
        tuner = FineTuner(data, na_settings)
        model = build_model(adapt_spec(canonical, data.num_classes, data.resolution,
                                       data.channels), seed=settings.seed)
        tuner.initial(model)
        record = {"val_accuracy": tuner.long(model) if settings.long_epochs else
                  tuner.score(model)}
        save(model, out_dir / "canonical.pt")
        return record

    canonical_record = _kept(out_dir / "canonical.json", train_canonical)
    final = adapted.final or {}
    found_accuracy = final.get("val_accuracy")
    event("measure", {})
    if measure is None and predictor is None:
        measure = _measure_here(canonical.input_size, settings.rounds)
    measured = measure([canonical, final_spec]) if measure else [None, None]

    diff = table_diff(canonical, final_spec)
    summary = {
        "model": canonical.name, "target_ms": target_ms, "netadapt_target_ms": na_target,
        "budget_fraction": settings.budget_fraction, "reward": reward,
        "seed_arch": seed_arch, "settings": dataclasses.asdict(settings),
        "search": {"trial": winner.index, "predicted_ms": winner.latency_ms,
                   "budget_ms": search.budget_ms,
                   "rescored": choice.get("rescored", []),
                   "proxy_accuracy": winner.accuracy, "dir": str(search.dir)},
        "netadapt": {"iterations": len(adapted.iterations) - 1,
                     "stop_reason": adapted.stop_reason, "dir": str(na_dir)},
        "found": {"spec": final_spec.to_dict(), "measured_ms": measured[1],
                  "predicted_ms": adapted.iterations[-1]["latency_ms"],
                  "val_accuracy": found_accuracy, "params": count_params(final_spec),
                  "madds": count_madds(final_spec)},
        "canonical": {"measured_ms": measured[0], "val_accuracy":
                      canonical_record["val_accuracy"], "params": count_params(canonical),
                      "madds": count_madds(canonical)},
        "changed_rows": diff.changed_rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_text(out_dir / "found.json", final_spec.to_json())
    write_text(out_dir / "comparison.md", _comparison_markdown(summary, diff))
    write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _choose(settings: PipelineSettings, search: SearchRun, results, out_dir: Path,
            measured: bool, workers: int, event: Event):
    """The search's winner: the best by the reward of measured latency (``measured``; else
    of the predicted) among the best ``FINALISTS``; with ``settings.rescore``, the best of
    that many of them after one more training each with the final recipe (validation top-1,
    the same reward). Returns (winner or None, the rescored finalists' records)."""
    if not any(r.ok for r in results):
        return None, []
    if measured:
        ranked, latency_ms, _, reward = measured_ranking(
            search, results, finalists=max(FINALISTS, settings.rescore), rounds=settings.rounds)
    else:  # a synthetic device: the prediction is the latency
        ranked = sorted((r for r in results if r.ok), key=lambda r: (-r.reward, r.index))
        latency_ms, reward = {r.index: r.latency_ms for r in ranked}, search.reward
    if not settings.rescore:
        return ranked[0], []
    finalists = ranked[:settings.rescore]
    final, seed = settings.rescore_recipe(), RESCORE_SEED + settings.seed
    specs = [dataclasses.replace(r.spec, name=f"trial-{r.index}") for r in finalists]
    event("rescore", {"finalists": len(specs), "recipe": final.name, "seed": seed})
    # one JSON line per finished training: an interrupted rescoring continues where it stopped
    trainings = Trainings(out_dir / "rescored.jsonl", reuse=True)
    train_all(specs, final, trainings, None, workers, seeds=(seed,),
              log=lambda line: event("rescore_log", {"line": line}))
    records = []
    for r, spec in zip(finalists, specs, strict=True):
        row = trainings.get(training_key(spec, final, seed))
        records.append({"trial": r.index, "search_accuracy": r.accuracy,
                        "latency_ms": latency_ms[r.index], "val_top1": row["val_top1"],
                        "reward": reward(row["val_top1"], latency_ms[r.index])})
    best = max(records, key=lambda rec: (rec["reward"], -rec["trial"]))
    return next(r for r in finalists if r.index == best["trial"]), \
        [{**rec, "recipe": final.name, "seed": seed} for rec in records]


def _kept(path: Path, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The record at ``path``; the first time, ``make``'s, written there. What a run decided
    once, a rerun continues with: decided again, on a machine that drifts or a latency scale
    that has learnt more timings, it could differ from what the later stages started with."""
    if path.exists():
        return json.loads(path.read_text())
    record = make()
    write_text(path, json.dumps(record, indent=2) + "\n")
    return record


def _measure_here(input_size: int, rounds: int):
    setup = LatencySetup(resolution=input_size)
    return lambda specs: [float(ms) for ms in measure_ms(setup, specs, rounds=rounds)]


def _target_text(summary: dict[str, Any]) -> str:
    share = summary.get("budget_fraction", 1.0)
    text = f"{summary['target_ms']:.2f} ms (the canonical network, measured here)"
    return text if share == 1 else f"{share:g} x {text}"


def _comparison_markdown(summary: dict[str, Any], diff) -> str:
    found, canon = summary["found"], summary["canonical"]

    def fmt(value, spec=".2f", suffix=""):
        return "-" if value is None else f"{value:{spec}}{suffix}"

    lines = [f"# {summary['model']}: canonical vs found on this machine", "",
             f"Target: {_target_text(summary)}; "
             f"{summary['netadapt_target_ms']:.2f} ms on NetAdapt's scale. "
             f"Search: {summary['settings']['strategy']}, {summary['settings']['trials']} "
             f"trials, reward {summary['reward']}, from {summary['seed_arch'] or 'scratch'}; "
             f"NetAdapt: {summary['netadapt']['iterations']} iterations "
             f"({summary['netadapt']['stop_reason']}).", "",
             "| network | measured ms | val top-1 | params | MAdds |", "|---|---|---|---|---|",
             f"| canonical | {fmt(canon['measured_ms'])} | {fmt(canon['val_accuracy'])} | "
             f"{canon['params'] / 1e6:.2f}M | {canon['madds'] / 1e6:.0f}M |",
             f"| found | {fmt(found['measured_ms'])} | {fmt(found['val_accuracy'])} | "
             f"{found['params'] / 1e6:.2f}M | {found['madds'] / 1e6:.0f}M |", "",
             f"## Row by row (canonical → found; {summary['changed_rows']} rows differ)", "",
             diff.markdown()]
    return "\n".join(lines)
