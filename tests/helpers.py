"""Helpers that tests (and the subprocesses they start) share.

``write_synthetic_tables`` stands in for profiling: it writes a complete, calibrated latency
table with *this* machine's fingerprint into a cache directory, so that a command run with
``NAS_CACHE_DIR`` pointing there finds its table and no test times latency for real.
The process and socket helpers read /proc: which processes a command started, and whether any
of their sockets reaches beyond the loopback interface.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path


def _madds(layer) -> float:
    """Multiply-adds of one table layer, from its key fields (enough to rank layers)."""
    from latency_models.layers import BlockLayer, StemLayer

    def out(size: int, stride: int) -> int:
        return -(-size // stride)

    if isinstance(layer, StemLayer):
        return out(layer.res, layer.stride) ** 2 * layer.in_ch * layer.out_ch * layer.kernel ** 2
    if isinstance(layer, BlockLayer):
        size = out(layer.res, layer.stride) ** 2
        if layer.kind != "bneck":
            return size * layer.in_ch * (layer.kernel ** 2 + layer.out_ch)
        expand = 0 if layer.exp_ch == layer.in_ch else layer.res ** 2 * layer.in_ch * layer.exp_ch
        return (expand + size * layer.exp_ch * (layer.kernel ** 2 + layer.out_ch)
                + 2 * layer.exp_ch * layer.se_ch)
    channels = layer.conv_ch or layer.in_ch
    total = layer.res ** 2 * layer.in_ch * (layer.conv_ch or 0)
    if layer.hidden_ch:
        total += channels * layer.hidden_ch
        channels = layer.hidden_ch
    return total + channels * layer.num_classes


def write_synthetic_tables(cache: Path, resolutions=(224, 32)) -> None:
    """A complete, calibrated table per resolution, keyed by this machine's fingerprint, with
    times that grow with each layer's MAdds (0.45 ms + 0.0436 ms per million: close to this
    project's 2-core VMs on V3-Large and V3-Small)."""
    from latency_models.device import fingerprint
    from latency_models.layers import layers_of, space_layers
    from latency_models.lut import Entry, LatencyTable
    from search_spaces import zoo
    from search_spaces.mobilenetv3 import default_space

    for resolution in resolutions:
        fp = fingerprint("torch", 1, 1, resolution)
        layers = list(space_layers(default_space(resolution)))
        for name in ("v3-large", "v3-small"):
            for width in (1.0, 0.75):
                layers += layers_of(zoo.get(name, width_mult=width, input_size=resolution))
        table = LatencyTable(fingerprint=fp, settings={
            "statistic": "min", "synthetic": "tests/helpers.py stands in for profiling"})
        for layer in layers:
            ms = 0.45 + 0.0436 * _madds(layer) / 1e6
            table.entries[layer.key] = Entry(ms, ms * 1.05, 15)
        table.calibration = {"coefficients": {"scale": 1.0, "per_block_ms": 0.0,
                                              "overhead_ms": 0.0},
                             "archs": 0, "rounds": 0, "measured_at": "synthetic",
                             "max_abs_error": 0.0}
        table.save(cache / "latency" / f"torch-{fp.key()}.json")


# --------------------------------------------------------------------------- processes, sockets
def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc; Linux only)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the name (field 2) may hold spaces and parentheses: the fields after the last ')'
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def command_line(pid: int) -> str:
    """The process's command line ('' once it has exited); Ray shows a task as ray::NAME."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _socket_inodes(pids: list[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue  # exited
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    return inodes


def _address(field: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    host, port = field.split(":")
    raw = bytes.fromhex(host)  # 32-bit words in host (little-endian) order
    ip = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip, int(port, 16)


def inet_sockets(pids: list[int]) -> list[tuple[str, str]]:
    """(local, remote) address of every TCP and UDP socket the processes hold, as "ip:port";
    the remote side of a listening or unconnected socket is its unspecified "0.0.0.0:0"."""
    inodes = _socket_inodes(pids)
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                (lip, lport), (rip, rport) = _address(fields[1]), _address(fields[2])
                found.append((f"{lip}:{lport}", f"{rip}:{rport}"))
    return found


def off_loopback(sockets: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The sockets bound to, or talking to, anything but the loopback interface."""
    def loopback(address: str, unconnected_ok: bool) -> bool:
        ip = ipaddress.ip_address(address.rsplit(":", 1)[0])
        return ip.is_loopback or (unconnected_ok and ip.is_unspecified
                                  and address.endswith(":0"))

    return [(local, remote) for local, remote in sockets
            if not loopback(local, False) or not loopback(remote, True)]
