"""The supernet's modules: elastic convolutions, depthwise kernels, squeeze-excite, blocks and
heads, and the :class:`Supernet` over a block-wise space, whose ``extract(spec)`` gives the
ordinary network of ``nas.build_model(spec)`` carrying the supernet's weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.build import build_model
from nas.errors import EstimatorError
from nas.modules import depthwise_conv2d
from nas.spec import ArchSpec, BlockSpec, HeadSpec, v3_squeeze_channels
from search_spaces.mobilenetv3 import BlockwiseSpace, StageChoices

__all__ = ["BN_EPS", "BN_MOMENTUM", "ElasticBlock", "ElasticBN", "ElasticConv", "ElasticDepthwise",
           "ElasticHead", "ElasticSE", "Supernet"]

BN_EPS = 1e-3
BN_MOMENTUM = 0.1  # a supernet is trained briefly; V3's 0.01 would leave stale statistics


_ACTIVATIONS = {"RE": F.relu, "HS": F.hardswish, "RE6": F.relu6}


def _act(x: torch.Tensor, act: str) -> torch.Tensor:
    try:
        return _ACTIVATIONS[act](x)
    except KeyError:  # a spec cannot hold one (it is validated): a bug, never a silent ReLU6
        raise ValueError(f"unknown activation {act!r} (known: {', '.join(_ACTIVATIONS)})") \
            from None


class ElasticBN(nn.BatchNorm2d):
    """BatchNorm over the first ``channels`` features (slices share the full buffers)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        c = x.shape[1]
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c],
                            self.bias[:c], self.training, self.momentum, self.eps)


class ElasticConv(nn.Module):
    """A dense conv whose input and output channels are prefixes of the largest one."""

    def __init__(self, max_in: int, max_out: int, kernel: int = 1, stride: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in, kernel, kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.bn = ElasticBN(max_out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.stride, self.padding = stride, (kernel - 1) // 2

    def sliced(self, in_ch: int, out_ch: int) -> torch.Tensor:
        return self.weight[:out_ch, :in_ch]

    def forward(self, x: torch.Tensor, out_ch: int) -> torch.Tensor:
        y = F.conv2d(x, self.sliced(x.shape[1], out_ch), stride=self.stride,
                     padding=self.padding)
        return self.bn(y)


class ElasticDepthwise(nn.Module):
    """7x7 depthwise weights; smaller kernels through learned centre transforms."""

    def __init__(self, max_ch: int, stride: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_ch, 1, 7, 7))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.to_5 = nn.Parameter(torch.eye(25))
        self.to_3 = nn.Parameter(torch.eye(9))
        self.bn = ElasticBN(max_ch, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.stride = stride

    def kernel(self, channels: int, size: int) -> torch.Tensor:
        w = self.weight[:channels]
        if size == 7:
            return w
        w = (w[:, :, 1:6, 1:6].reshape(channels, 25) @ self.to_5).reshape(channels, 1, 5, 5)
        if size == 5:
            return w
        return (w[:, :, 1:4, 1:4].reshape(channels, 9) @ self.to_3).reshape(channels, 1, 3, 3)

    def forward(self, x: torch.Tensor, size: int) -> torch.Tensor:
        c = x.shape[1]
        # a small input's last stages are 1x1 or 2x2: only the taps that meet them are used
        y = depthwise_conv2d(x, self.kernel(c, size), None, (self.stride, self.stride),
                             (size // 2, size // 2))
        return self.bn(y)


class ElasticSE(nn.Module):
    def __init__(self, max_ch: int, max_squeeze: int):
        super().__init__()
        self.fc1 = nn.Conv2d(max_ch, max_squeeze, 1)
        self.fc2 = nn.Conv2d(max_squeeze, max_ch, 1)

    def forward(self, x: torch.Tensor, squeeze: int) -> torch.Tensor:
        c = x.shape[1]
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.relu(F.conv2d(s, self.fc1.weight[:squeeze, :c], self.fc1.bias[:squeeze]))
        s = F.hardsigmoid(F.conv2d(s, self.fc2.weight[:c, :squeeze], self.fc2.bias[:c]))
        return s * x


class _Inner(nn.Module):
    """Depthwise conv, squeeze-excite and projection of a block."""

    def __init__(self, channels: int, max_out: int, stride: int):
        super().__init__()
        self.depthwise = ElasticDepthwise(channels, stride)
        self.se = ElasticSE(channels, v3_squeeze_channels(channels))
        self.project = ElasticConv(channels, max_out)

    def forward(self, y: torch.Tensor, block: BlockSpec) -> torch.Tensor:
        y = _act(self.depthwise(y, block.kernel), block.act)
        if block.se:
            y = self.se(y, v3_squeeze_channels(block.exp_ch))
        return self.project(y, block.out_ch)


class ElasticBlock(nn.Module):
    """An inverted residual whose kernel, expansion, output width, SE and activation vary.

    Without expansion (ratio 1) the depthwise conv sees the block's input rather than expanded
    features, so that case has its own depthwise, SE and projection weights (``unexpanded``):
    sharing them made every ratio a different function of the same weights, and kept the
    expansion channels from being sorted by importance.
    """

    def __init__(self, max_in: int, max_exp: int, max_out: int, stride: int,
                 unexpanded: bool = True):
        super().__init__()
        self.expand = ElasticConv(max_in, max_exp)
        self.expanded = _Inner(max_exp, max_out, stride)
        self.unexpanded = _Inner(max_in, max_out, stride) if unexpanded else None

    def inner(self, block: BlockSpec) -> _Inner:
        if block.exp_ch != block.in_ch:
            return self.expanded
        if self.unexpanded is None:
            raise ValueError("this supernet block has no ratio-1 (unexpanded) weights")
        return self.unexpanded

    def forward(self, x: torch.Tensor, block: BlockSpec) -> torch.Tensor:
        y = x
        if block.exp_ch != block.in_ch:
            y = _act(self.expand(y, block.exp_ch), block.act)
        y = self.inner(block)(y, block)
        return y + x if block.has_residual else y


class ElasticHead(nn.Module):
    def __init__(self, max_in: int, head: HeadSpec, num_classes: int):
        super().__init__()
        width = max_in
        self.conv = None
        if head.conv_ch is not None:
            self.conv = ElasticConv(max_in, head.conv_ch)
            width = head.conv_ch
        self.hidden = None
        if head.hidden_ch is not None:
            self.hidden = nn.Linear(width, head.hidden_ch)
            width = head.hidden_ch
        self.classifier = nn.Linear(width, num_classes)
        self.spec = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.spec
        if self.conv is not None:
            x = _act(self.conv(x, head.conv_ch), head.conv_act)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        # Without a head conv, the first linear sees the (elastic) last width: slice it.
        if self.hidden is not None:
            x = _act(F.linear(x, self.hidden.weight[:, :x.shape[1]], self.hidden.bias),
                     head.hidden_act)
        x = F.dropout(x, head.dropout, self.training)
        return F.linear(x, self.classifier.weight[:, :x.shape[1]], self.classifier.bias)


def _max_in_widths(space: BlockwiseSpace) -> list[int]:
    return [max(widths) for widths in space.in_widths()]


def _max_exp(stage: StageChoices, max_in: int) -> int:
    return max(stage.exp_width(max_in, r) for r in stage.exp_ratios)


class Supernet(nn.Module):
    def __init__(self, space: BlockwiseSpace):
        super().__init__()
        self.space = space
        self.stem = ElasticConv(3, max(space.stem_widths), kernel=3, stride=2)
        self.stages = nn.ModuleList()
        for stage, max_in in zip(space.stages, _max_in_widths(space), strict=True):
            width = max(stage.widths)
            blocks = nn.ModuleList()
            for index in range(max(stage.depths)):
                block_in = max_in if index == 0 else width
                blocks.append(ElasticBlock(block_in, _max_exp(stage, block_in), width,
                                           stage.stride if index == 0 else 1,
                                           unexpanded=1.0 in stage.exp_ratios))
            self.stages.append(blocks)
        max_last = max(space.last_widths())
        self.heads = nn.ModuleList(ElasticHead(max_last, h, space.num_classes)
                                   for h in space.heads)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def _slots(self, spec: ArchSpec) -> list[tuple[int, int]]:
        if not self.space.contains(spec):
            raise EstimatorError(f"{spec.name} is not in the supernet's space")
        stage_ids = self.space.stage_of_blocks(spec)
        slots, previous, position = [], None, 0
        for stage_id in stage_ids:
            position = position + 1 if stage_id == previous else 0
            slots.append((stage_id, position))
            previous = stage_id
        return slots

    def features(self, x: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
        """The stem and blocks of ``spec``: what its head sees."""
        x = _act(self.stem(x, spec.stem.out_ch), spec.stem.act)
        for block, (stage, position) in zip(spec.blocks, self._slots(spec), strict=True):
            x = self.stages[stage][position](x, block)
        return x

    def forward(self, x: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
        x = self.features(x, spec)  # first: it checks that spec is in the space
        return self.heads[self.space.heads.index(spec.head)](x)

    # ------------------------------------------------------------------ sub-networks
    @torch.no_grad()
    def extract(self, spec: ArchSpec) -> nn.Module:
        """``build_model(spec)`` with this supernet's weights (an ordinary network)."""
        model = build_model(spec)
        features = list(model.features)

        def copy_conv(target: nn.Sequential, source: ElasticConv, in_ch: int, out_ch: int,
                      weight: torch.Tensor | None = None) -> None:
            target[0].weight.copy_(source.sliced(in_ch, out_ch) if weight is None else weight)
            copy_bn(target[1], source.bn, out_ch)

        def copy_bn(target: nn.BatchNorm2d, source: ElasticBN, channels: int) -> None:
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(target, name).copy_(getattr(source, name)[:channels])

        copy_conv(features[0], self.stem, 3, spec.stem.out_ch)
        for index, (block, (stage, position)) in enumerate(
                zip(spec.blocks, self._slots(spec), strict=True)):
            source: ElasticBlock = self.stages[stage][position]
            layers = list(features[index + 1].block)
            if block.exp_ch != block.in_ch:
                copy_conv(layers.pop(0), source.expand, block.in_ch, block.exp_ch)
            inner = source.inner(block)
            dw = layers.pop(0)
            copy_conv(dw, inner.depthwise, 1, block.exp_ch,
                      weight=inner.depthwise.kernel(block.exp_ch, block.kernel))
            if block.se:
                se, squeeze = layers.pop(0), v3_squeeze_channels(block.exp_ch)
                se.fc1.weight.copy_(inner.se.fc1.weight[:squeeze, :block.exp_ch])
                se.fc1.bias.copy_(inner.se.fc1.bias[:squeeze])
                se.fc2.weight.copy_(inner.se.fc2.weight[:block.exp_ch, :squeeze])
                se.fc2.bias.copy_(inner.se.fc2.bias[:block.exp_ch])
            copy_conv(layers.pop(0), inner.project, block.exp_ch, block.out_ch)
        head: ElasticHead = self.heads[self.space.heads.index(spec.head)]
        width = spec.out_ch
        if head.conv is not None:
            copy_conv(features[-1], head.conv, width, spec.head.conv_ch)
        linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
        sources = [m for m in (head.hidden, head.classifier) if m is not None]
        for target, source_linear in zip(linears, sources, strict=True):
            target.weight.copy_(source_linear.weight[:, :target.in_features])
            target.bias.copy_(source_linear.bias)
        return model

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Order every block's expansion channels by importance (L1 norm of the projection's
        input weights), so that any expansion width is a prefix of the best channels."""
        for stage in self.stages:
            for block in stage:
                # Ratio-1 networks have their own weights (``unexpanded``): untouched here.
                inner = block.expanded
                importance = inner.project.weight.abs().sum(dim=(0, 2, 3))
                order = torch.argsort(importance, descending=True)
                block.expand.weight.copy_(block.expand.weight[order])
                _permute_bn(block.expand.bn, order)
                inner.depthwise.weight.copy_(inner.depthwise.weight[order])
                _permute_bn(inner.depthwise.bn, order)
                inner.se.fc1.weight.copy_(inner.se.fc1.weight[:, order])
                inner.se.fc2.weight.copy_(inner.se.fc2.weight[order])
                inner.se.fc2.bias.copy_(inner.se.fc2.bias[order])
                inner.project.weight.copy_(inner.project.weight[:, order])


def _permute_bn(bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        tensor = getattr(bn, name)
        tensor.copy_(tensor[order])
