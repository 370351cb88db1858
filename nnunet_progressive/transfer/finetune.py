"""Fine-tuning schedules: which parameters train in which epoch, at which learning rate (pure).

A schedule is a list of phases. Learning-rate curves (epochs counted from the phase start ``s``):

- ``linear_warmup`` over ``[s, e)``: ``peak * (epoch - s + 1) / (e - s)`` (nnU-Net's ``Lin_incr_LRScheduler``);
- ``poly`` over ``[s, E)``: ``peak * (1 - (epoch - s) / (E - s)) ** 0.9`` (nnU-Net's poly schedule, offset);
- ``warmup_then_poly`` over ``[s, e)``: linear warmup over the first half, poly decay over the second (the
  partial-network phase of nnssl's "sawtooth" fine-tuning trainer).

Recipes (defaults and their sources in docs/finetuning.md):

- ``finetune``: whole network, linear warmup, then poly (nnssl's fine-tuning trainer; lr 1e-3 as nnssl and
  STU-Net).
- ``head_first``: the segmentation heads alone, then warmup of the whole network, then poly (MultiTalent).
- ``frozen_encoder``: the pre-trained encoder frozen while the decoder and heads train, then warmup of the whole
  network, then poly (nnssl's sawtooth trainer).

Parameter roles: ``heads`` (segmentation layers), ``decoder``, ``encoder`` (tensors loaded unchanged from the
source), ``new`` (encoder tensors that did not come unchanged from the source: an adapted input convolution,
stages the source did not have). Optimiser groups are ordered as :data:`ROLES`, heads first, because nnU-Net
logs the learning rate of group 0 (the heads train in every phase).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from nnunet_progressive.core.errors import ProgressiveConfigError

HEADS, DECODER, ENCODER, NEW = "heads", "decoder", "encoder", "new"
ROLES = (HEADS, DECODER, NEW, ENCODER)
ALL_ROLES = frozenset(ROLES)
RECIPES = ("finetune", "head_first", "frozen_encoder")
POLY_EXPONENT = 0.9
MAX_DEFAULT_WARMUP = 50


@dataclass(frozen=True)
class Phase:
    name: str
    start: int  # first epoch
    end: int  # first epoch after the phase
    trains: tuple[str, ...]  # roles that train; the others are frozen
    peak_lr: float
    curve: str  # linear_warmup | poly | warmup_then_poly

    def lr(self, epoch: int) -> float:
        length = self.end - self.start
        step = epoch - self.start
        if self.curve == "linear_warmup":
            return self.peak_lr * (step + 1) / length
        if self.curve == "poly":
            return self.peak_lr * (1 - step / length) ** POLY_EXPONENT
        up = length // 2
        if step < up:
            return self.peak_lr * (step + 1) / up
        return self.peak_lr * (1 - (step - up) / (length - up)) ** POLY_EXPONENT


@dataclass(frozen=True)
class FinetuneSchedule:
    recipe: str
    num_epochs: int
    phases: tuple[Phase, ...]

    def phase_index(self, epoch: int) -> int:
        if not 0 <= epoch < self.num_epochs:
            epoch = min(max(epoch, 0), self.num_epochs - 1)  # nnU-Net steps the scheduler once past the end
        return next(i for i, p in enumerate(self.phases) if p.start <= epoch < p.end)

    def phase_at(self, epoch: int) -> Phase:
        return self.phases[self.phase_index(epoch)]

    def lr_at(self, epoch: int) -> float:
        return self.phase_at(epoch).lr(min(max(epoch, 0), self.num_epochs - 1))

    def learning_rates(self, epoch: int) -> dict[str, float]:
        """role -> learning rate in ``epoch`` (0 for frozen roles)."""
        phase = self.phase_at(epoch)
        lr = self.lr_at(epoch)
        return {role: (lr if role in phase.trains else 0.0) for role in ROLES}

    def newly_trained(self, epoch: int) -> tuple[str, ...]:
        """Roles that train in ``epoch`` but were frozen in the epoch before (their optimiser state is reset)."""
        if epoch <= 0:
            return ()
        before, now = set(self.phase_at(epoch - 1).trains), self.phase_at(epoch).trains
        return tuple(role for role in now if role not in before)

    def describe(self, epoch: int) -> str:
        index = self.phase_index(epoch)
        phase = self.phases[index]
        frozen = [r for r in ROLES if r not in phase.trains]
        return (f"Fine-tuning phase {index + 1}/{len(self.phases)} '{phase.name}' (epochs {phase.start}-"
                f"{phase.end - 1}) | lr {self.lr_at(epoch):.3g} | training: {', '.join(phase.trains)}"
                + (f" | frozen: {', '.join(frozen)}" if frozen else ""))

    def to_dict(self) -> dict:
        return asdict(self)


def default_warmup_epochs(num_epochs: int) -> int:
    """A tenth of the run, at most 50 epochs (nnssl: 50 of 1000, 15 of 150, 10 of 100)."""
    return int(min(MAX_DEFAULT_WARMUP, max(1, round(num_epochs / 10))))


def build_finetune_schedule(recipe: str, num_epochs: int, lr: float, warmup_epochs: int | None = None,
                            head_epochs: int = 10, head_lr: float = 5e-4,
                            frozen_epochs: int | None = None) -> FinetuneSchedule:
    """The phases of ``recipe`` over ``num_epochs``; a clear error when the phases leave no poly epoch."""
    if recipe not in RECIPES:
        raise ProgressiveConfigError(f"unknown fine-tuning recipe {recipe!r}; expected one of {RECIPES}")
    if num_epochs < 1 or lr <= 0:
        raise ProgressiveConfigError(f"a fine-tuning schedule needs epochs >= 1 and lr > 0, got {num_epochs}, {lr}")
    warmup = default_warmup_epochs(num_epochs) if warmup_epochs is None else int(warmup_epochs)
    phases: list[Phase] = []
    start = 0
    if recipe == "head_first":
        phases.append(Phase("heads only", 0, head_epochs, (HEADS,), head_lr, "warmup_then_poly"))
        start = head_epochs
    elif recipe == "frozen_encoder":
        frozen = default_warmup_epochs(num_epochs) if frozen_epochs is None else int(frozen_epochs)
        phases.append(Phase("encoder frozen", 0, frozen, (HEADS, DECODER, NEW), lr, "warmup_then_poly"))
        start = frozen
    if start + warmup >= num_epochs:
        limits = [f"NNPROG_WARMUP_EPOCHS={warmup}"]
        if recipe == "head_first":
            limits.insert(0, f"NNPROG_HEAD_EPOCHS={start}")
        elif recipe == "frozen_encoder":
            limits.insert(0, f"NNPROG_FROZEN_EPOCHS={start}")
        raise ProgressiveConfigError(
            f"{' + '.join(limits)} leave no epoch for the poly phase of a {num_epochs}-epoch fine-tuning; lower "
            f"{'them' if len(limits) > 1 else 'it'} or raise NNPROG_EPOCHS")
    if warmup > 0:
        phases.append(Phase("warmup (all layers)", start, start + warmup, ROLES, lr, "linear_warmup"))
    phases.append(Phase("poly (all layers)", start + warmup, num_epochs, ROLES, lr, "poly"))
    phases = [p for p in phases if p.end > p.start]
    return FinetuneSchedule(recipe, num_epochs, tuple(phases))
