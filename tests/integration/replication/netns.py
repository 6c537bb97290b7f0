"""A network namespace joined to the host by a veth pair, for partition tests.

    with Veth("vr1", "10.213.7") as net:     # host side 10.213.7.1, namespace side 10.213.7.2
        node = cluster.node("r", host=net.inner, netns=net.ns)
        net.cut(); ...; net.heal()

Cutting takes the host end of the link down: packets stop in both
directions and TCP connections stall without a reset, as in a real
partition. Everything is removed on exit. Needs root and `ip`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from types import TracebackType


def netns_available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Veth:
    def __init__(self, tag: str, prefix: str) -> None:
        self.ns = f"{tag}-{os.getpid()}"
        self.host_if = f"{tag}h{os.getpid() % 100000}"[:15]
        self.ns_if = f"{tag}n{os.getpid() % 100000}"[:15]
        self.outer = f"{prefix}.1"
        self.inner = f"{prefix}.2"

    def __enter__(self) -> Veth:
        _ip("netns", "add", self.ns)
        try:
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.ns)
            _ip("addr", "add", f"{self.outer}/24", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            _ip("-n", self.ns, "addr", "add", f"{self.inner}/24", "dev", self.ns_if)
            _ip("-n", self.ns, "link", "set", self.ns_if, "up")
            _ip("-n", self.ns, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def cut(self) -> None:
        _ip("link", "set", self.host_if, "down")

    def heal(self) -> None:
        _ip("link", "set", self.host_if, "up")

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
