"""The command line: what a user sees, and one line with exit code 2 for every mistake."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from nas.cli.app import _run, app
from nas.spec import ArchSpec
from search_spaces import zoo


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = _run(typer.main.get_command(app), args, "nas")
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_reproduce_writes_the_run_directory(capsys, in_tmp):
    code, out, err = run(["reproduce", "v3-large", "--width", "0.75"], capsys)
    assert code == 0, err
    assert "3,993,528" in out and "154.56M" in out
    assert "paper (MobileNetV3 Table 3)" in out and "73.3%" in out
    directory = in_tmp / "runs" / "mobilenet_v3_large_075"
    assert sorted(p.name for p in directory.iterdir()) == ["arch.txt", "model.pt", "spec.json",
                                                          "table.md"]
    spec = ArchSpec.from_json((directory / "spec.json").read_text())
    assert spec == zoo.get("mobilenet_v3_large", width_mult=0.75)
    assert ArchSpec.from_text((directory / "arch.txt").read_text()) == spec
    assert "| 7²×120 | bneck 5x5 | 720 | 120 | ✓ | HS | 1 |" in (directory / "table.md").read_text()


def test_reproduce_custom_out_dir(capsys, in_tmp):
    code, out, _ = run(["reproduce", "v3-small", "--out", "here"], capsys)
    assert code == 0
    assert "2,542,856" in out
    assert (in_tmp / "here" / "model.pt").exists()


def test_zoo_lists_every_model(capsys):
    code, out, _ = run(["zoo"], capsys)
    assert code == 0
    for name in zoo.names():
        assert name in out
    assert "5,483,032" in out and "7,393,996" in out and "75.2%" in out


def test_table_from_zoo_and_from_file(capsys, in_tmp):
    code, out, _ = run(["table", "mobilenet_v3_small"], capsys)
    assert code == 0 and out == zoo.get("mobilenet_v3_small").table()
    (in_tmp / "s.json").write_text(zoo.get("mobilenet_v2").to_json())
    code, out, _ = run(["table", "s.json", "--width", "0.5"], capsys)
    assert code == 0
    assert out.splitlines()[2] == "| 224²×3 | conv2d 3x3 | - | 16 | - | RE6 | 2 |"


@pytest.mark.parametrize(("fmt", "suffix"), [("pytorch", ".pt"), ("py", ".py"),
                                              ("json", ".json"), ("text", ".txt"), ("timm", ".py"),
                                              ("table", ".md"), ("torchscript", ".torchscript.pt")])
def test_export_default_paths(capsys, in_tmp, fmt, suffix):
    code, out, err = run(["export", "mobilenet_v3_small", "--format", fmt], capsys)
    assert code == 0, err
    target = in_tmp / "runs" / "mobilenet_v3_small" / f"mobilenet_v3_small{suffix}"
    assert target.exists() and target.stat().st_size > 0
    assert f"wrote {target.relative_to(in_tmp)}" in out


def test_export_a_checkpoint_keeps_its_weights(capsys, in_tmp):
    import torch

    import nas

    model = nas.build_model(zoo.get("mobilenet_v3_small", input_size=32), seed=7)
    nas.save(model, in_tmp / "trained.pt")
    code, out, _ = run(["export", "trained.pt", "-f", "pytorch", "--out", "copy.pt"], capsys)
    assert code == 0 and "freshly initialised" not in out
    again = nas.load(in_tmp / "copy.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 again.state_dict().values(), strict=True))


def _bad_spec_files(tmp: Path) -> dict[str, str]:
    good = json.loads(zoo.get("mobilenet_v3_small").to_json())
    unknown_kind = json.loads(json.dumps(good))
    unknown_kind["blocks"][2]["kind"] = "transformer"
    inconsistent = json.loads(json.dumps(good))
    inconsistent["blocks"][4]["in_ch"] = 33
    files = {
        "malformed.json": '{"name": "x", "blocks": [',
        "unknown_kind.json": json.dumps(unknown_kind),
        "inconsistent.json": json.dumps(inconsistent),
        "garbage.txt": "hello world",
    }
    for name, text in files.items():
        (tmp / name).write_text(text)
    return {
        "malformed.json": "not valid JSON",
        "unknown_kind.json": "block 2.kind: must be one of bneck, dwsep, shuffle",
        "inconsistent.json": "block 4.in_ch: 33 does not match the output of block 3 (40)",
        "garbage.txt": "the first line must be 'arch",
    }


@pytest.mark.parametrize("command", ["table", "export"])
def test_bad_input_gives_one_line_and_exit_2(capsys, in_tmp, command):
    expected = _bad_spec_files(in_tmp)
    for filename, words in expected.items():
        code, out, err = run([command, filename, "--out", "result.pt"] if command == "export"
                             else [command, filename], capsys)
        assert code == 2, filename
        assert words in err, (filename, err)
        assert len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err + out
    assert not (in_tmp / "result.pt").exists()
    assert not (in_tmp / "runs").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["export", "missing.json"], "'missing.json' is neither a file nor a zoo model"),
        (["export", "v3-small", "--format", "keras"], "unknown export format 'keras'"),
        (["reproduce", "v4-huge"], "unknown zoo model 'v4-huge'"),
        (["reproduce", "v3-large", "--width", "0"], "--width must be in (0, 4]"),
        (["reproduce", "v3-large", "--width", "abc"], "Invalid value for '--width'"),
        (["reproduce"], "Missing argument"),
        (["frobnicate"], "No such command"),
        (["table", "."], "is a directory"),
        (["search", "--budget", "fast"], "latency budget 'fast' not understood"),
        (["netadapt", "v3-small"], "Missing option '--target'"),
        (["netadapt", "v3-small", "--target", "soon"], "latency budget 'soon' not understood"),
        (["netadapt", "v3-small", "--target", "5ms", "--delta", "lots"],
         "--delta 'lots' not understood"),
        (["netadapt", "v3-small", "--target", "5ms", "--delta", "2"], "--delta must be a "
                                                                       "fraction"),
        (["netadapt", "v3-small", "--target", "5ms", "--select", "best"], "--select must be"),
        (["netadapt", "shufflenet_v2_x1_0", "--target", "5ms"], "has shuffle blocks"),
        (["netadapt", "v3-small", "--target", "5ms", "--resume"], "nothing to resume"),
        (["netadapt", "v3-large.pt", "--target", "5ms"], "neither a file nor a zoo model"),
        (["reproduce", "v2", "--search"], "--search reproduces v3-large or v3-small"),
        (["reproduce", "v3-large", "--search", "--width", "0.75"], "drop --width"),
        # found by tests/test_fuzz.py: each was a traceback, a second line, exit code 0 or 1, a
        # file written, or work (timing, training, profiling) done before the refusal
        (["tab[/x]"], "No such command 'tab[/x]'"),
        (["train", "v3-small", "--data", "imagefolder:a\nb\x1b[2J"],
         "imagefolder a\\nb\\x1b[2J: no such directory"),
        (["train", "v3-small", "--device", "gpu"], "unknown device 'gpu': use cpu or cuda"),
        (["train", "v3-small", "--lr", "inf"], "lr must be > 0"),
        (["reproduce", "v3-small", "--seed", str(2**70)], "the seed must be an integer"),
        (["reproduce", "v3-large", "--search", "--trials", "0"], "--trials must be at least 1"),
        (["reproduce", "v3-large", "--search", "--data", "mnist"], "data source 'mnist'"),
        (["reproduce", "v3-large", "--search", "--workers", "-2"], "--workers must be at least"),
        (["reproduce", "v3-small", "--search", "--device", "tpu"], "unknown device 'tpu'"),
        (["space", "--resolution", "0"], "input_size: must be between 8 and 4096"),
        (["latency", "profile", "--resolution", "0"], "--resolution must be between 8 and 4096"),
        (["latency", "validate", "--rounds", "0"], "--rounds >= 1"),
        (["supernet", "train", "--budget", "0"], "a supernet recipe needs at least one step"),
        (["search", "--population", "1"], "--population must be at least 2"),
        (["search", "--stage-moves", "1.5"], "--stage-moves is a probability in [0, 1]"),
        (["search", "--strategy", "tpe", "--stage-moves", "0.2"],
         "--stage-moves is an option of --strategy evolution"),
        (["search", "--executor", "slurm"], "--executor must be local or ray"),
        (["search", "--data", "cifar10:/nonexistent"], "cifar10 /nonexistent: no such directory"),
        (["search", "--seed-arch", "v2"], "is not an architecture of the mobilenetv3 space"),
        (["netadapt", "v3-small", "--target", "5ms", "--device", "tpu"], "unknown device"),
    ],
)
def test_user_mistakes(capsys, in_tmp, args, words, monkeypatch):
    monkeypatch.setenv("NAS_CACHE_DIR", str(in_tmp / "cache"))  # no table: nothing to reuse
    code, out, err = run(args, capsys)
    assert code == 2
    assert words in err
    assert len(err.strip().splitlines()) == 1
    assert out == ""
    assert not (in_tmp / "runs").exists() and not (in_tmp / "cache").exists()


@pytest.mark.parametrize("bug", [ValueError("operands could not be broadcast together"),
                                 TypeError("unsupported operand type(s)"),
                                 OSError(errno.EIO, "Input/output error")])
def test_a_bug_inside_a_command_is_a_traceback_and_exit_1(capsys, monkeypatch, bug):
    """A ValueError from deep inside torch or numpy is not the user's mistake: it must not be
    dressed as one (one red line, exit 2) but shown as the bug it is."""
    import nas.flops

    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(nas.flops, "count_madds", broken)  # `nas zoo` calls it for every model
    code, out, err = run(["zoo"], capsys)
    assert code == 1
    assert "Traceback (most recent call last)" in err and "in broken" in err
    assert f"internal error: {type(bug).__name__}: {bug}" in err
    assert out == ""


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["table", "nothere.json"], "'nothere.json' is neither a file nor a zoo model"),
        (["search", "--budget", "6 parsecs"], "latency budget '6 parsecs' not understood"),
        # named OS errors: a path under a file, a full disk
        (["export", "v3-small", "-f", "json", "--out", "file/spec.json"], "file: File exists"),
        (["export", "v3-small", "-f", "json", "--out", "full.json"], "No space left on device"),
    ],
)
def test_a_user_mistake_is_one_line_and_exit_2(capsys, in_tmp, monkeypatch, args, words):
    (in_tmp / "file").write_text("a file, not a directory")
    if "full.json" in args:
        def full(self, *args, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(Path, "write_text", full)
    code, out, err = run(args, capsys)
    assert code == 2
    assert words in err and err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out == ""


def test_every_user_facing_error_is_a_nas_error():
    import nas.errors
    from nas.cli.common import CliError

    classes = [getattr(nas.errors, name) for name in nas.errors.__all__
               if isinstance(getattr(nas.errors, name), type)]
    assert len(classes) >= 17
    for cls in [*classes, CliError]:
        assert issubclass(cls, nas.errors.NasError), cls
        # the family kept the ValueError base each of them had, for callers that catch it
        assert cls in (nas.errors.NasError, CliError) or issubclass(cls, ValueError), cls


def test_a_torch_file_that_is_not_plain_weights_is_one_line(capsys, in_tmp):
    import torch

    torch.save({"format": "nas.checkpoint", "version": 1, "spec": in_tmp}, in_tmp / "odd.pt")
    code, out, err = run(["export", "odd.pt", "--out", "copy.pt"], capsys)
    assert code == 2 and "odd.pt: not a readable checkpoint (Weights only load failed" in err
    assert len(err.strip().splitlines()) == 1 and "\x1b" not in err
    assert not (in_tmp / "copy.pt").exists()


def test_netadapt_refuses_a_checkpoint_trained_for_other_data(capsys, in_tmp):
    import nas

    model = nas.build_model(zoo.get("v3-small"))  # 1000 ImageNet classes
    nas.save(model, in_tmp / "imagenet.pt")
    code, out, err = run(["netadapt", "imagenet.pt", "--target", "5ms"], capsys)
    assert code == 2 and "trained for 1000 classes" in err and "give its spec" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("nas") is None and not Path(sys.executable).with_name("nas")
                    .exists(), reason="console scripts not installed")
def test_console_scripts_are_installed(in_tmp):
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["nas", "--help"], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and "reproduce" in result.stdout
    result = subprocess.run(["nas-search", "--budget", "6 parsecs"], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "error:" in result.stderr
