"""The operator tooling's own errors share one base, so a caller catches them all with one clause."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import rewardgate_ops


def _ops_exception_classes() -> list[type[BaseException]]:
    modules = [importlib.import_module(m.name)
               for m in pkgutil.walk_packages(rewardgate_ops.__path__, "rewardgate_ops.")]
    return [cls for module in modules for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__]


def _root(cls: type[BaseException]) -> str:
    """The most general rewardgate_ops class `cls` derives from."""
    own = [c for c in cls.__mro__ if c.__module__.startswith("rewardgate_ops.")]
    return f"{own[-1].__module__}.{own[-1].__qualname__}"


def test_ops_errors__every_exception_class_in_rewardgate_ops__one_common_base():
    # GIVEN every exception class the operator tooling defines
    defined = _ops_exception_classes()
    # WHEN each is followed up to the most general rewardgate_ops class it derives from
    roots = sorted({_root(cls) for cls in defined})
    # THEN there is exactly one: rewardgate_ops.errors.OpsError
    print(f"exception_classes={len(defined)} roots={roots}")
    assert len(defined) >= 6
    assert roots == ["rewardgate_ops.errors.OpsError"]
