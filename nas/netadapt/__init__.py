"""NetAdapt, as MobileNetV3 used it: per-layer filter counts tuned against measured latency.

:mod:`nas.netadapt.settings` holds what a run is asked to do; :mod:`nas.netadapt.prune`
proposes smaller widths and cuts the weights to them (specs and state dicts only);
:mod:`nas.netadapt.latency` times the proposals on this device; :mod:`nas.netadapt.finetune`
trains them; :mod:`nas.netadapt.loop` runs the iterations (score, pick, save);
:mod:`nas.netadapt.report` writes what a finished run leaves for people.
"""

from nas.errors import NetAdaptError
from nas.netadapt.finetune import FineTuner
from nas.netadapt.latency import ProposalLatency, device_latency
from nas.netadapt.loop import NetAdapt, Result, check_run_dir, load_iterations
from nas.netadapt.prune import Proposal, PruneError, check_prunable, prune_model
from nas.netadapt.report import write_report
from nas.netadapt.settings import NetAdaptSettings

__all__ = ["FineTuner", "NetAdapt", "NetAdaptError", "NetAdaptSettings", "Proposal",
           "ProposalLatency", "PruneError", "Result", "check_prunable", "check_run_dir",
           "device_latency", "load_iterations", "prune_model", "write_report"]
