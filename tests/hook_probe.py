"""Behaviour, not text: does every hook a mixin of the package extends reach the next class's?

Each such hook is called on a stand-in trainer of a composed class (``Anything`` for the state it reads, a few real
values where a hook checks them) while the next class's hook is replaced by one that records it was reached; a
mixin that drops its ``super()`` call returns without reaching it (tests/test_nnunet_run_state.py).
"""
from __future__ import annotations

import inspect


class Anything:
    """A stand-in value that absorbs every use, so a hook's own code before ``super()`` runs without a trainer."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return Anything()

    def __call__(self, *args, **kwargs):
        return Anything()

    def __iter__(self):
        return iter(())

    def __bool__(self):
        return False

    def __len__(self):
        return 0

    def __index__(self):
        return 0

    __int__ = __index__

    def __float__(self):
        return 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __getitem__(self, key):
        return Anything()

    def __setitem__(self, key, value):
        pass

    def __contains__(self, item):
        return False

    def __format__(self, spec):
        return "anything"

    def _same(self, *other):
        return Anything()

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _same
    __floordiv__ = __mod__ = __pow__ = __neg__ = __or__ = __ror__ = __and__ = _same

    def __round__(self, digits=None):
        return 0

    def __divmod__(self, other):
        return Anything(), Anything()

    __rdivmod__ = __divmod__

    def _false(self, other):
        return False

    __lt__ = __le__ = __gt__ = __ge__ = _false


class ReachedNext(Exception):
    """Raised by the next class's hook: the hook under test called it."""


def hooks_of(trainer: type, nnunet_trainer: type, package_hooks: set[str]) -> list[tuple[type, str, type]]:
    """(mixin, hook, next class defining it) for every hook a package class of ``trainer`` overrides and does not
    declare it replaces."""
    mro = trainer.__mro__
    found = []
    for position, cls in enumerate(mro):
        if not cls.__module__.startswith("nnunet_progressive."):  # the package's mixins, not the trainers
            continue
        for name, member in vars(cls).items():
            if name not in package_hooks and not callable(getattr(nnunet_trainer, name, None)):
                continue
            if name in vars(cls).get("replaces_hooks", ()) or not callable(getattr(member, "__func__", member)):
                continue
            following = next((c for c in mro[position + 1:] if name in vars(c)), None)
            if following is not None:
                found.append((cls, name, following))
    return found


PLANS = {"dataset_name": "Dataset999_Probe", "plans_name": "nnUNetPlans",
         "configurations": {"3d_fullres": {"patch_size": [32, 32, 32], "batch_size": 2,
                                           "architecture": {"arch_kwargs": {"strides": [[1, 1, 1], [2, 2, 2]]}}}}}


def _arguments(parameters: list[inspect.Parameter]) -> list:
    import torch

    values = {"plans": PLANS, "configuration": "3d_fullres", "fold": 0, "dataset_json": {}, "device":
              torch.device("cpu"), "state": {}, "enabled": True}
    return [values.get(p.name, Anything()) for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and (p.default is inspect.Parameter.empty or p.name in values)]


def _attribute(name: str):
    """What a stand-in trainer holds where a hook reads its state."""
    from nnunet_progressive.core.knobs import ProgressiveSettings

    values = {"progressive_settings": ProgressiveSettings(epochs=30), "current_epoch": 0, "num_epochs": 30,
              "was_initialized": True}
    return values[name] if name in values else Anything()


def skipped_hooks(trainer: type, nnunet_trainer: type, package_hooks: set[str]) -> list[str]:
    """Each hook of ``trainer``'s mixins that does NOT reach the next class's (called on a stand-in trainer)."""
    probe_class = type(f"Probe{trainer.__name__}", (trainer,), {
        "__getattr__": lambda self, name: _attribute(name),
        "ensure_training_stage": lambda self, epoch: None,  # builds real data loaders; not a hook
    })
    problems = []
    for cls, name, following in hooks_of(trainer, nnunet_trainer, package_hooks):
        member = vars(cls)[name]
        function = getattr(member, "__func__", member)
        first = probe_class if isinstance(member, classmethod) else object.__new__(probe_class)
        arguments = _arguments(list(inspect.signature(function).parameters.values())[1:])
        original = vars(following)[name]

        def reached(*args, **kwargs):
            raise ReachedNext

        replacement = classmethod(reached) if isinstance(original, classmethod) else (
            staticmethod(reached) if isinstance(original, staticmethod) else reached)
        setattr(following, name, replacement)
        try:
            function(first, *arguments)
        except ReachedNext:
            continue
        except Exception as error:  # noqa: BLE001 - the hook's own code failed on the stand-in: say which
            problems.append(f"{cls.__name__}.{name}: raised {type(error).__name__}: {error} before the next class's")
            continue
        finally:
            setattr(following, name, original)
        problems.append(f"{cls.__name__}.{name} does not call {following.__name__}.{name}")
    return problems
