"""settle_long_lived: survivors leave the collector's walks; dead cycles are still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from secmon.runtime.heap import settle_long_lived


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture(autouse=True)
def _unfrozen_after() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_survivors_are_frozen() -> None:
    node = _Node()
    frozen, took = settle_long_lived()
    assert frozen >= 1 and took >= 0
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    assert node.me is node


def test_a_cycle_frozen_alive_is_freed_by_the_next_settle() -> None:
    node = _Node()
    ref = weakref.ref(node)
    settle_long_lived()
    del node
    gc.collect()
    assert ref() is not None, "frozen: a plain collection does not see it"
    settle_long_lived()
    assert ref() is None
