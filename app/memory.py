"""One byte budget for the app's large cached values (models and captures), shared by every session.

`ByteLRU` keeps values with their size in bytes and evicts the least recently
used ones when a new value would take the total over the budget; every
eviction is logged (logger "gta_lens.memory"). A value larger than the whole
budget is returned but not kept. The budget is `--cache-mb` / GTA_LENS_CACHE_MB
(default: a quarter of the machine's memory, `default_budget`).
"""
from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

LOG = logging.getLogger("gta_lens.memory")
DEFAULT_FRACTION = 0.25          # of the machine's physical memory


def default_budget() -> int:
    """Bytes: DEFAULT_FRACTION of physical memory (1 GiB where it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * DEFAULT_FRACTION)
    except (ValueError, OSError, AttributeError):
        return 2**30


def tensor_bytes(tensors) -> int:
    """Bytes of distinct tensors' storage (a view counts once)."""
    seen = {}
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor):
            seen[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
    return sum(seen.values())


@dataclass(frozen=True)
class Usage:
    used: int                    # bytes held now
    budget: int
    entries: int
    evictions: int               # since the server started
    by_kind: dict                # kind (a key's first element) -> bytes


class ByteLRU:
    """Least-recently-used values under a byte budget, safe to share between threads."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._items: collections.OrderedDict[Hashable, tuple[object, int]] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0

    def get(self, key: Hashable):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key][0]

    def put(self, key: Hashable, value, size: int):
        """Keep `value` (of `size` bytes), evicting the least recently used values to fit; returns it."""
        with self._lock:
            self._items.pop(key, None)
            if size > self.budget:
                LOG.warning("not cached: %s needs %.1f MB, the whole budget is %.1f MB", key, size / 2**20, self.budget / 2**20)
                return value
            while self._items and self._used() + size > self.budget:
                old, (_, old_size) = self._items.popitem(last=False)
                self.evictions += 1
                LOG.warning("evicted %s (%.1f MB) to keep the cache under %.1f MB", old, old_size / 2**20, self.budget / 2**20)
            self._items[key] = (value, size)
            return value

    def get_or_make(self, key: Hashable, make: Callable[[], object], size: Callable[[object], int]):
        value = self.get(key)
        if value is None:
            value = make()
            self.put(key, value, size(value))
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def _used(self) -> int:
        return sum(size for _, size in self._items.values())

    def usage(self) -> Usage:
        with self._lock:
            kinds: dict = collections.Counter()
            for key, (_, size) in self._items.items():
                kinds[key[0] if isinstance(key, tuple) else "other"] += size
            return Usage(self._used(), self.budget, len(self._items), self.evictions, dict(kinds))
