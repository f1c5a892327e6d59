"""NetAdapt, as MobileNetV3 used it: per-layer filter counts tuned against measured latency.

:mod:`nas.netadapt.prune` proposes smaller widths and cuts the weights to them (specs and
state dicts only), :mod:`nas.netadapt.loop` runs the iterations (fine-tune, score, pick, save),
:mod:`nas.netadapt.report` writes what a finished run leaves for people.
"""

from nas.netadapt.loop import (
    FineTuner,
    NetAdapt,
    NetAdaptError,
    NetAdaptSettings,
    ProposalLatency,
    Result,
    check_run_dir,
    device_latency,
    load_iterations,
)
from nas.netadapt.prune import Proposal, PruneError, check_prunable, prune_model
from nas.netadapt.report import write_report

__all__ = ["FineTuner", "NetAdapt", "NetAdaptError", "NetAdaptSettings", "Proposal",
           "ProposalLatency", "PruneError", "Result", "check_prunable", "check_run_dir",
           "device_latency", "load_iterations", "prune_model", "write_report"]
