"""Emitters: checkpoint, standalone Python, TorchScript, ONNX, JSON, text form, timm, table.

Every file is written atomically (temporary file in the same directory, then rename), so an
interrupted or failed export never leaves a partial file behind.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import io
import logging
import os
import pprint
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas import modules
from nas.build import build_model, layer_plan, spec_of
from nas.errors import ExportError, first_line
from nas.spec import ArchSpec, SpecError
from nas.timm_arch import timm_source

__all__ = [
    "FORMATS",
    "atomic_path",
    "build_with_weights",
    "export",
    "load",
    "load_checkpoint",
    "load_spec",
    "save",
    "standalone_source",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "nas.checkpoint"
CHECKPOINT_VERSION = 1
# format -> default file suffix
FORMATS = {
    "pytorch": ".pt",
    "py": ".py",
    "torchscript": ".torchscript.pt",
    "onnx": ".onnx",
    "json": ".json",
    "text": ".txt",
    "timm": ".py",
    "table": ".md",
}
ONNX_TOLERANCE = 1e-4


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    A failed write (disk full, quota, I/O error) raises ``OSError`` naming ``path``, and the
    previous file, if any, is left exactly as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
    try:
        try:
            yield tmp
        except OSError as exc:  # the caller's writer; other errors of the body stay its own
            if exc.errno not in _WRITE_ERRNOS:
                raise
            raise _write_error(target, exc.errno, exc.strerror or str(exc)) from exc
        except RuntimeError as exc:  # a C++ writer (torch.save, ONNX) on a full disk
            if shutil.disk_usage(target.parent).free >= _FULL_BYTES:
                raise
            raise _write_error(target, errno.ENOSPC, os.strerror(errno.ENOSPC)) from exc
        try:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise _write_error(target, exc.errno, exc.strerror or str(exc)) from exc
    finally:
        tmp.unlink(missing_ok=True)


_FULL_BYTES = 1 << 20  # less free space than this after a failed write: the disk was full
# what a failing write looks like; any other OSError raised while the body runs is the body's
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


def _write_error(target: Path, code: int | None, reason: str) -> OSError:
    kept = "the previous file is kept" if target.exists() else "nothing was written"
    return OSError(code, f"could not write {target}: {reason} ({kept})")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


# --------------------------------------------------------------------------- save / load
def save(model_or_spec: nn.Module | ArchSpec, path: str | os.PathLike) -> Path:
    """A model (built by ``build_model``) -> checkpoint with its spec and ``state_dict``;
    a spec -> its JSON."""
    if isinstance(model_or_spec, ArchSpec):
        return write_text(path, model_or_spec.to_json())
    spec = spec_of(model_or_spec)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "spec": spec.to_json(),
        "state_dict": model_or_spec.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _read_bytes(path: str | os.PathLike) -> bytes:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, expected a spec or checkpoint file")
    return path.read_bytes()


def load_checkpoint(path: str | os.PathLike) -> tuple[ArchSpec, dict[str, torch.Tensor] | None]:
    """Spec and weights from a checkpoint, a JSON spec or an arch-def text file.

    JSON and text files carry no weights (``None``).
    """
    data = _read_bytes(path)
    if data[:2] == b"PK":  # torch.save writes a zip archive
        try:
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupted archives raise many different errors
            raise SpecError("", f"{path}: not a readable checkpoint ({first_line(exc)})") \
                from None
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise SpecError("", f"{path}: a torch file, but not a nas checkpoint "
                                f"(save one with nas.save or `nas export --format pytorch`)")
        if payload.get("version") != CHECKPOINT_VERSION:
            raise SpecError("", f"{path}: checkpoint version {repr(payload.get('version'))[:40]}, "
                                f"this version reads {CHECKPOINT_VERSION}")
        spec_json, state_dict = payload.get("spec"), payload.get("state_dict")
        if not isinstance(spec_json, str):
            raise SpecError("", f"{path}: the checkpoint holds no spec (JSON text under 'spec')")
        if not isinstance(state_dict, dict) or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
            raise SpecError("", f"{path}: the checkpoint's 'state_dict' does not map names to "
                                f"tensors")
        try:
            spec = ArchSpec.from_json(spec_json)
        except SpecError as exc:
            raise SpecError("", f"{path}: {exc}") from None
        return spec, state_dict
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError("", f"{path}: not a spec (JSON or arch-def text) nor a checkpoint") \
            from None
    stripped = text.lstrip()
    try:
        if stripped.startswith("{"):
            return ArchSpec.from_json(text), None
        return ArchSpec.from_text(text), None
    except SpecError as exc:
        raise SpecError("", f"{path}: {exc}") from None


def load_spec(path: str | os.PathLike) -> ArchSpec:
    return load_checkpoint(path)[0]


def build_with_weights(spec: ArchSpec, state_dict: dict[str, torch.Tensor] | None, *,
                       seed: int | None = None, source: str = "") -> nn.Module:
    """``build_model(spec)`` with ``state_dict`` loaded strictly (fresh weights if None)."""
    model = build_model(spec, seed=seed)
    if state_dict is not None:
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            lines = str(exc).strip().splitlines()  # a heading, then one line per mismatch
            first = lines[1].strip() if len(lines) > 1 else lines[0]
            where = f"{source}: " if source else ""
            raise SpecError("", f"{where}weights do not fit the spec ({first[:200]})") from None
    return model


def load(path: str | os.PathLike) -> nn.Module:
    """Rebuild the model of a checkpoint (weights included) or of a spec file (fresh weights)."""
    spec, state_dict = load_checkpoint(path)
    return build_with_weights(spec, state_dict, source=str(path))


# --------------------------------------------------------------------------- standalone .py
def _modules_body() -> str:
    """Source of nas.modules without its docstring (the generated file has its own)."""
    source = Path(modules.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    first = tree.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        source = "\n".join(source.splitlines()[first.end_lineno:])
    return source.strip() + "\n"


def _format_plan(plan: dict[str, Any]) -> str:
    lines = ["PLAN = {"]
    for key, value in plan.items():
        if key == "blocks":
            lines.append('    "blocks": [')
            lines += [f"        {block!r}," for block in value]
            lines.append("    ],")
        else:
            lines.append(f"    {key!r}: {pprint.pformat(value, width=88, sort_dicts=False)},")
    lines.append("}")
    return "\n".join(lines).replace("'", '"') + "\n"


def standalone_source(spec: ArchSpec) -> str:
    """A Python file defining the model with only torch imported."""
    shape = f"1, {spec.stem.in_ch}, {spec.input_size}, {spec.input_size}"
    header = f'''"""{spec.name}: a standalone PyTorch model generated by nas from its ArchSpec.

Needs only torch. The weights of `nas export --format pytorch` load with strict=True::

    model = build_model()
    model.load_state_dict(torch.load("{spec.name}.pt")["state_dict"])

Spec (arch-def text form):

{_indent(spec.to_text())}"""
'''
    footer = f'''

{_format_plan(layer_plan(spec))}

def build_model() -> Network:
    return Network(PLAN)


if __name__ == "__main__":
    print(build_model().eval()(torch.zeros({shape})).shape)
'''
    return header + _modules_body() + footer


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip("\n").splitlines())


# --------------------------------------------------------------------------- export
def _example_input(spec: ArchSpec, batch: int = 1, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, spec.stem.in_ch, spec.input_size, spec.input_size,
                       generator=generator)


def _export_torchscript(model: nn.Module, spec: ArchSpec, tmp: Path) -> None:
    # torch deprecates TorchScript in favour of torch.export; users asking for it still get it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(model.eval())
        torch.jit.save(scripted, str(tmp))


def _export_onnx(model: nn.Module, spec: ArchSpec, tmp: Path) -> None:
    import onnxruntime  # lazy: optional, ~0.24 s to import (-X importtime); --format onnx only

    model = model.eval()
    example = _example_input(spec)
    # The exporter logs about optional torchvision ops; nothing a user needs to see.
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), str(tmp), dynamo=True, verbose=False, external_data=False,
                input_names=["input"], output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
            )
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)
    check = _example_input(spec, batch=2, seed=1)
    session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"input": check.numpy()})[0])
    with torch.no_grad():
        expected = model(check)
    diff = (got - expected).abs().max().item()
    if not diff <= ONNX_TOLERANCE:
        raise ExportError(f"the ONNX model differs from the PyTorch model by {diff:.2e} "
                          f"(tolerance {ONNX_TOLERANCE:.0e}); nothing was written")
    logger.info("ONNX export checked with onnxruntime: max abs diff %.2e", diff)


def _binary(writer: Callable[[nn.Module, ArchSpec, Path], None]):
    def run(model: nn.Module, spec: ArchSpec, path: Path) -> None:
        with atomic_path(path) as tmp:
            writer(model, spec, tmp)

    return run


_TEXT_EXPORTERS: dict[str, Callable[[ArchSpec], str]] = {
    "py": standalone_source,
    "json": ArchSpec.to_json,
    "text": ArchSpec.to_text,
    "timm": timm_source,
    "table": ArchSpec.table,
}
_MODEL_EXPORTERS = {
    "pytorch": lambda model, spec, path: save(model, path),
    "torchscript": _binary(_export_torchscript),
    "onnx": _binary(_export_onnx),
}


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise SpecError("format", f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    return fmt


def export(model_or_spec: nn.Module | ArchSpec, fmt: str, path: str | os.PathLike) -> Path:
    """Write ``model_or_spec`` as ``fmt`` (one of :data:`FORMATS`) to ``path``.

    A spec is built with fresh weights for the formats that need a model.
    """
    check_format(fmt)
    path = Path(path)
    if isinstance(model_or_spec, ArchSpec):
        spec, model = model_or_spec, None
    else:
        spec, model = spec_of(model_or_spec), model_or_spec
    if fmt in _TEXT_EXPORTERS:
        return write_text(path, _TEXT_EXPORTERS[fmt](spec))
    if model is None:
        model = build_model(spec)
    was_training = model.training
    try:
        _MODEL_EXPORTERS[fmt](model, spec, path)
    finally:
        model.train(was_training)
    return path

