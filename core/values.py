"""What a value read from a file must be before a figure, a count or a progress bar uses it."""
from __future__ import annotations

import math


def is_whole(value) -> bool:
    """An int, not a bool (JSON's true is an int to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_count(value) -> bool:
    """A whole number from 0."""
    return is_whole(value) and value >= 0


def is_number(value) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
