"""PyTorch layers of the networks, built from an explicit layer plan.

This file imports nothing but torch: ``nas export --format py`` copies it verbatim into the
standalone model file, so the exported model and the one ``nas.build_model`` returns are the
same code. The module layout follows torchvision's MobileNetV3 (``features`` / ``avgpool`` /
``classifier``, ``block`` inside each inverted residual, ``fc1``/``fc2`` inside SE), so
torchvision's V3 weights load with ``strict=True``.

A plan is a plain dict with every channel count already resolved::

    {"in_ch": 3, "num_classes": 1000, "bn_eps": 0.001, "bn_momentum": 0.01,
     "se_gate": "hardsigmoid",
     "stem": {"out_ch": 16, "kernel": 3, "stride": 2, "act": "HS", "maxpool": False},
     "blocks": [{"kind": "bneck", "in_ch": 16, "exp_ch": 16, "out_ch": 16, "kernel": 3,
                 "stride": 1, "dilation": 1, "se_ch": 0, "act": "RE"}, ...],
     "head": {"conv_ch": 960, "conv_act": "HS", "hidden_ch": 1280, "hidden_act": "HS",
              "dropout": 0.2}}
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def make_activation(name: str | None) -> nn.Module | None:
    """RE = ReLU, HS = h-swish, RE6 = ReLU6 (the paper's NL column)."""
    if name is None:
        return None
    if name == "RE":
        return nn.ReLU(inplace=True)
    if name == "HS":
        return nn.Hardswish(inplace=True)
    if name == "RE6":
        return nn.ReLU6(inplace=True)
    raise ValueError(f"unknown activation {name!r} (known: RE, HS, RE6)")


def within_reach(weight: torch.Tensor, padding: tuple[int, int],
                 size: list[int]) -> tuple[torch.Tensor, tuple[int, int]]:
    """The kernel taps that can meet the input, and the padding that goes with them.

    With an odd kernel ``k``, padding ``k // 2`` and no dilation, a tap ``d`` away from the
    centre only ever meets padding once ``|d| >= size`` (whatever the stride), so cropping the
    kernel to ``2 * size - 1`` taps changes neither the output nor its shape. It changes the
    cost: a 7x7 depthwise conv on the 1x1 or 2x2 features of a small input computes 49 taps
    for 1 or 9 useful ones, and its backward pass is the slowest op of such a network.
    Gradients of the skipped taps are zero either way."""
    kh, kw = weight.shape[-2], weight.shape[-1]
    ch, cw = 0, 0
    if kh % 2 == 1 and padding[0] == kh // 2:
        ch = max(0, padding[0] - (size[0] - 1))
    if kw % 2 == 1 and padding[1] == kw // 2:
        cw = max(0, padding[1] - (size[1] - 1))
    if ch == 0 and cw == 0:
        return weight, padding
    return weight[:, :, ch:kh - ch, cw:kw - cw], (padding[0] - ch, padding[1] - cw)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (zero padding) that skips the kernel taps which only ever meet the
    padding (:func:`within_reach`): the same outputs, parameters and state dict."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError("Conv2d takes zero padding given as numbers")

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        padding = (self.padding[0], self.padding[1])
        if self.dilation[0] == 1 and self.dilation[1] == 1:
            weight, padding = within_reach(weight, padding, input.shape[-2:])
        return nn.functional.conv2d(input, weight, bias, self.stride, padding, self.dilation,
                                    self.groups)


class ConvNormAct(nn.Sequential):
    """Conv -> BatchNorm -> activation; ``act=None`` leaves the output linear."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, stride: int = 1, groups: int = 1,
                 dilation: int = 1, act: str | None, bn_eps: float, bn_momentum: float):
        padding = (kernel - 1) // 2 * dilation
        layers: list[nn.Module] = [
            Conv2d(in_ch, out_ch, kernel, stride, padding, dilation=dilation, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_ch, eps=bn_eps, momentum=bn_momentum),
        ]
        activation = make_activation(act)
        if activation is not None:
            layers.append(activation)
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Squeeze-excite: ReLU inside; hard-sigmoid gate (MobileNetV3) or sigmoid (MnasNet)."""

    def __init__(self, channels: int, squeeze_ch: int, gate: str = "hardsigmoid"):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_ch, 1)
        self.fc2 = nn.Conv2d(squeeze_ch, channels, 1)
        self.activation = nn.ReLU()
        gates = {"sigmoid": nn.Sigmoid, "hardsigmoid": nn.Hardsigmoid}
        if gate not in gates:
            raise ValueError(f"unknown SE gate {gate!r} (known: {', '.join(gates)})")
        self.scale_activation = gates[gate]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 bneck: [expand 1x1] -> depthwise -> [SE] -> linear project 1x1."""

    def __init__(self, cfg: dict[str, Any], bn_eps: float, bn_momentum: float,
                 se_gate: str = "hardsigmoid"):
        super().__init__()
        in_ch, exp_ch, out_ch = cfg["in_ch"], cfg["exp_ch"], cfg["out_ch"]
        norm = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        layers: list[nn.Module] = []
        if exp_ch != in_ch:
            layers.append(ConvNormAct(in_ch, exp_ch, 1, act=cfg["act"], **norm))
        layers.append(ConvNormAct(exp_ch, exp_ch, cfg["kernel"], stride=cfg["stride"],
                                  dilation=cfg["dilation"], groups=exp_ch, act=cfg["act"],
                                  **norm))
        if cfg["se_ch"]:
            layers.append(SqueezeExcitation(exp_ch, cfg["se_ch"], se_gate))
        layers.append(ConvNormAct(exp_ch, out_ch, 1, act=None, **norm))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = cfg["stride"] == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out += x  # in place, as torchvision: one allocation less per block
        return out


class DepthwiseSeparable(nn.Module):
    """MobileNetV1: depthwise conv -> BN -> act -> pointwise conv -> BN -> act."""

    def __init__(self, cfg: dict[str, Any], bn_eps: float, bn_momentum: float,
                 se_gate: str = "hardsigmoid"):
        super().__init__()
        norm = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        in_ch = cfg["in_ch"]
        self.block = nn.Sequential(
            ConvNormAct(in_ch, in_ch, cfg["kernel"], stride=cfg["stride"],
                        dilation=cfg["dilation"], groups=in_ch, act=cfg["act"], **norm),
            ConvNormAct(in_ch, cfg["out_ch"], 1, act=cfg["act"], **norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    batch, channels, height, width = x.size()
    x = x.view(batch, groups, channels // groups, height, width)
    return x.transpose(1, 2).contiguous().view(batch, channels, height, width)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit.

    Stride 1: half the channels pass through, the other half go through branch2.
    Stride 2: branch1 (depthwise, pointwise) and branch2 (pointwise, depthwise, pointwise)
    both see the whole input. Either way the halves are concatenated and shuffled.
    """

    def __init__(self, cfg: dict[str, Any], bn_eps: float, bn_momentum: float,
                 se_gate: str = "hardsigmoid"):
        super().__init__()
        norm = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        in_ch, kernel, stride, act = cfg["in_ch"], cfg["kernel"], cfg["stride"], cfg["act"]
        branch_ch = cfg["out_ch"] // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                ConvNormAct(in_ch, in_ch, kernel, stride=stride, groups=in_ch, act=None, **norm),
                ConvNormAct(in_ch, branch_ch, 1, act=act, **norm),
            )
        else:
            self.branch1 = nn.Sequential()
        branch2_in = in_ch if stride > 1 else branch_ch
        self.branch2 = nn.Sequential(
            ConvNormAct(branch2_in, branch_ch, 1, act=act, **norm),
            ConvNormAct(branch_ch, branch_ch, kernel, stride=stride, dilation=cfg["dilation"],
                        groups=branch_ch, act=None, **norm),
            ConvNormAct(branch_ch, branch_ch, 1, act=act, **norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


BLOCK_TYPES = {"bneck": InvertedResidual, "dwsep": DepthwiseSeparable, "shuffle": ShuffleUnit}


def make_stem(plan: dict[str, Any]) -> nn.Sequential:
    stem = plan["stem"]
    layer = ConvNormAct(plan["in_ch"], stem["out_ch"], stem["kernel"], stride=stem["stride"],
                        act=stem["act"], bn_eps=plan["bn_eps"], bn_momentum=plan["bn_momentum"])
    if stem["maxpool"]:
        layer.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    return layer


def make_block(cfg: dict[str, Any], plan: dict[str, Any]) -> nn.Module:
    if cfg["kind"] not in BLOCK_TYPES:
        raise ValueError(f"unknown block kind {cfg['kind']!r} (known: {', '.join(BLOCK_TYPES)})")
    return BLOCK_TYPES[cfg["kind"]](cfg, plan["bn_eps"], plan["bn_momentum"], plan["se_gate"])


def make_head_conv(channels: int, plan: dict[str, Any]) -> nn.Module | None:
    """The 1x1 conv after the last block (960 wide in V3-Large), or None."""
    head = plan["head"]
    if head["conv_ch"] is None:
        return None
    return ConvNormAct(channels, head["conv_ch"], 1, act=head["conv_act"],
                       bn_eps=plan["bn_eps"], bn_momentum=plan["bn_momentum"])


def make_classifier(channels: int, plan: dict[str, Any]) -> nn.Sequential:
    """What follows the global pool: [hidden linear + act] -> dropout -> linear."""
    head = plan["head"]
    layers: list[nn.Module] = []
    if head["hidden_ch"] is not None:
        # V3's efficient last stage: the 1280-wide layer runs after pooling, at 1x1.
        layers += [nn.Linear(channels, head["hidden_ch"]), make_activation(head["hidden_act"])]
        channels = head["hidden_ch"]
    layers += [nn.Dropout(p=head["dropout"], inplace=True),
               nn.Linear(channels, plan["num_classes"])]
    return nn.Sequential(*layers)


class Network(nn.Module):
    """Stem -> blocks -> head conv (``features``), global pool, then ``classifier``."""

    def __init__(self, plan: dict[str, Any]):
        super().__init__()
        features: list[nn.Module] = [make_stem(plan)]
        channels = plan["stem"]["out_ch"]
        for cfg in plan["blocks"]:
            features.append(make_block(cfg, plan))
            channels = cfg["out_ch"]
        head_conv = make_head_conv(channels, plan)
        if head_conv is not None:
            features.append(head_conv)
            channels = plan["head"]["conv_ch"]
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = make_classifier(channels, plan)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's MobileNetV3 initialisation."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))
