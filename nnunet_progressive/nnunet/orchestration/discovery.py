"""Where nnU-Net finds this package's trainers: the folder for ``nnUNet_extTrainer``."""
from __future__ import annotations

import importlib.util
import os
import shlex
from pathlib import Path

from nnunet_progressive.nnunet.compat import pythonpath_with_compat

TRAINERS_PACKAGE = "nnunet_progressive_trainers"


def trainers_directory() -> Path:
    """The installed folder of trainer modules (``trainers/`` of the source tree in editable installs)."""
    spec = importlib.util.find_spec(TRAINERS_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]).resolve()
    source_tree = Path(__file__).resolve().parents[3] / "trainers"  # <repo>/trainers beside the package
    if source_tree.is_dir():
        return source_tree
    raise RuntimeError(
        f"cannot find the package {TRAINERS_PACKAGE!r}; reinstall nnunet-progressive (pip install -e .)"
    )


def ext_trainer_value(current: str | None = None) -> str:
    """``nnUNet_extTrainer`` with our folder first, keeping any folders the user already listed."""
    ours = str(trainers_directory())
    existing = [p for p in (current or "").split(os.pathsep) if p.strip() and Path(p).resolve() != Path(ours)]
    return os.pathsep.join([ours, *existing])


def export_lines(environ: dict[str, str] | None = None) -> str:
    """The shell lines that make ``nnUNetv2_train``/``nnUNetv2_predict`` find the trainers."""
    environ = dict(os.environ if environ is None else environ)
    lines = [f"export nnUNet_extTrainer={shlex.quote(ext_trainer_value(environ.get('nnUNet_extTrainer')))}"]
    pythonpath = pythonpath_with_compat(environ.get("PYTHONPATH"))
    if pythonpath != environ.get("PYTHONPATH"):
        lines.append("# torchvision cannot load its operators here (CPU torch, CUDA torchvision): work-around")
        lines.append(f"export PYTHONPATH={shlex.quote(pythonpath)}")
    return "\n".join(lines)


def environment_with_trainers(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: os.environ) set up as ``nnprog env`` would, for subprocesses."""
    env = dict(os.environ if base is None else base)
    env["nnUNet_extTrainer"] = ext_trainer_value(env.get("nnUNet_extTrainer"))
    pythonpath = pythonpath_with_compat(env.get("PYTHONPATH"))
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return env


def package_trainer_class(trainer_name: str) -> type | None:
    """The trainer of this package named ``trainer_name`` (None: not in the trainer catalogue).

    Imports only the one trainer module the catalogue names (the architectures' module imports nnU-Net's Primus
    trainers, timm and MONAI; the others do not).
    """
    import importlib

    from nnunet_progressive.core.errors import ProgressiveConfigError
    from nnunet_progressive.nnunet.catalogue import trainer_entry

    entry = trainer_entry(trainer_name)
    if entry is None:
        return None
    if entry.method == "architectures":
        from nnunet_progressive.nnunet.compat import install_in_this_process

        install_in_this_process()  # before timm (Primus) imports torchvision on a CPU-only machine
    module = importlib.import_module(f"{TRAINERS_PACKAGE}.{entry.module}")
    found = vars(module).get(trainer_name)
    if found is None:
        raise ProgressiveConfigError(f"{trainer_name} needs {entry.requires or 'a newer nnU-Net'}, which is not "
                                     f"installed here; pick another trainer (`nnprog trainers` lists them)")
    return found


def trainer_default_settings(trainer_name: str):
    """The default settings (``ProgressiveSettings``) a run of ``trainer_name`` starts from: the catalogue's for the
    package's trainers (no torch), the class's for others (nnU-Net's default settings for nnU-Net's own)."""
    from nnunet_progressive.core.knobs import ProgressiveSettings
    from nnunet_progressive.nnunet.catalogue import trainer_entry

    entry = trainer_entry(trainer_name)
    if entry is not None:
        return entry.default_settings()
    return getattr(find_trainer_class(trainer_name), "default_settings", ProgressiveSettings())


def find_trainer_class(trainer_name: str) -> type:
    """The trainer class nnU-Net's own search finds for ``trainer_name`` (this package's trainers included)."""
    import contextlib
    import io

    from nnunet_progressive.core.errors import ProgressiveConfigError

    os.environ["nnUNet_extTrainer"] = ext_trainer_value(os.environ.get("nnUNet_extTrainer"))
    ours = package_trainer_class(trainer_name)
    if ours is not None:
        return ours  # without nnU-Net's search, which imports every trainer variant nnU-Net ships (about 3 s)
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_progressive.nnunet.compat import install_in_this_process

    install_in_this_process()
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return recursive_find_trainer_class_by_name(trainer_name)
        except RuntimeError as error:
            if "Could not find requested nnunet trainer" not in str(error):
                raise  # a trainer module failed to import: its own error says why
            import difflib

            from nnunet_progressive.nnunet.catalogue import CATALOGUE

            close = difflib.get_close_matches(trainer_name, list(CATALOGUE), n=1)
            raise ProgressiveConfigError(
                f"no trainer named {trainer_name!r} was found (nnU-Net's trainers and this package's)"
                + (f"; did you mean {close[0]}?" if close else ";") + " check the spelling (`nnprog trainers` "
                "lists the trainers of nnunet-progressive)") from None
