"""A run length that fits a time budget (NNPROG_TIME_BUDGET, hours), pure.

Before each epoch the run looks at the epochs it has finished (their wall seconds, validation and checkpoints
included) and sets its number of epochs to the most that fit the budget, never more than it was started with, so the
learning-rate schedule (nnU-Net's poly, or a recipe's) is computed for the length that ends at the budget and anneals
to its end there. Epochs may differ in cost (PGPS): each epoch has a weight (1.0, or for a PGPS run with a measured
profile its stage's step time relative to the planned stage's; voxels are no guide, a step has fixed costs) and the
most recent finished epochs (:data:`RATE_WINDOW`) give the seconds per unit of weight, so a run whose epochs grow
slower shortens itself as it learns that. The first epoch (start-up, compilation) counts in the time used but not in
the rate once later ones exist.

A decision is a pure function of the finished epochs' seconds, so it is recorded and ``--c`` replays the decisions of
the epochs before its checkpoint; new ones follow from the epochs' measured seconds.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from nnunet_progressive.core.errors import ProgressiveConfigError

SECONDS_PER_HOUR = 3600.0
RATE_WINDOW = 5  # the finished epochs the rate is taken from: the most recent ones
KEEP_TOLERANCE = 0.05  # the length in force is kept while it ends within 5% of the budget (no jitter of the rate)


@dataclass(frozen=True)
class LengthDecision:
    """The run length chosen before epoch ``before_epoch`` and what it came from."""

    before_epoch: int
    num_epochs: int
    used_seconds: float
    seconds_per_unit: float  # wall seconds of an epoch of weight 1 (the planned patch)
    budget_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LengthDecision:
        return cls(int(data["before_epoch"]), int(data["num_epochs"]), float(data["used_seconds"]),
                   float(data["seconds_per_unit"]), float(data["budget_seconds"]))

    def text(self) -> str:
        return (f"Time budget {self.budget_seconds / SECONDS_PER_HOUR:g} h: {self.used_seconds:.0f} s used by "
                f"{self.before_epoch} epochs, {self.seconds_per_unit:.1f} s per epoch of weight 1 (recent epochs): "
                f"the run trains {self.num_epochs} epochs (the learning rate anneals to its end at epoch "
                f"{self.num_epochs})")


def seconds_per_unit(epoch_seconds: Sequence[float], epoch_weights: Sequence[float]) -> float:
    """Wall seconds per unit of epoch weight from the last :data:`RATE_WINDOW` finished epochs (the first one left out
    once others exist)."""
    if not epoch_seconds or len(epoch_seconds) != len(epoch_weights):
        raise ValueError(f"need the seconds and weight of every finished epoch, got {len(epoch_seconds)} and "
                         f"{len(epoch_weights)}")
    first = max(1 if len(epoch_seconds) > 1 else 0, len(epoch_seconds) - RATE_WINDOW)
    weight = sum(float(w) for w in epoch_weights[first:])
    if weight <= 0:
        raise ValueError(f"the finished epochs have no weight: {list(epoch_weights)}")
    return sum(float(s) for s in epoch_seconds[first:]) / weight


def run_length_for_budget(epoch_seconds: Sequence[float], epoch_weights: Sequence[float], budget_seconds: float,
                          max_epochs: int, future_weights: Callable[[int], Sequence[float]],
                          current_num_epochs: int | None = None) -> LengthDecision:
    """The most epochs N (at most ``max_epochs``) whose remaining epochs fit the budget.

    ``future_weights(N)``: the weights of epochs ``len(epoch_seconds)`` .. N-1 of a run of N epochs (nondecreasing
    in total with N). The epoch about to start is trained if the length in force (``current_num_epochs``) includes
    it, as the run's last where nothing more fits: the learning rate always reaches its end, and the run ends at most
    one epoch past the budget. N equal to the finished epochs (the length in force ends here) means: stop now. The
    length in force is kept while it is predicted to end within :data:`KEEP_TOLERANCE` of the budget, so noisy epoch
    times do not make the learning rate jitter.
    """
    if budget_seconds <= 0:
        raise ProgressiveConfigError(f"the time budget must be > 0 seconds, got {budget_seconds}")
    done = len(epoch_seconds)
    if max_epochs < done:
        raise ValueError(f"{done} epochs are done but the run has at most {max_epochs}")
    used = float(sum(epoch_seconds))
    unit = seconds_per_unit(epoch_seconds, epoch_weights)

    def fits(n: int) -> bool:
        return used + unit * float(sum(future_weights(n))) <= budget_seconds

    current = max_epochs if current_num_epochs is None else current_num_epochs
    floor = done + 1 if current > done else done
    if done < current <= max_epochs:
        predicted = used + unit * float(sum(future_weights(current)))
        if abs(predicted - budget_seconds) <= KEEP_TOLERANCE * budget_seconds:
            return LengthDecision(done, current, round(used, 3), unit, float(budget_seconds))
    low, high = floor, max_epochs  # the floor is taken whether it fits or not; find the largest that fits
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return LengthDecision(done, low, round(used, 3), unit, float(budget_seconds))
