"""nnunet-progressive: training strategies for stock nnU-Net v2 (no fork, no patches)."""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
version = {}
exec((ROOT / "nnunet_progressive" / "_version.py").read_text(), version)

setup(
    name="nnunet-progressive",
    version=version["__version__"],
    description="Progressive patch size (PGPS), progressive data (PDL) and transfer learning for nnU-Net v2",
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The trainer modules live in trainers/ (what nnU-Net's nnUNet_extTrainer search imports); they are
    # installed as the package nnunet_progressive_trainers so `nnprog env` can find them after any install.
    packages=find_packages(include=["nnunet_progressive", "nnunet_progressive.*"])
    + ["nnunet_progressive_trainers"],
    package_dir={"nnunet_progressive_trainers": "trainers"},
    package_data={"nnunet_progressive.nnunet.compat": ["cpu_torchvision/*.py"]},
    install_requires=[
        "nnunetv2>=2.8.1,<2.9",  # tested range: 2.8.1
        "torch>=2.1",
        "batchgenerators>=0.25",
        "SimpleITK>=2.2",
        "acvl-utils>=0.2",
        "numpy",
        "scipy",
        "scikit-image",
        "matplotlib",
        "tqdm",
        "pydantic>=2.6",  # the one validation kit: knobs, specs, presets, records
        "pyyaml",  # benchmark specs in YAML (imported lazily; JSON specs need nothing)
        "submitit",  # SLURM executor of `nnprog benchmark run` (imported lazily)
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-xdist>=3.8", "ruff", "nilearn", "monai>=1.5,<1.7"],
        "offline": ["nilearn"],  # ships the MNI152 template used by nnunet_progressive.datasets.mni152
        # MONAI's UNETR and SwinUNETR (nnUNetTrainer_UNETR, _SwinUNETR); 1.5 dropped SwinUNETR's img_size
        "transformers": ["monai>=1.5,<1.7"],
    },
    entry_points={"console_scripts": ["nnprog=nnunet_progressive.cli.main:main"]},
)
