"""The actions' hard limits: checked by the runner before a kernel starts (`runs.parameters.check_bounds`) and again
by `imsnb.actions` itself. Their own module, light, so both can import it and neither imports the other for them."""

from __future__ import annotations

from imsnb.errors import BadParameter

MAX_BACKENDS_LIMIT = 50  # hard upper bound: max_backends above this is refused
MAX_COUNT_LIMIT = 100  # hard upper bound on an ECS desired count, whatever max_count says
MAX_INDEXES_LIMIT = 5  # hard upper bound on indexes built per run


def check_max_backends(max_backends: int) -> None:
    """max_backends within [0, MAX_BACKENDS_LIMIT], else BadParameter naming the limit."""
    if not 0 <= max_backends <= MAX_BACKENDS_LIMIT:
        raise BadParameter(
            f"max_backends must be between 0 and {MAX_BACKENDS_LIMIT} (the hard limit per run), not {max_backends}: "
            "terminate more in several reviewed runs"
        )


def check_max_count(max_count: int) -> None:
    """max_count within [0, MAX_COUNT_LIMIT], else BadParameter naming the limit."""
    if not 0 <= max_count <= MAX_COUNT_LIMIT:
        raise BadParameter(
            f"max_count must be between 0 and {MAX_COUNT_LIMIT} (the hard limit on an ECS desired count), "
            f"not {max_count}"
        )


def check_max_indexes(max_indexes: int) -> None:
    """max_indexes within [0, MAX_INDEXES_LIMIT], else BadParameter naming the limit."""
    if not 0 <= max_indexes <= MAX_INDEXES_LIMIT:
        raise BadParameter(
            f"max_indexes must be between 0 and {MAX_INDEXES_LIMIT} (the hard limit per run), not {max_indexes}: "
            "build more in several reviewed runs"
        )
