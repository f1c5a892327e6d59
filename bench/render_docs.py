"""Rewrite the figures blocks of the docs from bench/results/*.json.

    python bench/render_docs.py            # rewrite every stale block (`make bench` ends so)
    python bench/render_docs.py --check    # exit 1 listing the blocks that differ; write nothing

A measured figure in README.md, docs/*.md or bench/README.md lives in a marked block::

    <!-- figures:search_quality -->
    (generated: every line between the markers is replaced)
    <!-- /figures -->

NAME picks a renderer from ``RENDERERS``; ``<!-- figures:estimator_ranking sample=23 -->``
passes it options. The renderers live beside this driver, one module per group of result
files: ``figures_runs.py`` (the benchmark runs), ``figures_latency.py``,
``figures_estimators.py`` and ``figures_search.py``, on ``figures_common.py``. A renderer
reads result files only, never the prose around its block, so the same JSON always renders
the same text, and a block whose file is absent says so. ``tests/test_doc_figures.py`` fails
when a block is stale, and when a doc states a measured figure outside a block.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from figures_common import RESULTS, ROOT, Results
from figures_estimators import (
    render_depthwise_small_maps,
    render_estimator_ranking,
    render_estimator_samples,
    render_estimator_verdict,
    render_recipe_trials,
    render_reference_lr,
    render_training_throughput,
)
from figures_latency import (
    render_latency_summary,
    render_latency_validation,
    render_timer_variants,
    render_torchvision_equivalence,
)
from figures_runs import render_bench_bound, render_bench_run, render_newcomer, render_provenance
from figures_search import (
    render_netadapt_vs_multiplier,
    render_ray_throughput,
    render_search_final,
    render_search_quality,
    render_v3_headtohead,
)

BLOCK = re.compile(r"^<!-- figures:(?P<name>[a-z][a-z0-9_]*)"
                   r"(?P<options>(?: [a-z_]+=[\w.-]+)*) -->\n"
                   r"(?P<body>.*?)^<!-- /figures -->$", re.M | re.S)
OPENING = re.compile(r"^<!-- figures:.*$", re.M)


class DocError(Exception):
    """A doc's block that cannot be rendered (unknown name or option, missing end marker)."""


def doc_paths(root: Path = ROOT) -> list[Path]:
    """The pages whose figures are generated: README.md, docs/*.md, bench/README.md and the
    trials' README (bench/results/trials/README.md)."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md")),
            root / "bench" / "README.md", root / "bench" / "results" / "trials" / "README.md"]


# --------------------------------------------------------------------------- the renderers
@dataclass(frozen=True)
class Renderer:
    function: Callable[..., list[str]]
    options: tuple[str, ...] = ()


# One entry per block kind: the NAME of <!-- figures:NAME -->.
RENDERERS: dict[str, Renderer] = {
    "v3_headtohead": Renderer(render_v3_headtohead),
    "newcomer": Renderer(render_newcomer),
    "bench_bound": Renderer(render_bench_bound),
    "bench_run": Renderer(render_bench_run),
    "provenance": Renderer(render_provenance),
    "latency_validation": Renderer(render_latency_validation),
    "latency_summary": Renderer(render_latency_summary),
    "estimator_ranking": Renderer(render_estimator_ranking, ("sample",)),
    "reference_lr": Renderer(render_reference_lr, ("sample",)),
    "estimator_verdict": Renderer(render_estimator_verdict),
    "estimator_samples": Renderer(render_estimator_samples),
    "training_throughput": Renderer(render_training_throughput),
    "depthwise_small_maps": Renderer(render_depthwise_small_maps),
    "search_quality": Renderer(render_search_quality),
    "search_final": Renderer(render_search_final),
    "netadapt_vs_multiplier": Renderer(render_netadapt_vs_multiplier),
    "netadapt_fashion_mnist": Renderer(
        lambda results: render_netadapt_vs_multiplier(results,
                                                      "netadapt_vs_multiplier-fashion-mnist")),
    "torchvision_equivalence": Renderer(render_torchvision_equivalence),
    "ray_throughput": Renderer(render_ray_throughput),
    "timer_variants": Renderer(render_timer_variants),
    "recipe_trials": Renderer(render_recipe_trials),
}


# --------------------------------------------------------------------------- the blocks
@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    name: str
    options: dict[str, str]
    start: int  # offsets of the body in the page's text
    end: int

    def __str__(self) -> str:
        shown = "".join(f" {k}={v}" for k, v in self.options.items())
        return f"{_shown(self.path)}:{self.line}: figures:{self.name}{shown}"


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def find_blocks(path: Path, text: str) -> list[Block]:
    blocks = []
    for match in BLOCK.finditer(text):
        options = dict(o.split("=", 1) for o in match.group("options").split())
        blocks.append(Block(path, text.count("\n", 0, match.start()) + 1, match.group("name"),
                            options, match.start("body"), match.end("body")))
    opened = len(OPENING.findall(text))
    if opened != len(blocks):
        lines = [text.count("\n", 0, m.start()) + 1 for m in OPENING.finditer(text)]
        matched = {b.line for b in blocks}
        bad = [n for n in lines if n not in matched]
        raise DocError(f"{_shown(path)}:{bad[0]}: a figures marker without its "
                       "`<!-- /figures -->`, or with a malformed name or option")
    return blocks


def render(block: Block, results: Results) -> str:
    """The body the block should have: a blank line, the rendered lines, a blank line."""
    renderer = RENDERERS.get(block.name)
    if renderer is None:
        raise DocError(f"{block}: no renderer named {block.name!r} (known: "
                       f"{', '.join(RENDERERS)})")
    unknown = set(block.options) - set(renderer.options)
    if unknown:
        raise DocError(f"{block}: unknown option(s) {', '.join(sorted(unknown))}")
    return "\n" + "\n".join(renderer.function(results, **block.options)) + "\n\n"


def rendered_page(path: Path, text: str, results: Results) -> tuple[str, list[Block]]:
    """The page with every block rendered, and the blocks that changed."""
    out, stale, last = [], [], 0
    for block in find_blocks(path, text):
        body = render(block, results)
        if text[block.start:block.end] != body:
            stale.append(block)
        out += [text[last:block.start], body]
        last = block.end
    return "".join(out) + text[last:], stale


def render_docs(paths: Iterable[Path], results: Results, write: bool) -> list[Block]:
    """Every stale block of ``paths``; rewritten in place when ``write``."""
    from nas.export import write_text  # atomic

    stale_blocks = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        new, stale = rendered_page(path, text, results)
        stale_blocks += stale
        if write and new != text:
            write_text(path, new)
    return stale_blocks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing every stale block")
    parser.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    parser.add_argument("pages", nargs="*", type=Path,
                        help="default: README.md, docs/*.md, bench/README.md, "
                        "bench/results/trials/README.md")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    pages = [p.resolve() for p in args.pages] or doc_paths()
    try:
        stale = render_docs(pages, Results(args.results), write=not args.check)
    except (DocError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for block in stale:
        print(f"{'stale' if args.check else 'rewrote'}: {block}")
    if args.check and stale:
        print(f"{len(stale)} stale block(s): run `python bench/render_docs.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
