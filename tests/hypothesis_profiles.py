"""Hypothesis profiles: how hard every property test tries, chosen by `HYPOTHESIS_PROFILE`.

- `dev` (the default): the inner loop, `make check`.
- `ci`: `make test`, what CI runs.
- `thorough`: `make soak`, minutes per property.

Pure-logic properties take no `max_examples` of their own: they inherit the profile's. A property whose
every example costs real storage or HTTP round trips asks for `io_settings()` (or `stateful_settings()`), which
read the same profile's smaller budget. Registered and loaded by tests/conftest.py, before test modules are
imported (decorators read the loaded profile when the module is imported).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, settings

ENV = "HYPOTHESIS_PROFILE"
DEFAULT = "dev"


@dataclass(frozen=True)
class Budget:
    """Examples per pure property; examples per storage-backed property; steps per state-machine run."""

    examples: int
    io_examples: int
    stateful_examples: int
    stateful_steps: int


BUDGETS = {
    "dev": Budget(examples=100, io_examples=10, stateful_examples=6, stateful_steps=15),
    "ci": Budget(examples=300, io_examples=20, stateful_examples=12, stateful_steps=20),
    "thorough": Budget(examples=3000, io_examples=200, stateful_examples=150, stateful_steps=40),
}


def register() -> str:
    """Register every profile and load the one `HYPOTHESIS_PROFILE` names (`dev` when unset)."""
    for name, budget in BUDGETS.items():
        # derandomize in dev and ci: a red run replays the same examples; thorough explores new ones each time
        settings.register_profile(name, max_examples=budget.examples, deadline=None,
                                  derandomize=name != "thorough", print_blob=True)
    name = os.environ.get(ENV, DEFAULT)
    if name not in BUDGETS:
        raise ValueError(f"{ENV}={name!r} is not a profile; known: {', '.join(BUDGETS)}")
    settings.load_profile(name)
    return name


def budget() -> Budget:
    """The loaded profile's budget."""
    return BUDGETS[settings.get_current_profile_name()]


def io_settings(**overrides: Any) -> settings:
    """Settings for a property whose examples each make storage or HTTP calls."""
    return settings(max_examples=budget().io_examples, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                    **overrides)


def stateful_settings(**overrides: Any) -> settings:
    """Settings for a state machine over real storage: no shrinking (each step costs real calls, and an
    unshrunk run of a few dozen steps is readable; shrinking one took minutes)."""
    b = budget()
    return settings(max_examples=b.stateful_examples, stateful_step_count=b.stateful_steps,
                    phases=[Phase.explicit, Phase.generate], database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], **overrides)
