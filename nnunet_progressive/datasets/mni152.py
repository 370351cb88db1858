"""A small brain-tissue dataset built from real MRI that ships inside a PyPI package (nilearn).

nilearn's wheel carries the ICBM 2009a MNI152 T1 template with its grey- and white-matter probability maps
(no download). Each case here is that template resampled to a coarse isotropic grid and varied by a random
affine transform (rotation, scaling, translation), a smooth multiplicative bias field, a gamma intensity
change and noise; labels: 1 = grey matter, 2 = white matter, where that tissue's probability is at least
0.5 and higher than the other's.

What it is: real adult-brain anatomy and MR contrast, with a realistic class balance and boundaries.
What it is not: inter-subject variability (every case is the same population-average brain, moved and
re-scanned), manual labels (they come from probability maps), or pathology.
"""
from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.io import new_raw_dataset_folder

DATASET_NAME = "NNProgMNI152Tissue"
_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def template_images() -> dict[str, sitk.Image]:
    """The T1 template and the GM/WM probability maps (float32, 0-1 for the maps) from nilearn's wheel."""
    try:
        data = importlib.resources.files("nilearn") / "datasets" / "data"
    except ModuleNotFoundError:
        raise ProgressiveConfigError(
            "the MNI152 dataset needs nilearn, which ships the template: pip install nilearn"
        ) from None
    images = {}
    for key, name in _FILES.items():
        path = data / name
        if not path.is_file():
            raise ProgressiveConfigError(f"{name} is not in the installed nilearn ({data}); reinstall nilearn")
        image = sitk.Cast(sitk.ReadImage(str(path)), sitk.sitkFloat32)
        images[key] = image / 255.0 if key != "t1" else image
    return images


def _reference_grid(template: sitk.Image, spacing_mm: float) -> sitk.Image:
    size = [max(16, int(round(s * sp / spacing_mm))) for s, sp in zip(template.GetSize(), template.GetSpacing())]
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing([spacing_mm] * 3)
    grid.SetDirection(template.GetDirection())
    grid.SetOrigin(template.GetOrigin())
    return grid


def _random_affine(rng: np.random.Generator, center: tuple[float, ...]) -> sitk.AffineTransform:
    angles = np.deg2rad(rng.uniform(-10, 10, size=3))
    rotation = sitk.Euler3DTransform(center, *angles).GetMatrix()
    scale = np.diag(rng.uniform(0.9, 1.1, size=3))
    transform = sitk.AffineTransform(3)
    transform.SetCenter(center)
    transform.SetMatrix((np.asarray(rotation).reshape(3, 3) @ scale).ravel().tolist())
    transform.SetTranslation(rng.uniform(-5, 5, size=3).tolist())
    return transform


def make_case(images: dict[str, sitk.Image], grid: sitk.Image, rng: np.random.Generator
              ) -> tuple[sitk.Image, sitk.Image]:
    """One case on ``grid``: the moved, bias-corrupted, noisy T1 and its tissue label map."""
    center = grid.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in grid.GetSize()])
    transform = _random_affine(rng, center)
    moved = {k: sitk.Resample(v, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32) for k, v in images.items()}
    t1 = sitk.GetArrayFromImage(moved["t1"])
    gm, wm = sitk.GetArrayFromImage(moved["gm"]), sitk.GetArrayFromImage(moved["wm"])
    label = np.zeros(t1.shape, dtype=np.uint8)
    label[(gm >= 0.5) & (gm >= wm)] = 1
    label[(wm >= 0.5) & (wm > gm)] = 2
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, n) for n in t1.shape], indexing="ij")
    coefficients = rng.normal(0, 0.1, size=4)
    bias = np.exp(coefficients[0] * zz + coefficients[1] * yy + coefficients[2] * xx + coefficients[3] * xx * yy)
    scaled = np.clip(t1 / max(t1.max(), 1e-6), 0, 1) ** rng.uniform(0.8, 1.25)
    image = 1000.0 * scaled * bias + rng.normal(0, 15.0, size=t1.shape)
    image = np.clip(image, 0, None).astype(np.float32)
    image_itk, label_itk = sitk.GetImageFromArray(image), sitk.GetImageFromArray(label)
    for out in (image_itk, label_itk):
        out.CopyInformation(grid)
    return image_itk, label_itk


def write_mni152_dataset(raw_root: str | Path, dataset_id: int = 520, num_cases: int = 10, spacing_mm: float = 3.0,
                         seed: int = 0, overwrite: bool = False) -> Path:
    """Write ``raw_root/DatasetXXX_NNProgMNI152Tissue`` in nnU-Net raw format (atomically); returns it."""
    if num_cases < 2:
        raise ProgressiveConfigError(f"num_cases must be >= 2 (nnU-Net needs cases to split), got {num_cases}")
    if not 1.0 <= spacing_mm <= 8.0:
        raise ProgressiveConfigError(f"spacing_mm must lie in [1, 8] mm, got {spacing_mm}")
    folder_name = f"Dataset{dataset_id:03d}_{DATASET_NAME}"
    with new_raw_dataset_folder(raw_root, dataset_id, folder_name, overwrite) as work:
        images = template_images()
        grid = _reference_grid(images["t1"], spacing_mm)
        rng = np.random.default_rng(seed)
        for index in range(num_cases):
            image, label = make_case(images, grid, rng)
            case = f"{DATASET_NAME}_{index:03d}"
            sitk.WriteImage(image, str(work / "imagesTr" / f"{case}_0000.nii.gz"), useCompression=True)
            sitk.WriteImage(label, str(work / "labelsTr" / f"{case}.nii.gz"), useCompression=True)
        dataset_json = {
            "channel_names": {"0": "T1"},
            "labels": {"background": 0, "grey_matter": 1, "white_matter": 2},
            "numTraining": num_cases,
            "file_ending": ".nii.gz",
            "name": DATASET_NAME,
            "description": "ICBM 2009a MNI152 T1 template (shipped in nilearn) with random affine, bias field, "
                           "gamma and noise per case; labels from the GM/WM probability maps.",
            "licence": "ICBM 2009a template: free to use with attribution (Fonov et al. 2009/2011)",
            "nnunet_progressive": {"spacing_mm": spacing_mm, "seed": seed},
        }
        (work / "dataset.json").write_text(json.dumps(dataset_json, indent=2) + "\n")
    return Path(raw_root) / folder_name
