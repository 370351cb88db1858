"""Loader and network throughput of training iterations, and what the loader drew; pure bookkeeping.

Per iteration the trainer measures three times: how long the training process waited for the batch
(``wait``), how long the training step took (forward, backward, optimizer: ``step``) and how long the loader
worker took to build the batch (``loader``, measured inside the worker and carried in the batch). Where the
augmentation runs on the training device (``NNPROG_AUGMENT_ON=device``) a fourth: its seconds in the training
process (``augment``, kept out of ``step``); the loader's time is then loading, cropping and stacking alone. From
them:

- the network consumes ``samples / step`` samples per second;
- the loader delivers up to ``workers x samples / loader`` samples per second (its workers run in parallel);
- the stage is loader-bound when the training process waits a noticeable share of its time for batches.

The loader also reports, per batch, which crops it forced to contain foreground and which cases it drew, so a
record shows the foreground share and the cases per batch the network actually trained with.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace

LOADER_BOUND_WAIT_SHARE = 0.1  # waiting for batches >= 10% of the iteration time: loader-bound


@dataclass(frozen=True)
class Throughput:
    """Sums over training iterations (an epoch, or a stage's epochs)."""

    iterations: int = 0
    samples: int = 0
    voxels: int = 0
    wait_seconds: float = 0.0
    step_seconds: float = 0.0
    loader_seconds: float = 0.0  # summed over batches, as measured inside the loader workers
    loader_batches: int = 0  # batches that carried a loader time
    workers: int = 1  # loader workers building batches in parallel (1 for a single-threaded loader)
    cases: int = 0  # distinct cases per batch, summed over batches
    forced_crops: int = 0  # crops the loader forced to contain foreground
    reported_batches: int = 0  # batches that reported their forced crops
    augment_on: str = "workers"  # where the augmentation ran: "workers" (inside loader_seconds) or "device"
    augment_seconds: float = 0.0  # training-process seconds of the augmentation on the device, summed over batches
    augment_batches: int = 0  # batches augmented in the training process

    def plus_iteration(self, samples: int, voxels: int, wait_seconds: float, step_seconds: float,
                       loader_seconds: float | None, cases: int = 0, forced_crops: int | None = None,
                       augment_seconds: float | None = None) -> Throughput:
        """These sums with one more iteration (``cases``: distinct cases in the batch; ``forced_crops``: crops
        forced to contain foreground, None if the loader does not say; ``augment_seconds``: the augmentation in the
        training process, None where the workers augmented)."""
        return replace(
            self, iterations=self.iterations + 1, samples=self.samples + int(samples),
            voxels=self.voxels + int(voxels), wait_seconds=self.wait_seconds + max(0.0, wait_seconds),
            step_seconds=self.step_seconds + max(0.0, step_seconds),
            loader_seconds=self.loader_seconds + (loader_seconds or 0.0),
            loader_batches=self.loader_batches + (loader_seconds is not None), cases=self.cases + int(cases),
            forced_crops=self.forced_crops + (forced_crops or 0),
            reported_batches=self.reported_batches + (forced_crops is not None),
            augment_seconds=self.augment_seconds + max(0.0, augment_seconds or 0.0),
            augment_batches=self.augment_batches + (augment_seconds is not None))

    @property
    def network_samples_per_second(self) -> float | None:
        return self.samples / self.step_seconds if self.step_seconds > 0 else None

    @property
    def network_voxels_per_second(self) -> float | None:
        return self.voxels / self.step_seconds if self.step_seconds > 0 else None

    def _loader_rate(self, amount: int) -> float | None:
        if self.loader_batches == 0 or self.loader_seconds <= 0 or self.iterations == 0:
            return None
        # the timed batches stand for all batches of these iterations
        per_batch = self.loader_seconds / self.loader_batches
        return self.workers * (amount / self.iterations) / per_batch

    @property
    def loader_samples_per_second(self) -> float | None:
        return self._loader_rate(self.samples)

    @property
    def loader_voxels_per_second(self) -> float | None:
        return self._loader_rate(self.voxels)

    @property
    def cases_per_batch(self) -> float | None:
        return self.cases / self.iterations if self.iterations else None

    @property
    def foreground_forced_share(self) -> float | None:
        """Share of crops forced to contain foreground, over the batches that reported it."""
        if self.reported_batches == 0 or self.iterations == 0:
            return None
        reported_samples = self.samples * self.reported_batches / self.iterations
        return self.forced_crops / reported_samples

    @property
    def loader_seconds_per_batch(self) -> float | None:
        """A loader worker's seconds per batch (with ``workers``, augmentation included)."""
        return self.loader_seconds / self.loader_batches if self.loader_batches else None

    @property
    def augment_seconds_per_batch(self) -> float | None:
        """The training process's augmentation seconds per batch (``device``; None with ``workers``)."""
        return self.augment_seconds / self.augment_batches if self.augment_batches else None

    @property
    def wait_share(self) -> float | None:
        total = self.wait_seconds + self.step_seconds + self.augment_seconds
        return self.wait_seconds / total if total > 0 else None

    @property
    def loader_bound(self) -> bool:
        share = self.wait_share
        return share is not None and share >= LOADER_BOUND_WAIT_SHARE

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Throughput:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def summary(self) -> dict:
        """The rates a record shows (None where nothing was measured)."""

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        def rounded_seconds(value: float | None) -> float | None:
            return None if value is None else round(value, 6)

        return {
            "loader_samples_per_second": rounded(self.loader_samples_per_second),
            "loader_voxels_per_second": rounded(self.loader_voxels_per_second),
            "network_samples_per_second": rounded(self.network_samples_per_second),
            "network_voxels_per_second": rounded(self.network_voxels_per_second),
            "wait_share": None if self.wait_share is None else round(self.wait_share, 4),
            "loader_bound": self.loader_bound,
            "loader_workers": self.workers,
            "cases_per_batch": None if self.cases_per_batch is None else round(self.cases_per_batch, 3),
            "samples_per_batch": round(self.samples / self.iterations, 3) if self.iterations else None,
            "foreground_forced_share": (None if self.foreground_forced_share is None
                                        else round(self.foreground_forced_share, 4)),
            "augment_on": self.augment_on,
            "loader_seconds_per_batch": rounded_seconds(self.loader_seconds_per_batch),
            "augment_seconds_per_batch": rounded_seconds(self.augment_seconds_per_batch),
        }

    def log_text(self) -> str:
        """``loader 1,234 samples/s (5,678,000 voxels/s, 2 workers) | network ... | augmentation in the workers
        (within their 12.3 ms/batch) | waited 12% for batches`` (or ``augmentation on the device 4.5 ms/batch``)."""
        parts = []
        if self.loader_samples_per_second is not None:
            parts.append(f"loader {self.loader_samples_per_second:,.1f} samples/s "
                         f"({self.loader_voxels_per_second:,.0f} voxels/s, {self.workers} workers)")
        if self.network_samples_per_second is not None:
            parts.append(f"network {self.network_samples_per_second:,.1f} samples/s "
                         f"({self.network_voxels_per_second:,.0f} voxels/s)")
        if self.augment_seconds_per_batch is not None:
            parts.append(f"augmentation on the device {1000 * self.augment_seconds_per_batch:,.1f} ms/batch "
                         f"(training process)")
        elif self.augment_on == "workers":
            parts.append("augmentation in the workers" + (
                f" (within their {1000 * self.loader_seconds_per_batch:,.1f} ms/batch)"
                if self.loader_seconds_per_batch is not None else ""))
        if self.wait_share is not None:
            parts.append(f"waited {100 * self.wait_share:.0f}% for batches"
                         + (" (loader-bound)" if self.loader_bound else ""))
        return " | ".join(parts)


def combined(parts: Iterable[Throughput]) -> Throughput:
    """The sums of several epochs (workers: the largest count seen)."""
    total = Throughput()
    workers = 1
    places = set()
    for part in parts:
        workers = max(workers, part.workers)
        places.add(part.augment_on)
        total = replace(
            total, iterations=total.iterations + part.iterations, samples=total.samples + part.samples,
            voxels=total.voxels + part.voxels, wait_seconds=total.wait_seconds + part.wait_seconds,
            step_seconds=total.step_seconds + part.step_seconds,
            loader_seconds=total.loader_seconds + part.loader_seconds,
            loader_batches=total.loader_batches + part.loader_batches, cases=total.cases + part.cases,
            forced_crops=total.forced_crops + part.forced_crops,
            reported_batches=total.reported_batches + part.reported_batches,
            augment_seconds=total.augment_seconds + part.augment_seconds,
            augment_batches=total.augment_batches + part.augment_batches)
    augment_on = places.pop() if len(places) == 1 else ("mixed" if places else "workers")
    return replace(total, workers=workers, augment_on=augment_on)
