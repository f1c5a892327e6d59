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

from typing import Any, Optional, Tuple  # noqa: UP035

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


_TAPS: dict[tuple[Any, ...], torch.Tensor] = {}


def _tap_matrix(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """(taps, output pixels, input pixels): 1 where a kernel tap of an output pixel reads an
    input pixel, 0 where it reads padding. Cached per geometry, device and dtype."""
    key = (size, kernel, stride, padding, like.device, like.dtype)
    if key not in _TAPS:
        (h, w), (kh, kw), (sh, sw), (ph, pw) = size, kernel, stride, padding
        rows = (torch.arange(kh)[:, None] + torch.arange((h + 2 * ph - kh) // sh + 1) * sh
                - ph)[:, None, :, None]                      # (kh, 1, ho, 1)
        cols = (torch.arange(kw)[:, None] + torch.arange((w + 2 * pw - kw) // sw + 1) * sw
                - pw)[None, :, None, :]                      # (1, kw, 1, wo)
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        source = (rows * w + cols).clamp(0, h * w - 1)
        taps = nn.functional.one_hot(source, h * w) * inside[..., None]
        _TAPS[key] = taps.reshape(kh * kw, -1, h * w).to(like.device, like.dtype)
    return _TAPS[key]


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
    """A depthwise conv (zero padding, no dilation), only the taps within reach computed.

    When training on the CPU and the (cropped) kernel is still larger than its feature map
    (a 3x3 kernel on 2x2 features, 5x5 on 4x4: the last stages of a 28 or 32 px input), the
    conv is computed from the taps laid over the map's pixels (:func:`_depthwise_by_taps`):
    oneDNN's depthwise backward takes 3-7x longer there, and it dominated a training step
    (docs/accuracy.md). Same outputs and gradients up to rounding; inference, export and
    every other shape take F.conv2d."""
    weight, padding = within_reach(weight, padding, x.shape[-2:])
    if not torch.jit.is_scripting() and bool(_small_map_training(x, weight)):
        return _depthwise_by_taps(x, weight, bias, stride, padding)
    return nn.functional.conv2d(x, weight, bias, stride, padding, 1, x.shape[1])


@torch.jit.unused
def _small_map_training(x, weight):  # no annotations: TorchScript reads this signature
    # the shape first: every depthwise conv of every forward pass asks
    return ((weight.shape[-2] > x.shape[-2] or weight.shape[-1] > x.shape[-1])
            and x.device.type == "cpu" and torch.is_grad_enabled()
            and not torch.onnx.is_in_onnx_export())


@torch.jit.unused
def _depthwise_by_taps(x, weight, bias: Optional[torch.Tensor],  # noqa: UP045 - TorchScript
                       stride: Tuple[int, int], padding: Tuple[int, int]):  # noqa: UP006
    (n, c, h, w), (kh, kw) = x.shape, weight.shape[-2:]
    taps = _tap_matrix((h, w), (kh, kw), stride, padding, weight)
    h_out, w_out = (h + 2 * padding[0] - kh) // stride[0] + 1, (w + 2 * padding[1] - kw) // \
        stride[1] + 1
    if taps.shape[1] * taps.shape[2] <= 64:
        # few pixels: a broadcast product along contiguous channels (channels last, the
        # layout training uses); bmm over 100s of 4x1 or 4x4 matrices was 2-4x slower
        per_channel = torch.einsum("ct,tpq->qpc", weight.reshape(c, kh * kw), taps)
        out = (x.permute(0, 2, 3, 1).reshape(n, h * w, 1, c) * per_channel).sum(1)
        out = out.reshape(n, h_out, w_out, c).permute(0, 3, 1, 2)
    else:  # e.g. 5x5 on 4x4 (16 by 16 pixels): the broadcast's (n, 16, 16, c) costs more
        per_channel = torch.einsum("ct,tpq->cqp", weight.reshape(c, kh * kw), taps)
        pixels = x.permute(1, 0, 2, 3).reshape(c, n, h * w)
        out = torch.bmm(pixels, per_channel).reshape(c, n, h_out, w_out).permute(1, 0, 2, 3)
    return out if bias is None else out + bias.view(1, c, 1, 1)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (zero padding) that skips the kernel taps which only ever meet the
    padding (:func:`within_reach`), and trains depthwise convs on tiny feature maps by
    :func:`depthwise_conv2d`: the same outputs, parameters and state dict."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError("Conv2d takes zero padding given as numbers")

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        padding = (self.padding[0], self.padding[1])
        if self.dilation == (1, 1) and self.groups == self.in_channels == self.out_channels:
            return depthwise_conv2d(input, weight, bias, (self.stride[0], self.stride[1]),
                                    padding)
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
