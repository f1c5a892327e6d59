"""What a NetAdapt run leaves for people: report.md (iterations, the table against the start
network) and progress.png (latency and holdout accuracy per iteration)."""

from __future__ import annotations

from pathlib import Path

from nas.export import write_text
from nas.spec import ArchSpec
from nas.spec.tables import plural, table_diff

__all__ = ["plot_progress", "write_report"]


def plot_progress(iterations: list[dict], path: Path, target_ms: float | None = None) -> Path:
    # lazy: pyplot takes ~1.0 s to import (-X importtime), and choosing the Agg backend is a
    # process-wide change made only when a figure is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latency = [r["latency_ms"] for r in iterations]
    accuracy = [r["accuracy"] for r in iterations]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot(latency, accuracy, "o-", markersize=3, color="tab:blue")
    ax.annotate("start", (latency[0], accuracy[0]), textcoords="offset points", xytext=(4, 4))
    if target_ms is not None:
        ax.axvline(target_ms, color="tab:red", linestyle="--", linewidth=1, label="target")
        ax.legend(loc="lower right")
    ax.invert_xaxis()
    ax.set_xlabel("predicted latency (ms), decreasing →")
    ax.set_ylabel("holdout top-1 after the short fine-tune (%)")
    ax.set_title(f"NetAdapt: {len(iterations) - 1} iterations")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(run_dir: str | Path, result, target_ms: float | None = None) -> list[Path]:
    run_dir = Path(run_dir)
    its = result.iterations
    start, end = ArchSpec.from_dict(its[0]["spec"]), ArchSpec.from_dict(its[-1]["spec"])
    lines = ["# NetAdapt", "",
             f"{start.name}: {its[0]['latency_ms']:.2f} → {its[-1]['latency_ms']:.2f} ms "
             f"predicted in {plural(len(its) - 1, 'iteration')} ({result.stop_reason}).", ""]
    if result.final:
        final = result.final
        lines.append(f"After a {final['long_epochs']}-epoch fine-tune: validation top-1 "
                     f"{final['val_accuracy']:.2f}%.")
        if "measured_ms" in final:
            m = final["measured_ms"]
            lines.append(f"Measured end to end, interleaved: start {m['start']:.2f} ms, final "
                         f"{m['final']:.2f} ms (ratio {m['ratio']:.3f}).")
        lines.append("")
    lines += ["## Iterations", "", "| it | latency (ms) | cut (ms) | δ (ms) | chosen | proposals "
              "| holdout top-1 | Δ |", "|---|---|---|---|---|---|---|---|"]
    lines.append(f"| 0 | {its[0]['latency_ms']:.3f} | | | {its[0].get('start', '')} | | "
                 f"{its[0]['accuracy']:.2f} | |")
    for r in its[1:]:
        lines.append(f"| {r['iteration']} | {r['latency_ms']:.3f} | "
                     f"{r['latency_before_ms'] - r['latency_ms']:.3f} | {r['delta_ms']:.3f} | "
                     f"{r['chosen']} | {len(r['proposals'])} | {r['accuracy']:.2f} | "
                     f"{r['accuracy'] - r['accuracy_before']:+.2f} |")
    lines += ["", "## The network, row by row (start → NetAdapt)", "",
              table_diff(start, end).markdown()]
    paths = [write_text(run_dir / "report.md", "\n".join(lines) + "\n")]
    paths.append(plot_progress(its, run_dir / "progress.png", target_ms))
    return paths
