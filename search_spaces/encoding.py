"""A block-wise space as a fixed-length vector of categorical decisions: encode, decode,
mutate, cross over, and Optuna's define-by-run view of the same decisions."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.spec import ArchSpec, BlockSpec, SpecError, StemSpec
from search_spaces.choices import Decision

__all__ = ["DecisionEncoding"]


class DecisionEncoding:
    """The decision vector of a block-wise space; mixed into ``BlockwiseSpace``, which provides
    ``stem_widths``, ``stem_acts``, ``stages``, ``heads``, ``contains``, ``stage_of_blocks`` and
    ``build_spec``."""

    @functools.cached_property
    def decisions(self) -> tuple[Decision, ...]:
        """Every decision in a fixed order: stem, then per stage depth, width and the options
        of each of its ``max(depths)`` block slots, then the head.

        The encoding has a fixed length; the options of slots beyond a stage's chosen depth
        are inactive (ignored by ``decode``; ``encode`` writes their first choice).
        """
        result = [Decision("stem.width", self.stem_widths), Decision("stem.act", self.stem_acts)]
        for i, stage in enumerate(self.stages):
            result += [Decision(f"s{i}.depth", stage.depths), Decision(f"s{i}.width", stage.widths)]
            for j in range(max(stage.depths)):
                result += [Decision(f"s{i}.b{j}.kernel", stage.kernels),
                           Decision(f"s{i}.b{j}.ratio", stage.exp_ratios),
                           Decision(f"s{i}.b{j}.se", stage.se),
                           Decision(f"s{i}.b{j}.act", stage.acts)]
        result.append(Decision("head", tuple(range(len(self.heads)))))
        return tuple(result)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {d.name: i for i, d in enumerate(self.decisions)}

    def decode(self, vector: Sequence[int], name: str = "sampled") -> ArchSpec:
        """The architecture of a vector of choice indices (one per decision)."""
        decisions = self.decisions
        if len(vector) != len(decisions):
            raise SpecError("vector", f"expected {len(decisions)} choice indices, got "
                                      f"{len(vector)}")
        values = {}
        for decision, index in zip(decisions, vector, strict=True):
            index = int(index)
            if not 0 <= index < len(decision.choices):
                raise SpecError(decision.name, f"choice index {index} out of range "
                                               f"0..{len(decision.choices) - 1}")
            values[decision.name] = decision.choices[index]
        return self.from_params(values, name=name)

    def from_params(self, params: Mapping[str, Any], name: str = "sampled") -> ArchSpec:
        """The architecture of a ``{decision name: value}`` mapping (Optuna's trial.params)."""
        def get(key: str) -> Any:
            if key not in params:
                raise SpecError(key, "missing decision")
            value = params[key]
            if value not in self.decisions[self._index[key]].choices:
                raise SpecError(key, f"{value!r} is not one of "
                                     f"{self.decisions[self._index[key]].choices}")
            return value

        stem = StemSpec(out_ch=get("stem.width"), act=get("stem.act"))
        blocks: list[BlockSpec] = []
        in_ch = stem.out_ch
        for i, stage in enumerate(self.stages):
            depth, width = get(f"s{i}.depth"), get(f"s{i}.width")
            for j in range(depth):
                ratio = get(f"s{i}.b{j}.ratio")
                blocks.append(BlockSpec(kind="bneck", kernel=get(f"s{i}.b{j}.kernel"),
                                        in_ch=in_ch, exp_ch=stage.exp_width(in_ch, ratio),
                                        out_ch=width, se=get(f"s{i}.b{j}.se"),
                                        act=get(f"s{i}.b{j}.act"),
                                        stride=stage.stride if j == 0 else 1))
                in_ch = width
        return self.build_spec(stem, blocks, self.heads[get("head")], name)

    def params(self, spec: ArchSpec) -> dict[str, Any]:
        """``{decision name: value}`` of an architecture of this space (inverse of
        ``from_params``); raises ``SpecError`` if the space does not contain it."""
        if not self.contains(spec):
            raise SpecError("spec", f"{spec.name!r} is not an architecture of the "
                                    f"{self.name} space")
        values = {d.name: d.choices[0] for d in self.decisions}
        values["stem.width"], values["stem.act"] = spec.stem.out_ch, spec.stem.act
        values["head"] = self.heads.index(spec.head)
        stage_ids = self.stage_of_blocks(spec)
        for i, stage in enumerate(self.stages):
            run = [b for b, s in zip(spec.blocks, stage_ids, strict=True) if s == i]
            values[f"s{i}.depth"] = len(run)
            if run:
                values[f"s{i}.width"] = run[0].out_ch
            for j, block in enumerate(run):
                ratio = next(r for r in stage.exp_ratios
                             if stage.exp_width(block.in_ch, r) == block.exp_ch)
                values.update({f"s{i}.b{j}.kernel": block.kernel, f"s{i}.b{j}.ratio": ratio,
                               f"s{i}.b{j}.se": block.se, f"s{i}.b{j}.act": block.act})
        return values

    def encode(self, spec: ArchSpec) -> np.ndarray:
        """Choice indices (int64, one per decision) of an architecture of this space."""
        values = self.params(spec)
        return np.array([d.choices.index(values[d.name]) for d in self.decisions],
                        dtype=np.int64)

    def active(self, vector: Sequence[int]) -> np.ndarray:
        """Which decisions of ``vector`` matter (False for slots beyond a stage's depth)."""
        mask = np.ones(len(self.decisions), dtype=bool)
        for i, stage in enumerate(self.stages):
            depth = stage.depths[int(vector[self._index[f"s{i}.depth"]])]
            if depth == 0:
                mask[self._index[f"s{i}.width"]] = False
            for j in range(depth, max(stage.depths)):
                for option in ("kernel", "ratio", "se", "act"):
                    mask[self._index[f"s{i}.b{j}.{option}"]] = False
        return mask

    def distributions(self) -> dict[str, Any]:
        """Optuna distributions, one categorical per decision (for ``study.ask``)."""
        # lazy: optuna takes ~0.3 s to import (-X importtime); the space serves without it
        from optuna.distributions import CategoricalDistribution

        return {d.name: CategoricalDistribution(d.choices) for d in self.decisions}

    def suggest(self, trial: Any, name: str = "sampled") -> ArchSpec:
        """Define-by-run for an Optuna trial: every decision through ``suggest_categorical``."""
        return self.from_params({d.name: trial.suggest_categorical(d.name, d.choices)
                                 for d in self.decisions}, name=name)

    def mutate(self, spec: ArchSpec, rng: np.random.Generator, prob: float = 0.1,
               name: str = "mutant", stage_prob: float = 0.0) -> ArchSpec:
        """Resample each active decision with probability ``prob`` (Once-for-All's mutation);
        the result always differs from ``spec`` (one decision is forced if none changed).

        ``stage_prob`` > 0 adds stage moves: each stage, with that probability, gets one drawn
        value of one block option (kernel, ratio, se or act) in all its block slots. Squeeze-
        excite off in a whole stage is then one move, where per-decision mutation needs every
        block's flag drawn at once (and one flag's latency is below an estimator's noise).
        With ``stage_prob`` 0 the draws are exactly Once-for-All's."""
        vector = self.encode(spec)
        mask = self.active(vector)
        sizes = np.array([len(d.choices) for d in self.decisions])
        changeable = np.flatnonzero(mask & (sizes > 1))
        changed = False
        for index in changeable:
            if rng.random() < prob:
                new = int(rng.integers(sizes[index]))
                changed |= new != vector[index]
                vector[index] = new
        for i, stage in enumerate(self.stages if stage_prob > 0 else ()):
            if rng.random() >= stage_prob:
                continue
            option = ("kernel", "ratio", "se", "act")[int(rng.integers(4))]
            slots = [self._index[f"s{i}.b{j}.{option}"] for j in range(max(stage.depths))]
            new = int(rng.integers(sizes[slots[0]]))
            changed |= bool(np.any(mask[slots] & (vector[slots] != new)))
            vector[slots] = new
        if not changed and len(changeable):
            index = int(changeable[rng.integers(len(changeable))])
            vector[index] = (vector[index] + 1 + rng.integers(sizes[index] - 1)) % sizes[index]
        return self.decode(vector, name=name)

    def crossover(self, a: ArchSpec, b: ArchSpec, rng: np.random.Generator,
                  name: str = "child") -> ArchSpec:
        """Each decision taken from ``a`` or ``b`` with equal probability (Once-for-All)."""
        va, vb = self.encode(a), self.encode(b)
        pick = rng.random(len(va)) < 0.5
        return self.decode(np.where(pick, va, vb), name=name)

    def sample_vector(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.integers(len(d.choices)) for d in self.decisions], dtype=np.int64)
