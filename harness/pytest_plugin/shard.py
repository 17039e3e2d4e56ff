"""``--shard I/K``: a stable split of the collected tests by node id, so K processes (one
per GPU or machine) run disjoint parts of one run (``suites/harness/test_sharding.py``)."""

from __future__ import annotations

import hashlib

import pytest


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, total = (int(v) for v in text.split("/"))
    except ValueError:
        raise pytest.UsageError(f"--shard {text!r}: write I/K with 1 <= I <= K, e.g. 2/4") from None
    if not 1 <= index <= total:
        raise pytest.UsageError(f"--shard {text!r}: need 1 <= I <= K")
    return index, total


def shard_of(nodeid: str, total: int) -> int:
    """1-based shard of a test: a hash of its node id, so the split does not depend on
    collection order or on which other tests exist. BLAKE2, not CRC32: CRC is linear, so
    node ids that differ in a few characters (one case's contenders and modes) shared
    their low bits and landed in one shard."""
    digest = hashlib.blake2b(nodeid.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % total + 1


def split(items: list[pytest.Item], spec: str) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """(kept, dropped) for ``--shard spec``."""
    index, total = parse_shard(spec)
    keep = [i for i in items if shard_of(i.nodeid, total) == index]
    return keep, [i for i in items if shard_of(i.nodeid, total) != index]
