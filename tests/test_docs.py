"""The docs are executed, so they cannot rot.

* Every ``$ `` line of the ```console blocks of docs/quickstart.md runs, in order, in one fresh
  working directory, as a newcomer would type it (a shell, the venv's ``bin`` first on PATH),
  and must exit 0; key strings the page shows must appear in the real output.
* The set-up block (``make demo``, ``make test``) is not executed: it installs the venv this
  test runs in. We only check that it comes first and that the Makefile has both targets.
* Profiling is the one step not done for real: it takes minutes. Before the commands run, a
  synthetic latency table with *this* machine's fingerprint is written into a temporary
  ``$NAS_CACHE_DIR`` for 224x224 and 32x32, standing in for what ``make demo`` and
  ``nas latency profile --resolution 32`` measure; the page says so. The real cache is never
  touched, and everything else (end-to-end timings, rescaling, NetAdapt's side-by-side
  measurements, training, exports) is real.
* Every ```python block of docs/extending.md and of docs/reproduction.md runs, in order, in
  one fresh interpreter per page.
* Every relative link in README.md and docs/*.md points at an existing file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import write_synthetic_tables

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
QUICKSTART = DOCS / "quickstart.md"
BIN = Path(sys.executable).parent  # the venv's bin: nas, nas-search, python

# Strings the quickstart shows that the real output must contain: (start of the command,
# strings). Each must also appear on the page, and each command prefix must match a command.
EXPECTED = [
    ("nas doctor", ["this device (torch, 1 thread)", "nothing missing"]),
    ("nas zoo", ["mobilenet_v3_large", "5,483,032", "2,542,856", "3,887,038"]),
    ("nas reproduce v3-large", ["5,483,032", "216.59M", "paper (MobileNetV3 Table 3)",
                                "wrote spec.json, table.md, arch.txt, model.pt"]),
    ("nas table v3-small --width 0.75", ["| 224²×3 | conv2d 3x3 | - | 16 | - | HS | 2 |",
                                         "| 1²×1024 | conv2d 1x1, NBN | - | 1000 | - | - | 1 |"]),
    ("nas export runs/mobilenet_v3_large/model.pt", ["wrote v3_large.py"]),
    ("python -c", ["torch.Size([1, 1000])"]),
    ("nas latency profile --resolution 32", ["32x32"]),
    ("nas latency profile", ["224x224", "layers in"]),
    ("nas latency predict", ["v3-large", "v3-small", "predicted ms"]),
    ("nas latency v3-small --measure", ["predicted:", "measured:"]),
    ("nas-search", ["6 trials (0 failed); outputs in runs/quick", "Best architecture"]),
    ("ls runs/quick", ["best.json", "best.pt", "report.md", "study.db"]),
    ("head -n 3 runs/quick/best.md", ["# best: trial"]),
    ("nas train runs/quick/best.json", ["validation top-1:"]),
    ("nas netadapt v3-small", ["iteration 0:", "iteration 1:", "After the long fine-tune",
                               "runs/netadapt/quick"]),
    ("nas export runs/netadapt/quick/final/model.pt", ["wrote small.onnx"]),
]


# --------------------------------------------------------------------------- parsing
def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block."""
    return [(m.group(1), m.group(2))
            for m in re.finditer(r"^```([\w-]*)\n(.*?)^```", text, re.M | re.S)]


def console_commands(text: str) -> list[str]:
    """The ``$ `` lines of the ```console blocks, in order (a trailing backslash continues)."""
    commands = []
    for language, body in code_blocks(text):
        if language != "console":
            continue
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("$ "):
                command = line[2:]
                while command.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    command = command[:-1] + " " + lines[i].strip()
                commands.append(command.strip())
            i += 1
    return commands


def expectation_for(command: str) -> list[str]:
    for prefix, strings in EXPECTED:
        if command.startswith(prefix):
            return strings
    return []


# --------------------------------------------------------------------------- tests
def test_quickstart_sets_up_with_make_demo_and_make_test_first():
    text = QUICKSTART.read_text(encoding="utf-8")
    language, body = code_blocks(text)[0]
    assert language != "console", "the set-up block must not be executed by this test"
    assert body.splitlines()[:2] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert code_blocks(readme)[0][1].splitlines()[:2] == ["make demo", "make test"]


# Its NetAdapt run acts on measured latency, which a busy test worker beside it would inflate
# several times over: make test runs it in its second step, alone.
@pytest.mark.alone
def test_quickstart_commands_run_in_order(tmp_path):
    text = QUICKSTART.read_text(encoding="utf-8")
    commands = console_commands(text)
    assert len(commands) >= 10
    for prefix, strings in EXPECTED:
        assert any(c.startswith(prefix) for c in commands), f"no command starts {prefix!r}"
        for string in strings:
            assert string in text, f"the quickstart no longer shows {string!r}"

    cache, work = tmp_path / "cache", tmp_path / "clone"
    work.mkdir()
    # 224x224 is synthetic (profiling it takes minutes); 32x32 is profiled for real by the
    # page's own `nas latency profile --resolution 32`, as a newcomer's is. NetAdapt prices the
    # widths it proposes by timing them, so a synthetic 32x32 table beside real timings made
    # every block cut look slower than the block it replaced (its run then stopped at
    # iteration 0 whenever the head's cut fell short of delta).
    write_synthetic_tables(cache, resolutions=(224,))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "NAS_CACHE_DIR": str(cache), "COLUMNS": "120",
           # This test shares 2 cores with other jobs; busy-waiting OpenMP threads on an
           # oversubscribed machine made a forward pass 3-30x slower here. `nas train` sets
           # its own thread count, so waiting threads are also told to sleep.
           "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("NAS_DEBUG", None)
    timings = []
    for command in commands:
        start = time.perf_counter()
        result = subprocess.run(command, shell=True, cwd=work, env=env, capture_output=True,
                                text=True, timeout=600)
        timings.append((round(time.perf_counter() - start, 1), command))
        assert result.returncode == 0, (
            f"`{command}` exited {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
            f"\n--- stderr\n{result.stderr[-3000:]}")
        for string in expectation_for(command):
            assert string in result.stdout, f"`{command}` did not print {string!r}:\n" \
                                            f"{result.stdout[-3000:]}"
    print("\n".join(f"{seconds:6.1f} s  {command}" for seconds, command in timings))


@pytest.mark.parametrize(("page", "printed", "shown"), [
    ("extending.md", ["fused block: torch.Size([2, 24, 28, 28])", "best reward",
                      "torch-nhwc: bneck-input"], []),
    ("reproduction.md", ["paper 2,542,856; 1280 last layer 2,946,568; full-width SE 3,898,416"],
     ["2,946,568", "3,898,416"]),
])
def test_python_examples_run(tmp_path, page, printed, shown):
    """Every ```python block of the page, in order, in one fresh interpreter; what it prints,
    and the figures the page quotes from it."""
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = [body for language, body in code_blocks(text) if language == "python"]
    assert blocks
    script = tmp_path / "examples.py"
    script.write_text("\n\n".join(blocks), encoding="utf-8")
    env = {**os.environ, "NAS_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for string in printed:
        assert string in result.stdout, result.stdout
    for string in shown:
        assert string in text, f"{page} no longer quotes {string}"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"
