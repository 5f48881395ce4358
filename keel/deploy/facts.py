"""Small shared facts for roles."""

from __future__ import annotations

from pyinfra.api import FactBase


class MemTotal(FactBase):
    """Total memory in bytes, from /proc/meminfo (no extra tools needed on a bare host)."""

    def command(self) -> str:
        return "grep '^MemTotal:' /proc/meminfo"

    def process(self, output) -> int:
        # "MemTotal:       24591820 kB"
        return int(output[0].split()[1]) * 1024
