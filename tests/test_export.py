"""Every export format round-trips to the same outputs; failures leave no file behind."""

from __future__ import annotations

import ast
import errno
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import nas
from nas import export as export_module
from nas.build import build_model
from nas.export import FORMATS, export, load, load_checkpoint, save
from nas.spec import ArchSpec, BlockSpec, HeadSpec, SpecError, StemSpec
from search_spaces import zoo


def _trained_like(name: str, **overrides) -> torch.nn.Module:
    """A model whose BN statistics are not the defaults, so a lost buffer would show."""
    model = build_model(zoo.get(name, **overrides), seed=1)
    model.train()
    with torch.no_grad():
        size = model.arch_spec.input_size
        for _ in range(2):
            model(torch.randn(4, 3, size, size))
    return model.eval()


def _same_outputs(a: torch.nn.Module, b, size: int, atol: float = 0.0) -> None:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected, got = a.eval()(x), b(x)
    assert torch.allclose(expected, got, atol=atol, rtol=0), (expected - got).abs().max()


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "shufflenet_v2_x0_5", "mnasnet_a1"])
def test_checkpoint_round_trip(tmp_path, name):
    model = _trained_like(name, input_size=64, num_classes=10)
    path = nas.save(model, tmp_path / "m.pt")
    again = nas.load(path).eval()
    assert nas.spec_of(again) == nas.spec_of(model)
    _same_outputs(model, again, 64)


def test_save_spec_writes_json_and_load_builds_it(tmp_path):
    spec = zoo.get("mobilenet_v2", num_classes=3)
    save(spec, tmp_path / "v2.json")
    assert ArchSpec.from_json((tmp_path / "v2.json").read_text()) == spec
    assert nas.load_spec(tmp_path / "v2.json") == spec
    assert load(tmp_path / "v2.json").classifier[-1].out_features == 3


def _import_file(path: Path, module_name: str):
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[module_name]
    return module


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "shufflenet_v2_x1_0", "mobilenet_v1"])
def test_standalone_python_file(tmp_path, name):
    model = _trained_like(name, input_size=32)
    path = export(model, "py", tmp_path / "standalone_model.py")
    source = path.read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= {"torch", "typing", "__future__"}
    module = _import_file(path, f"standalone_{name}")
    standalone = module.build_model()
    assert type(standalone).__module__ == f"standalone_{name}"
    standalone.load_state_dict(model.state_dict(), strict=True)
    _same_outputs(model, standalone.eval(), 32)


def test_torchscript(tmp_path):
    model = _trained_like("mobilenet_v3_small", input_size=64)
    path = export(model, "torchscript", tmp_path / "m.torchscript.pt")
    _same_outputs(model, torch.jit.load(str(path)), 64, atol=1e-6)


def test_onnx_checked_with_onnxruntime(tmp_path):
    import onnxruntime

    model = _trained_like("mobilenet_v3_small", input_size=96)
    path = export(model, "onnx", tmp_path / "m.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # weights inside, no side files
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 96, 96)  # another batch size than the export's example
    got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    with torch.no_grad():
        assert (got - model(x)).abs().max().item() <= 1e-4


def test_text_exports(tmp_path):
    spec = zoo.get("mobilenet_v3_large")
    assert ArchSpec.from_json(export(spec, "json", tmp_path / "a.json").read_text()) == spec
    assert ArchSpec.from_text(export(spec, "text", tmp_path / "a.txt").read_text()) == spec
    assert export(spec, "table", tmp_path / "a.md").read_text() == spec.table()
    assert load_checkpoint(tmp_path / "a.txt") == (spec, None)


def test_every_format_has_a_suffix():
    assert set(FORMATS) == {"pytorch", "py", "torchscript", "onnx", "json", "text", "timm",
                            "table"}
    with pytest.raises(SpecError, match="unknown export format 'keras'"):
        export(zoo.get("mobilenet_v2"), "keras", "x.keras")


def test_failed_export_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "m.onnx"
    target.write_text("previous")

    def broken(model, spec, path):
        path.write_bytes(b"half a model")
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(export_module._MODEL_EXPORTERS, "onnx", export_module._binary(broken))
    with pytest.raises(RuntimeError, match="disk on fire"):
        export(zoo.get("mobilenet_v3_small"), "onnx", target)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "could not write .*m.json: No space"),
        (FileNotFoundError(errno.ENOENT, "No such file", "weights.pt"),
         r"No such file.*weights\.pt"),
    ],
)
def test_atomic_path_names_the_target_only_for_failed_writes(tmp_path, raised, expected):
    # a full disk while writing is reported against the file being written; an unrelated
    # OSError of the body (a missing input file) keeps its own message
    target = tmp_path / "m.json"
    target.write_text("previous")
    with pytest.raises(OSError, match=expected) as caught:
        with export_module.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise raised
    assert ("previous file is kept" in str(caught.value)) == (raised.errno == errno.ENOSPC)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_onnx_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "ONNX_TOLERANCE", -1.0)  # nothing can pass
    one_block = ArchSpec(name="one-block", input_size=32, num_classes=10,
                         stem=StemSpec(out_ch=16), head=HeadSpec(conv_ch=32, hidden_ch=64),
                         blocks=(BlockSpec(kind="bneck", kernel=3, in_ch=16, exp_ch=16,
                                           out_ch=16, se=True, act="HS"),))  # quick to export
    with pytest.raises(export_module.ExportError, match="differs from the PyTorch model"):
        export(one_block, "onnx", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "the text form has no 'arch' line"),
        (b"{broken", "not valid JSON"),
        (b"\xff\xfe\x00binary", "not a spec"),
        (b"PK\x03\x04 not really a zip", "not a readable checkpoint"),
    ],
)
def test_load_rejects_bad_files(tmp_path, content, words):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(SpecError, match=words):
        load(path)


def test_load_rejects_foreign_torch_files_and_mismatched_weights(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(SpecError, match="not a nas checkpoint"):
        load(tmp_path / "other.pt")
    model = build_model(zoo.get("mobilenet_v3_small"))
    save(model, tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["spec"] = zoo.get("mobilenet_v3_large").to_json()
    torch.save(payload, tmp_path / "mixed.pt")
    with pytest.raises(SpecError, match="weights do not fit the spec"):
        load(tmp_path / "mixed.pt")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    ("change", "words"),
    [  # found by tests/test_fuzz.py: KeyError, TypeError, or weights that failed later
        (lambda p: p.pop("spec"), "holds no spec"),
        (lambda p: p.update(spec=zoo.get("v3-small").to_dict()), "holds no spec"),
        (lambda p: p.pop("state_dict"), "'state_dict' does not map names to tensors"),
        (lambda p: p.update(state_dict=[1, 2]), "'state_dict' does not map names to tensors"),
        (lambda p: p["state_dict"].update(extra=3), "'state_dict' does not map names to tensors"),
    ],
)
def test_checkpoint_payloads_are_checked(tmp_path, change, words):
    model = build_model(zoo.get("mobilenet_v3_small", input_size=32, num_classes=10))
    payload = torch.load(save(model, tmp_path / "m.pt"), weights_only=True)
    change(payload)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(SpecError, match=words):
        load_checkpoint(tmp_path / "bad.pt")

