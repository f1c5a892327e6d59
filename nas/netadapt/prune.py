"""Channel pruning of MobileNetV2/V3-style networks, as NetAdapt (MobileNetV3 variant) needs it.

Two things live here, both independent of latency and training:

* **Proposals on the spec** (pure Python): which widths may shrink and what the network becomes.
  A *tensor group* is a set of activations between blocks whose widths must stay equal because
  residual additions join them (a stage's first output and every residual block's output after
  it). Shrinking a group changes its producing layer's output, every member's input and output,
  and the next block's input. An *expansion* is one bneck block's inner width (its expansion
  conv, depthwise conv, SE and projection input). The head's 1x1 conv and hidden linear are
  prunable layers too.
* **Weight surgery on the model**: the pruned network with the weights carried over, keeping
  the channels whose filters have the largest L2 norm, the same indices in every tensor that
  touches them.

A proposal never changes the network's structure: a block keeps its residual connection (or
lack of one) and its expansion conv (or lack of one); widths that would change either are
skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from nas.build import build_model, spec_of
from nas.errors import PruneError
from nas.spec import ArchSpec

__all__ = ["Kept", "Proposal", "PruneError", "TensorGroup", "apply", "candidate_widths",
           "check_prunable", "keep_indices", "kept_channels", "proposal_sites", "prune_model",
           "site_width", "tensor_groups"]


@dataclass(frozen=True)
class TensorGroup:
    """Activations tied by residual additions. Tensor 0 is the stem's output, tensor ``i + 1``
    block ``i``'s output."""

    tensors: tuple[int, ...]

    @property
    def residual(self) -> bool:
        return len(self.tensors) > 1


@dataclass(frozen=True, order=True)
class Proposal:
    """Shrink one prunable site to ``width`` channels.

    ``site`` is ``("expand", block)``, ``("tensor", first_tensor)``, ``("head", "conv")`` or
    ``("head", "hidden")``.
    """

    kind: str
    index: int | str
    width: int

    @property
    def site(self) -> tuple[str, int | str]:
        return (self.kind, self.index)

    def describe(self, spec: ArchSpec) -> str:
        if self.kind == "expand":
            block = spec.blocks[self.index]
            return f"block {self.index} expansion {block.exp_ch}→{self.width}"
        if self.kind == "tensor":
            group = _group_of(spec, self.index)
            old = _tensor_width(spec, self.index)
            blocks = [t - 1 for t in group.tensors if t > 0]
            where = ("stem output" if self.index == 0 else
                     f"block {self.index - 1} output")
            if group.residual:
                where += f" (residual with block{'s' if len(blocks) > 1 else ''} " \
                         f"{', '.join(str(b) for b in blocks if b != self.index - 1)})"
            return f"{where} {old}→{self.width}"
        return f"head {self.index} {site_width(spec, self.site)}→{self.width}"


# --------------------------------------------------------------------------- the spec side
def check_prunable(spec: ArchSpec) -> ArchSpec:
    """The concrete network (``width_mult`` applied), or ``PruneError`` if it is not made of
    bneck blocks."""
    kinds = sorted({b.kind for b in spec.blocks} - {"bneck"})
    if kinds:
        raise PruneError(f"NetAdapt prunes networks of bneck blocks (MobileNetV2/V3, MnasNet); "
                         f"{spec.name} has {', '.join(kinds)} blocks")
    return spec.scaled()


def tensor_groups(spec: ArchSpec) -> list[TensorGroup]:
    """Every set of inter-block activations that must keep one width, in network order."""
    groups: list[list[int]] = [[0]]
    for index, block in enumerate(spec.blocks):
        if block.has_residual:
            groups[-1].append(index + 1)
        else:
            groups.append([index + 1])
    return [TensorGroup(tuple(g)) for g in groups]


def _group_of(spec: ArchSpec, first: int) -> TensorGroup:
    for group in tensor_groups(spec):
        if group.tensors[0] == first:
            return group
    raise PruneError(f"tensor {first} does not start a tensor group of {spec.name}")


def _tensor_width(spec: ArchSpec, tensor: int) -> int:
    return spec.stem.out_ch if tensor == 0 else spec.blocks[tensor - 1].out_ch


def _structure(spec: ArchSpec) -> tuple:
    """What pruning must not change: residual connections and which blocks expand."""
    return (tuple(b.has_residual for b in spec.blocks),
            tuple(b.exp_ch != b.in_ch for b in spec.blocks),
            tuple(spec.se_channels(b) > 0 for b in spec.blocks))


def proposal_sites(spec: ArchSpec) -> list[tuple[str, int | str]]:
    """Every prunable site: tensor groups, block expansions, then the head's layers.

    The last tensor group (feeding the head) is included; a block without an expansion conv has
    no expansion of its own (its inner width is its input's).
    """
    sites: list[tuple[str, int | str]] = [("tensor", g.tensors[0]) for g in tensor_groups(spec)]
    sites += [("expand", i) for i, b in enumerate(spec.blocks) if b.exp_ch != b.in_ch]
    if spec.head.conv_ch is not None:
        sites.append(("head", "conv"))
    if spec.head.hidden_ch is not None:
        sites.append(("head", "hidden"))
    return sites


def site_width(spec: ArchSpec, site: tuple[str, int | str]) -> int:
    kind, index = site
    if kind == "tensor":
        return _tensor_width(spec, int(index))
    if kind == "expand":
        return int(spec.blocks[int(index)].exp_ch)
    if kind != "head" or index not in ("conv", "hidden"):
        raise PruneError(f"unknown proposal site {site!r} (known: ('expand', block), "
                         f"('tensor', index), ('head', 'conv'), ('head', 'hidden'))")
    value = spec.head.conv_ch if index == "conv" else spec.head.hidden_ch
    if value is None:
        raise PruneError(f"{spec.name} has no head {index} layer")
    return value


def apply(spec: ArchSpec, proposal: Proposal) -> ArchSpec:
    """The network with ``proposal`` applied (``PruneError`` if it would change the structure)."""
    spec = spec.scaled()
    width = proposal.width
    if width < 1:
        raise PruneError(f"a layer needs at least one channel, got {width}")
    blocks = list(spec.blocks)
    stem, head = spec.stem, spec.head
    if proposal.kind == "expand":
        index = int(proposal.index)
        block = blocks[index]
        if block.exp_ch == block.in_ch:
            raise PruneError(f"block {index} has no expansion conv to shrink")
        blocks[index] = dataclasses.replace(block, exp_ch=width)
    elif proposal.kind == "tensor":
        group = _group_of(spec, int(proposal.index))
        for tensor in group.tensors:
            if tensor == 0:
                stem = dataclasses.replace(stem, out_ch=width)
            else:
                blocks[tensor - 1] = dataclasses.replace(blocks[tensor - 1], out_ch=width)
            if tensor < len(blocks):  # the consumer's input (its inner width, if it has no
                consumer = blocks[tensor]  # expansion conv)
                inner = width if consumer.exp_ch == consumer.in_ch else consumer.exp_ch
                blocks[tensor] = dataclasses.replace(consumer, in_ch=width, exp_ch=inner)
    elif proposal.kind == "head" and proposal.index in ("conv", "hidden"):
        site_width(spec, proposal.site)  # raises if absent
        field = "conv_ch" if proposal.index == "conv" else "hidden_ch"
        head = dataclasses.replace(head, **{field: width})
    else:
        raise PruneError(f"unknown proposal site {proposal.site!r}")
    new = dataclasses.replace(spec, stem=stem, blocks=tuple(blocks), head=head)
    if _structure(new) != _structure(spec):
        raise PruneError(f"{proposal.describe(spec)} would change which blocks have a residual "
                         f"connection or an expansion conv")
    return new


def candidate_widths(spec: ArchSpec, site: tuple[str, int | str], *, divisor: int = 8,
                     min_channels: int = 8) -> Iterator[tuple[int, ArchSpec]]:
    """Smaller widths for ``site`` (multiples of ``divisor``, largest first) with the network
    each gives; widths that would change the structure are skipped."""
    current = site_width(spec, site)
    top = (current - 1) // divisor * divisor
    for width in range(top, max(min_channels, 1) - 1, -divisor):
        if width < 1:
            break
        try:
            yield width, apply(spec, Proposal(site[0], site[1], width))
        except PruneError:
            continue


# --------------------------------------------------------------------------- the model side
def keep_indices(scores, count: int):
    """Indices of the ``count`` largest ``scores``, in ascending channel order (ties: lower
    index first)."""
    if count > len(scores):
        raise PruneError(f"cannot keep {count} of {len(scores)} channels")
    order = torch.argsort(-scores.double(), stable=True)[:count]
    return torch.sort(order).values


def _norms(weight) -> object:
    """L2 norm of every output filter of a conv or linear weight."""
    return weight.detach().flatten(1).double().pow(2).sum(1)


@dataclass
class Kept:
    """Which channels survive, as ascending index tensors: per tensor (0: the stem's output),
    per block's inner width (``expand``; a block without an expansion conv shares its input's),
    per SE squeeze, and for the head's conv and hidden linear (None if absent)."""

    tensors: dict[int, Any]
    expand: dict[int, Any]
    squeeze: dict[int, Any]
    head_conv: Any = None
    hidden: Any = None


def kept_channels(model, new_spec: ArchSpec) -> Kept:
    """The channels of ``model`` that ``new_spec`` keeps: the largest L2 norms of the filters
    producing them (summed over every producer of a residual group)."""
    old_spec = spec_of(model).scaled()
    new_spec = new_spec.scaled()
    if _structure(old_spec) != _structure(new_spec) or len(old_spec) != len(new_spec):
        raise PruneError("the pruned spec must keep the model's blocks, residuals and expansions")
    feats = model.features
    blocks = [feats[i + 1].block for i in range(len(old_spec.blocks))]
    kept = Kept({}, {}, {})
    for group in tensor_groups(old_spec):
        scores = sum(_norms(feats[0][0].weight if t == 0 else blocks[t - 1][-1][0].weight)
                     for t in group.tensors)
        indices = keep_indices(scores, _tensor_width(new_spec, group.tensors[0]))
        for t in group.tensors:
            kept.tensors[t] = indices
    for i, (ob, nb) in enumerate(zip(old_spec.blocks, new_spec.blocks, strict=True)):
        if ob.exp_ch != ob.in_ch:
            kept.expand[i] = keep_indices(_norms(blocks[i][0][0].weight), nb.exp_ch)
        else:
            kept.expand[i] = kept.tensors[i]
        if old_spec.se_channels(ob):
            se = next(m for m in blocks[i] if hasattr(m, "fc1"))
            fc1 = se.fc1.weight.detach().index_select(1, kept.expand[i])
            kept.squeeze[i] = keep_indices(_norms(fc1), new_spec.se_channels(nb))
    if old_spec.head.conv_ch is not None:
        kept.head_conv = keep_indices(_norms(feats[len(blocks) + 1][0].weight),
                                      new_spec.head.conv_ch)
    if old_spec.head.hidden_ch is not None:
        kept.hidden = keep_indices(_norms(model.classifier[0].weight), new_spec.head.hidden_ch)
    return kept


def prune_model(model, new_spec: ArchSpec, kept: Kept | None = None):
    """A new model for ``new_spec`` (a pruned version of the model's spec, differing only in
    channel widths), carrying the weights of the channels in ``kept`` (by default
    :func:`kept_channels`): the same indices in every tensor that touches them."""
    kept = kept or kept_channels(model, new_spec)
    old_spec = spec_of(model).scaled()
    old = model.state_dict()
    new_model = build_model(new_spec_for(model, new_spec))
    out: dict[str, torch.Tensor] = {}

    def take(key: str, rows=None, cols=None) -> None:
        value = old[key]
        if rows is not None:
            value = value.index_select(0, rows)
        if cols is not None:
            value = value.index_select(1, cols)
        out[key] = value.clone()

    def conv_bn(prefix: str, rows, cols) -> None:
        take(f"{prefix}.0.weight", rows, cols)
        for name in ("weight", "bias", "running_mean", "running_var"):
            take(f"{prefix}.1.{name}", rows)
        take(f"{prefix}.1.num_batches_tracked")

    conv_bn("features.0", kept.tensors[0], None)
    for i, block in enumerate(old_spec.blocks):
        prefix = f"features.{i + 1}.block"
        k_exp, layer = kept.expand[i], 0
        if block.exp_ch != block.in_ch:
            conv_bn(f"{prefix}.0", k_exp, kept.tensors[i])
            layer = 1
        conv_bn(f"{prefix}.{layer}", k_exp, None)  # depthwise: one filter per channel
        layer += 1
        if i in kept.squeeze:
            k_se = kept.squeeze[i]
            take(f"{prefix}.{layer}.fc1.weight", k_se, k_exp)
            take(f"{prefix}.{layer}.fc1.bias", k_se)
            take(f"{prefix}.{layer}.fc2.weight", k_exp, k_se)
            take(f"{prefix}.{layer}.fc2.bias", k_exp)
            layer += 1
        conv_bn(f"{prefix}.{layer}", kept.tensors[i + 1], k_exp)

    channels = kept.tensors[len(old_spec.blocks)]
    if kept.head_conv is not None:
        conv_bn(f"features.{len(old_spec.blocks) + 1}", kept.head_conv, channels)
        channels = kept.head_conv
    last = 1  # Dropout, Linear
    if kept.hidden is not None:
        take("classifier.0.weight", kept.hidden, channels)
        take("classifier.0.bias", kept.hidden)
        channels, last = kept.hidden, 3  # Linear, activation, Dropout, Linear
    take(f"classifier.{last}.weight", None, channels)
    take(f"classifier.{last}.bias")

    missing = sorted(set(new_model.state_dict()) - set(out))
    if missing:  # a layout this surgery does not know: fail loudly rather than half-copy
        raise PruneError(f"weights not carried over: {', '.join(missing[:4])}")
    new_model.load_state_dict(out, strict=True)
    return new_model


def new_spec_for(model, new_spec: ArchSpec) -> ArchSpec:
    """``new_spec``'s widths on the model's data (classes, input size and channels)."""
    current = spec_of(model)
    return dataclasses.replace(new_spec.scaled(), name=current.name,
                               num_classes=current.num_classes, input_size=current.input_size,
                               stem=dataclasses.replace(new_spec.scaled().stem,
                                                        in_ch=current.stem.in_ch))
