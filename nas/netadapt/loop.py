"""NetAdapt, as MobileNetV3 modified it: per-layer filter counts tuned against measured latency.

Each iteration starts from the current network (weights carried from the last iteration) and
its latency ``L``:

1. every prunable site (one bneck block's expansion; a group of activations tied by residual
   connections; the head's conv and hidden layer; see :mod:`nas.netadapt.prune`) proposes its
   largest smaller width (a multiple of ``divisor``) whose network is at least ``delta`` faster
   on the latency table;
2. each proposal is pruned (largest-L2 filters kept, the same channels in every tensor that
   touches them) and fine-tuned for ``short_steps`` steps, then scored on a holdout carved out
   of the training images;
3. the proposal with the largest ``ΔAccuracy / |ΔLatency|`` is taken (``select="ratio"``, the
   V3 change; ``"accuracy"`` is original NetAdapt).

This stops when ``L`` reaches the target latency; a long fine-tune follows. Every iteration
(spec, weights, latency, accuracy, every proposal's figures) is written under the run directory
before the next begins, so ``resume`` continues an interrupted run without repeating finished
iterations.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.accuracy.base import adapt_spec
from nas.accuracy.train import TrainingFailed
from nas.errors import NetAdaptError
from nas.export import build_with_weights, load, save, write_text
from nas.netadapt.finetune import FineTuner
from nas.netadapt.latency import ProposalLatency
from nas.netadapt.prune import (
    Proposal,
    PruneError,
    candidate_widths,
    check_prunable,
    proposal_sites,
    prune_model,
)
from nas.netadapt.settings import NetAdaptSettings
from nas.runlock import LockedRunDir, timestamp
from nas.spec import ArchSpec

__all__ = ["NetAdapt", "Result", "check_run_dir", "load_iterations"]

CONFIRM_PASSES, CONFIRM_WINDOW = 5, 4  # re-measurements of the picks; widths in each


# --------------------------------------------------------------------------- the run
@dataclass
class Result:
    """Where a run ended: the last iteration's record, and the final one if fine-tuned."""

    iterations: list[dict[str, Any]]
    stop_reason: str
    final: dict[str, Any] | None = None

    @property
    def spec(self) -> ArchSpec:
        return ArchSpec.from_dict(self.iterations[-1]["spec"])


Event = Callable[[str, dict[str, Any]], None]


def _iteration_dir(run_dir: Path, index: int) -> Path:
    return run_dir / "iterations" / f"{index:04d}"


def _save_result(directory: Path, record: dict[str, Any], model) -> None:
    """model.pt, spec.json, then record.json: a directory without its record did not finish."""
    save(model, directory / "model.pt")
    write_text(directory / "spec.json", ArchSpec.from_dict(record["spec"]).to_json())
    write_text(directory / "record.json", json.dumps(record, indent=2) + "\n")


def check_run_dir(run_dir: str | Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to resume nothing, or to start over a run without --overwrite."""
    path = Path(run_dir) / "netadapt.json"
    if resume and not path.exists():
        raise NetAdaptError(f"nothing to resume: {path} does not exist")
    if not resume and not overwrite and path.exists():
        raise NetAdaptError(f"{run_dir} already holds a NetAdapt run; use --resume to "
                            f"continue it, --overwrite to replace it, or another --name")


def load_iterations(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished iteration's record, in order (an unfinished one has no record.json)."""
    records = []
    index = 0
    while (path := _iteration_dir(Path(run_dir), index) / "record.json").exists():
        records.append(json.loads(path.read_text()))
        index += 1
    return records


class NetAdapt(LockedRunDir):
    """One NetAdapt run in ``run_dir``.

    ``start`` is the network to adapt at its deployment shape (what latency is measured on);
    ``weights`` its trained ``state_dict`` on ``data`` (None: trained first for
    ``init_epochs``). ``latency`` is a :class:`ProposalLatency`.
    """

    def __init__(self, settings: NetAdaptSettings, run_dir: str | Path, start: ArchSpec, data,
                 latency: ProposalLatency, *, weights: dict | None = None,
                 resume: bool = False, overwrite: bool = False, on_event: Event | None = None,
                 extra_info: dict[str, Any] | None = None,
                 measure_networks: Callable[[list[ArchSpec]], list[float]] | None = None):
        self.settings, self.dir = settings, Path(run_dir)
        try:
            self.start = check_prunable(start)
        except PruneError as exc:
            raise NetAdaptError(str(exc)) from None
        self.data, self.latency, self.weights = data, latency, weights
        self.measure_networks = measure_networks
        self.unconfirmed = 0
        self.on_event = on_event or (lambda kind, payload: None)
        with self._setting_up(self.dir):  # one writer per directory
            self.info = self._prepare_dir(resume, overwrite, extra_info or {})
            self.tuner = FineTuner(data, settings)

    # ------------------------------------------------------------------ the directory
    def _prepare_dir(self, resume: bool, overwrite: bool, extra: dict[str, Any]) -> dict:
        path = self.dir / "netadapt.json"
        check_run_dir(self.dir, resume=resume, overwrite=overwrite)
        if overwrite and self.dir.exists():
            for name in ("iterations", "final"):
                shutil.rmtree(self.dir / name, ignore_errors=True)
            for name in ("netadapt.json", "latency_table.json", "report.md", "progress.png"):
                (self.dir / name).unlink(missing_ok=True)
        if not path.exists():
            if (self.dir / "iterations").exists():
                raise NetAdaptError(f"{self.dir} holds iterations but no netadapt.json; use "
                                    f"--overwrite to start again")
            return {"settings": self.settings.to_dict(), "start": self.start.to_dict(),
                    "created": timestamp(), **extra}
        info = json.loads(path.read_text())
        stored = NetAdaptSettings.from_dict(info["settings"])
        changed = sorted(k for k, v in self.settings.run_key().items()
                         if stored.run_key().get(k) != v)
        if changed:
            raise NetAdaptError(f"{self.dir} was started with other settings "
                                f"({', '.join(changed)}); resume with the same ones")
        if ArchSpec.from_dict(info["start"]) != self.start:
            raise NetAdaptError(f"{self.dir} was started from another network")
        info["settings"] = self.settings.to_dict()
        return info

    def _save_info(self) -> None:
        write_text(self.dir / "netadapt.json", json.dumps(self.info, indent=2) + "\n")

    def _model_spec(self, spec: ArchSpec) -> ArchSpec:
        """The network as trained on the data (its classes, resolution and channels)."""
        return adapt_spec(spec, self.data.num_classes, self.data.resolution, self.data.channels)

    def _save_iteration(self, record: dict[str, Any], model) -> None:
        _save_result(_iteration_dir(self.dir, record["iteration"]), record, model)

    def _load_model(self, index: int):
        return load(_iteration_dir(self.dir, index) / "model.pt")

    # ------------------------------------------------------------------ steps
    def _iteration_zero(self) -> tuple[dict[str, Any], Any]:
        start = time.perf_counter()
        self.latency.refresh(self.start, [])
        model = build_with_weights(self._model_spec(self.start), self.weights,
                                   seed=self.settings.seed, source="the start weights")
        if self.weights is None:
            self.on_event("pretrain", {"epochs": self.settings.init_epochs})
            accuracy = self.tuner.initial(model, on_step=lambda s, n, loss: self.on_event(
                "step", {"step": s, "total": n, "loss": loss}))
            how = f"trained {self.settings.init_epochs} epochs"
        else:
            accuracy = self.tuner.score(model)
            how = "weights given"
        record = {"iteration": 0, "latency_ms": self.latency(self.start), "accuracy": accuracy,
                  "start": how, "spec": self.start.to_dict(),
                  "seconds": round(time.perf_counter() - start, 1), "finished": timestamp()}
        self._save_iteration(record, model)
        return record, model

    def _proposals(self, spec: ArchSpec) -> list[tuple[tuple, list[tuple[int, ArchSpec]]]]:
        s = self.settings
        return [(site, list(candidate_widths(spec, site, divisor=s.divisor,
                                             min_channels=s.min_channels)))
                for site in proposal_sites(spec)]

    def _iteration(self, index: int, last: dict[str, Any], model) -> tuple[dict | None, Any]:
        """One NetAdapt iteration; (None, model) when no proposal can make the cut."""
        start = time.perf_counter()
        spec = ArchSpec.from_dict(last["spec"])
        sites = self._proposals(spec)
        measured = [self.latency.refresh(spec, [c for _, cands in sites for _, c in cands])]
        latency = self.latency(spec)
        delta = self.settings.delta_at(index, latency)
        required = latency - delta
        picks = {site: self._first_meeting(cands, required) for site, cands in sites}
        scanned = sum(pick is not None for pick in picks.values())
        if self.settings.latency == "paired":
            measured += self._confirm(spec, sites, picks, required)
        chosen_widths = []
        for site, cands in sites:
            pick = picks[site]
            if pick is not None:
                width, cand = cands[pick]
                chosen_widths.append((Proposal(site[0], site[1], width), cand,
                                      self.latency(cand)))
        self.on_event("iteration", {"iteration": index, "latency_ms": latency, "delta_ms": delta,
                                    "proposals": len(chosen_widths), "measured": measured})
        if not chosen_widths:
            self.unconfirmed = scanned
            return None, model
        key = (lambda r: (r["ratio"], -r["latency_ms"])) if self.settings.select == "ratio" \
            else (lambda r: (r["accuracy"], -r["latency_ms"]))
        results, best, best_model = [], None, None
        for number, (proposal, cand, lat) in enumerate(chosen_widths, 1):
            pruned = prune_model(model, cand)
            self.on_event("proposal", {"iteration": index, "number": number,
                                       "of": len(chosen_widths),
                                       "what": proposal.describe(spec)})
            try:
                accuracy = self.tuner.short(pruned, index)
            except TrainingFailed as exc:  # a diverging fine-tune loses this proposal only
                accuracy, error = None, str(exc)
            else:
                error = None
            ratio = None if accuracy is None else \
                (accuracy - last["accuracy"]) / max(latency - lat, 1e-9)
            result = {"site": list(proposal.site), "width": proposal.width,
                      "what": proposal.describe(spec), "latency_ms": lat,
                      "accuracy": accuracy, "ratio": ratio, "error": error}
            results.append(result)
            if accuracy is not None and (best is None or key(result) > key(best)):
                best, best_model, best_spec = result, pruned, cand
        if best is None:
            raise NetAdaptError(f"iteration {index}: every proposal failed to fine-tune "
                                f"(first: {results[0]['error']})")
        record = {
            "iteration": index, "latency_before_ms": latency, "delta_ms": delta,
            "latency_ms": best["latency_ms"], "accuracy_before": last["accuracy"],
            "accuracy": best["accuracy"], "chosen": best["what"],
            "chosen_site": best["site"], "chosen_width": best["width"],
            "proposals": results, "latency_refresh": measured, "spec": best_spec.to_dict(),
            "seconds": round(time.perf_counter() - start, 1), "finished": timestamp(),
        }
        self._save_iteration(record, best_model)
        return record, best_model

    def _first_meeting(self, cands: list[tuple[int, ArchSpec]], required: float) -> int | None:
        """Index of the largest width at or below ``required`` ms."""
        lats = self.latency.many([c for _, c in cands])
        return next((i for i, lat in enumerate(lats) if lat <= required), None)

    def _confirm(self, spec: ArchSpec, sites, picks: dict, required: float) -> list[dict]:
        """Re-measure every site's pick and the next smaller widths (a window) with more
        rounds, beside the current network, until every pick holds on one fresh measurement.

        Picking the first of dozens of widths whose noisy measurement meets the cut favours
        widths measured too fast (the winner's curse); an independent measurement removes
        that bias. Within a pass a site may only pick from its window, measured in that pass:
        wider widths failed on an earlier measurement, and comparing their stale values with
        fresh ones would mix two moments. A site whose window holds no width meeting the cut
        moves on to the next window; one that has not settled after the last pass is dropped.
        """
        rounds = 3 * self.settings.latency_rounds
        cands_of = dict(sites)
        window = {site: pick for site, pick in picks.items() if pick is not None}
        infos: list[dict] = []
        held: set = set()
        for _ in range(CONFIRM_PASSES):
            window = {site: a for site, a in window.items() if a < len(cands_of[site])}
            if not window:
                break
            infos.append(self.latency.refresh(
                spec, [c for site, a in window.items()
                       for _, c in cands_of[site][a:a + CONFIRM_WINDOW]], rounds=rounds))
            held = set()
            for site, a in window.items():
                hit = self._first_meeting(cands_of[site][a:a + CONFIRM_WINDOW], required)
                if hit is None:
                    window[site] = a + CONFIRM_WINDOW
                else:
                    window[site] = a + hit
                    held.add(site)
            if len(held) == len(window):
                break
        for site in picks:  # held in the last pass, on the values now in the table
            picks[site] = window[site] if site in held else None
        return infos

    # ------------------------------------------------------------------ running
    def run(self) -> Result:
        self._save_info()
        records = load_iterations(self.dir)
        if records:
            model = self._load_model(len(records) - 1)
            self.on_event("resumed", {"iterations": len(records) - 1})
        else:
            record, model = self._iteration_zero()
            records = [record]
            self.on_event("start", record)
        target = self.settings.target_ms
        reason = "target reached"
        while records[-1]["latency_ms"] > target:
            index = len(records)
            if index > self.settings.max_iterations:
                reason = f"--max-iterations {self.settings.max_iterations} reached"
                break
            record, model = self._iteration(index, records[-1], model)
            if record is None:
                reason = "no proposal can cut the latency by delta any more"
                if self.unconfirmed:
                    reason += (f" ({self.unconfirmed} met it on the scan but not when measured "
                               f"again: the cut is within this machine's noise)")
                break
            records.append(record)
            self.on_event("accepted", record)
        self.info.update({"stop_reason": reason, "iterations": len(records) - 1})
        self._save_info()
        final = self._final(records[-1], model) if self.settings.long_epochs else None
        return Result(records, reason, final)

    def _final(self, last: dict[str, Any], model) -> dict[str, Any]:
        """The long fine-tune of the last iteration's network (kept if already done)."""
        directory = self.dir / "final"
        path = directory / "record.json"
        if path.exists():
            final = json.loads(path.read_text())
            if final.get("iteration") == last["iteration"] and \
                    final.get("long_epochs") == self.settings.long_epochs:
                return final
        start = time.perf_counter()
        self.on_event("long", {"epochs": self.settings.long_epochs})
        accuracy = self.tuner.long(model, on_step=lambda s, n, loss: self.on_event(
            "step", {"step": s, "total": n, "loss": loss}))
        final = {"iteration": last["iteration"], "long_epochs": self.settings.long_epochs,
                 "val_accuracy": accuracy, "latency_ms": last["latency_ms"],
                 "spec": last["spec"], "seconds": round(time.perf_counter() - start, 1),
                 "finished": timestamp()}
        if self.measure_networks is not None:  # end to end, the start network alongside
            self.on_event("measure", {})
            start_ms, final_ms = self.measure_networks([self.start,
                                                        ArchSpec.from_dict(last["spec"])])
            final["measured_ms"] = {"start": start_ms, "final": final_ms,
                                    "ratio": final_ms / start_ms}
        _save_result(directory, final, model)
        return final
