"""Generated CT-like scans for the registration cases of the PDL ranking (tests and scripts/benchmark_ranking.py).

A scan is a function of physical position (mm), so one "patient" can be sampled at any spacing, field of view or
orientation: a body ellipsoid with two lungs, a spine behind the centre and a liver on one side (left-right
asymmetric, so a mirrored scan differs from the original). Intensities are on nnU-Net's CT scale after
normalisation (air about -1.5, soft tissue about 0.3, bone about 1.5).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

AIR, FAT, TISSUE, LUNG, BONE, LIVER = -1.5, -0.3, 0.3, -1.2, 1.5, 0.6


@dataclass(frozen=True)
class Patient:
    """Body half-axes (mm, z y x), a shift of the anatomy (mm) and organ sizes; one per generated patient."""

    body: tuple[float, float, float] = (140.0, 90.0, 130.0)
    shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
    lung: float = 35.0
    liver: float = 40.0


def scan(patient: Patient, shape: Sequence[int], spacing: Sequence[float], *, centre_mm: Sequence[float] = (0, 0, 0),
         flip_x: bool = False, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """``patient`` sampled on a (z, y, x) grid of ``shape`` x ``spacing`` mm whose centre lies at ``centre_mm``
    (a crop of a larger scan: a smaller ``shape`` around an off-centre point); ``flip_x``: a flipped direction."""
    axes = [(np.arange(n) - (n - 1) / 2) * s + c - h for n, s, c, h in zip(shape, spacing, centre_mm, patient.shift,
                                                                             strict=True)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    if flip_x:
        x = -x
    bz, by, bx = patient.body
    image = np.full(z.shape, AIR, dtype=np.float32)
    body = (z / bz) ** 2 + (y / by) ** 2 + (x / bx) ** 2 <= 1
    image[body] = FAT
    image[(z / bz) ** 2 + (y / (by - 12)) ** 2 + (x / (bx - 12)) ** 2 <= 1] = TISSUE
    for side in (-1, 1):  # lungs, upper half of the body
        lung = ((z - 50) / (1.8 * patient.lung)) ** 2 + (y / patient.lung) ** 2 + ((x - side * 50) / patient.lung) ** 2
        image[(lung <= 1) & body] = LUNG
    image[(((y - 55) / 14) ** 2 + (x / 14) ** 2 <= 1) & body] = BONE  # the spine
    liver = ((z + 40) / (1.3 * patient.liver)) ** 2 + ((y + 10) / patient.liver) ** 2 + ((x + 55) / patient.liver) ** 2
    image[(liver <= 1) & body] = LIVER
    rng = np.random.default_rng(seed)
    return (image + noise * rng.standard_normal(image.shape)).astype(np.float32)


PATIENTS = {"p1": Patient(), "p2": Patient(body=(150.0, 80.0, 120.0), shift=(8.0, -5.0, 6.0), lung=30.0, liver=48.0)}


def registration_cases() -> dict[str, tuple[np.ndarray, tuple[float, float, float]]]:
    """The issue's registration cases, as case id -> (image (z, y, x), spacing mm): per patient a full scan at
    3 mm, a crop of it (upper 60% of z, 80% of y and x, off-centre in x), the full scan at 1.5 mm and the full scan
    mirrored in x (a flipped direction)."""
    cases = {}
    for name, patient in PATIENTS.items():
        full_shape, spacing = (100, 64, 96), (3.0, 3.0, 3.0)
        cases[f"{name}_full"] = (scan(patient, full_shape, spacing, seed=1), spacing)
        crop_shape = (60, 52, 76)
        crop_centre = ((full_shape[0] - crop_shape[0]) / 2 * spacing[0], 0.0, 12.0)
        cases[f"{name}_crop"] = (scan(patient, crop_shape, spacing, centre_mm=crop_centre, seed=2), spacing)
        fine = (1.5, 1.5, 1.5)
        cases[f"{name}_fine"] = (scan(patient, (200, 128, 192), fine, seed=3), fine)
        cases[f"{name}_flipped"] = (scan(patient, full_shape, spacing, flip_x=True, seed=4), spacing)
    return cases


def benchmark_cases() -> dict[str, tuple[np.ndarray, tuple[float, float, float]]]:
    """:func:`registration_cases` plus patient 1 with a changed normalisation (intensities x 1.3 + 0.5) and a
    small third patient (scripts/benchmark_ranking.py)."""
    cases = registration_cases()
    full, spacing = cases["p1_full"]
    cases["p1_renormalised"] = (full * 1.3 + 0.5, spacing)
    small = Patient(body=(100.0, 60.0, 90.0), shift=(-6.0, 4.0, -5.0), lung=22.0, liver=28.0)
    cases["p3_small"] = (scan(small, (100, 64, 96), spacing, seed=5), spacing)
    return cases
