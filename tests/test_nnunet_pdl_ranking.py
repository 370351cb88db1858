"""`rank_dataset` / `nnprog rank` on tiny fake preprocessed nnU-Net datasets (blosc2 cases on disk)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from nnunetv2.training.dataloading.nnunet_dataset import comp_blosc2_params, nnUNetDatasetBlosc2

from nnunet_progressive import __version__
from nnunet_progressive.cli import main as cli_main
from nnunet_progressive.cli import pdl as rank_cmd
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.records import SimilarityRanking, read_record, write_record
from nnunet_progressive.nnunet.offline import pdl_ranking as rd
from nnunet_progressive.pdl.similarity import ranking
from nnunet_progressive.pdl.similarity.registration import REGISTRATION_METHODS

DATASET = "Dataset901_FakeRank"
DATA_IDENTIFIER = {"3d_fullres": "nnUNetPlans_3d_fullres", "2d": "nnUNetPlans_2d"}


def _case(seed: int, shape: tuple[int, ...] = (24, 24, 24), channels: int = 2, invert: bool = False) -> np.ndarray:
    """A bright ellipsoid on a dark background (+ noise); ``invert`` swaps them (the outlier)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(float(n)) for n in shape], indexing="ij")
    centre = [n / 2 + rng.uniform(-1.5, 1.5) for n in shape]
    r2 = sum(((g - c) / (n / 4)) ** 2 for g, c, n in zip(grids, centre, shape, strict=True))
    image = np.exp(-r2) + 0.03 * rng.standard_normal(shape)
    if invert:
        image = 1.0 - image
    return np.stack([image * (1 + c) for c in range(channels)]).astype(np.float32)


def _write_dataset(
    root: Path,
    cases: dict[str, np.ndarray],
    spacing: tuple[float, ...] = (1.5, 1.0, 1.0),
    configuration: str = "3d_fullres",
) -> Path:
    """A minimal planned + preprocessed dataset under ``root``; returns the data folder."""
    dataset_folder = root / DATASET
    data_folder = dataset_folder / DATA_IDENTIFIER[configuration]
    data_folder.mkdir(parents=True, exist_ok=True)
    config_spacing = list(spacing) if configuration != "2d" else list(spacing[1:])
    plans = {
        "dataset_name": DATASET,
        "plans_name": "nnUNetPlans",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            configuration: {
                "data_identifier": DATA_IDENTIFIER[configuration],
                "spacing": config_spacing,
                "patch_size": [16, 16, 16][: len(config_spacing)],
                "architecture": {"network_class_name": "unused", "arch_kwargs": {}, "_kw_requires_import": []},
            }
        },
    }
    (dataset_folder / "nnUNetPlans.json").write_text(json.dumps(plans))
    dataset_json = {"channel_names": {"0": "CT", "1": "CT2"}, "labels": {"background": 0, "a": 1}}
    (dataset_folder / "dataset.json").write_text(json.dumps({**dataset_json, "numTraining": len(cases)}))
    for case_id, data in cases.items():
        seg = np.zeros((1, *data.shape[1:]), np.int8)
        blocks, chunks = comp_blosc2_params(data.shape, data.shape[-3:] if data.shape[1] > 1 else data.shape[2:])
        properties = {"spacing": list(spacing), "shape_before_cropping": data.shape[1:]}
        nnUNetDatasetBlosc2.save_case(data, seg, properties, str(data_folder / case_id), chunks=chunks, blocks=blocks)
    return data_folder


def _standard_cases() -> dict[str, np.ndarray]:
    cases = {f"case_{i:03d}": _case(i) for i in range(4)}
    cases["case_dup"] = cases["case_001"].copy()
    cases["case_out"] = _case(99, invert=True)
    return cases


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    return _write_dataset(tmp_path, _standard_cases())


def _rank(data_folder: Path, output: Path, **kwargs) -> dict:
    path = rd.rank_preprocessed_folder(data_folder, (1.5, 1.0, 1.0), output, progress=False, **kwargs)
    return json.loads(path.read_text())


def test_rank_dataset_takes_the_preprocessed_folder_of_its_caller(dataset: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark calls `nnprog rank`'s function with its own folders: they win over the environment's."""
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "elsewhere"))
    [path] = rd.rank_dataset(901, folds=["all"], registration="none", preprocessed=dataset.parent.parent)
    assert path == dataset.parent / "similarity_ranking_nnUNetPlans_3d_fullres_foldall.json" and path.is_file()


def test_rank_dataset_pairwise_via_nnunet_paths(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("nnUNet_preprocessed", str(dataset.parent.parent))
    [path] = rd.rank_dataset(901, folds=["all"])
    assert path == dataset.parent / "similarity_ranking_nnUNetPlans_3d_fullres_foldall.json"
    result = json.loads(path.read_text())
    ids = sorted(_standard_cases())
    assert result["case_ids"] == ids
    assert result["case_list_fingerprint"] == rd.case_list_fingerprint(ids)
    assert result["mode"] == "pairwise" and result["reference"] is None
    assert result["registration"] == "rigid_affine" and result["region"] == "body"
    assert result["package_version"] == __version__
    assert result["settings"]["data_identifier"] == "nnUNetPlans_3d_fullres"
    # the outlier's affine stage degenerates; its pairs keep the rigid result instead of failing (issue #8, 12)
    assert result["num_pairs"] == 15 and result["failures"] == []
    assert result["order"][0] == "case_out"
    # the duplicate pair scores alike and sits side by side in the order
    positions = sorted(result["order"].index(c) for c in ("case_001", "case_dup"))
    assert positions[1] - positions[0] == 1
    assert result["scores"]["mse"]["case_001"] == pytest.approx(result["scores"]["mse"]["case_dup"], rel=1e-3)
    assert sorted(result["combined_rank"].values()) == list(range(len(ids)))
    for metric in ("mse", "psnr", "ssim", "uqi"):
        assert set(result["scores"][metric]) == set(ids)
        assert max(result["scores"][metric], key=result["scores"][metric].get) == "case_out"
    # atomic writes leave no temporary files behind
    assert not [p for p in dataset.parent.iterdir() if p.name.endswith(".tmp")]
    assert (dataset.parent / "similarity_ranking_nnUNetPlans_3d_fullres_foldall.pairs.json").is_file()
    assert result["settings"]["fold"] == "all" and result["registration_summary"]["pairs"] == 15
    assert [(p["fixed"], p["moving"]) for p in result["pairs"]] == ranking.planned_pairs(ids, "pairwise")


def test_reference_mode_auto_reference_and_explicit(dataset: Path, tmp_path: Path) -> None:
    auto = _rank(dataset, tmp_path / "auto.json", mode="auto", pairwise_limit=3, registration="rigid")
    assert auto["mode"] == "reference" and auto["reference"] not in (None, "case_out")
    assert auto["num_pairs"] == 5
    assert auto["order"][0] == "case_out"
    # distance 0 to itself: the reference is among the least dissimilar (with its duplicate, if any)
    assert auto["scores"]["mse"][auto["reference"]] == 0.0
    assert auto["reference"] in auto["order"][-2:]
    explicit = _rank(dataset, tmp_path / "explicit.json", reference="case_002", registration="none")
    assert explicit["mode"] == "reference" and explicit["reference"] == "case_002"
    assert explicit["order"][0] == "case_out"


def test_second_run_recomputes_no_pair_and_resumes_after_interrupt(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "ranking.json"
    real_compare = rd.compare_pair
    calls: list[int] = []

    def failing_after_four(*args, **kwargs):
        if len(calls) >= 4:
            raise KeyboardInterrupt  # like Ctrl-C in the middle of a run
        calls.append(1)
        return real_compare(*args, **kwargs)

    monkeypatch.setattr(rd, "compare_pair", failing_after_four)
    with pytest.raises(KeyboardInterrupt):
        _rank(dataset, output, registration="rigid")
    cache = json.loads(rd.cache_path_for(output).read_text())
    assert len(cache["pairs"]) == 4 and not output.exists()

    def counting(*args, **kwargs):
        calls.append(1)
        return real_compare(*args, **kwargs)

    calls.clear()
    monkeypatch.setattr(rd, "compare_pair", counting)
    first = _rank(dataset, output, registration="rigid")
    assert len(calls) == 15 - 4

    calls.clear()
    second = _rank(dataset, output, registration="rigid")
    assert calls == []
    assert second["scores"] == first["scores"] and second["order"] == first["order"]

    calls.clear()
    _rank(dataset, output, registration="none")  # other settings: new key, everything recomputed
    assert len(calls) == 15


def test_ranking_record_is_written_atomically_and_keeps_old_file_on_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.json"

    def ranking_with(score: float) -> SimilarityRanking:
        return SimilarityRanking(case_ids=["a"], case_list_fingerprint="f", order=["a"], scores={"mse": {"a": score}})

    write_record(target, ranking_with(1.0))
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(source, destination):
        replaced.append((str(source), str(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(rd.os, "replace", spy)
    write_record(target, ranking_with(2.0))
    assert json.loads(target.read_text())["scores"] == {"mse": {"a": 2.0}}
    assert Path(replaced[0][0]).parent == tmp_path and replaced[0][1] == str(target)
    with pytest.raises(ValueError):
        write_record(target, ranking_with(float("nan")))  # not valid JSON: refused, old file kept
    assert json.loads(target.read_text())["scores"] == {"mse": {"a": 2.0}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    assert read_record(target, SimilarityRanking).scores == {"mse": {"a": 2.0}}


def test_multiprocessing_matches_single_process(dataset: Path, tmp_path: Path) -> None:
    single = _rank(dataset, tmp_path / "one.json", mode="reference", reference="case_000", registration="rigid")
    multi = _rank(
        dataset, tmp_path / "two.json", mode="reference", reference="case_000", registration="rigid", num_processes=2
    )
    assert multi["order"] == single["order"]
    for metric, scores in single["scores"].items():
        assert multi["scores"][metric] == pytest.approx(scores, rel=1e-6)


def test_2d_configuration_single_slice_cases(tmp_path: Path) -> None:
    cases = {f"c{i}": _case(i, shape=(1, 40, 40), channels=1) for i in range(3)}
    cases["out"] = _case(7, shape=(1, 40, 40), channels=1, invert=True)
    data_folder = _write_dataset(tmp_path, cases, spacing=(1.0, 0.8, 0.8), configuration="2d")
    path = rd.rank_preprocessed_folder(data_folder, (0.8, 0.8), tmp_path / "r.json", progress=False)
    result = json.loads(path.read_text())
    assert result["grid_shape"] == [1, 40, 40]
    assert result["order"][0] == "out"


def test_bad_inputs_give_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path))
    (tmp_path / "Dataset902_Unplanned").mkdir()
    with pytest.raises(ProgressiveConfigError, match="nnUNetv2_plan_and_preprocess -d 902 -c 3d_fullres"):
        rd.rank_dataset(902)
    with pytest.raises(ProgressiveConfigError, match="not found"):
        rd.rank_dataset(903)

    data_folder = _write_dataset(tmp_path, {"only": _case(0)})
    plans = json.loads((data_folder.parent / "nnUNetPlans.json").read_text())
    plans["configurations"]["2d"] = {**plans["configurations"]["3d_fullres"], "data_identifier": "nnUNetPlans_2d"}
    (data_folder.parent / "nnUNetPlans.json").write_text(json.dumps(plans))
    with pytest.raises(ProgressiveConfigError, match="nnUNetv2_preprocess -d 901 -plans_name nnUNetPlans -c 2d"):
        rd.rank_dataset(901, configuration="2d")
    with pytest.raises(ProgressiveConfigError, match="not in .*available"):
        rd.rank_dataset(901, configuration="3d_lowres")
    with pytest.raises(ProgressiveConfigError, match="at least 2 preprocessed cases; found 1"):
        rd.rank_dataset(901)
    with pytest.raises(ProgressiveConfigError, match="A fold is an integer >= 0 or 'all'"):
        rd.rank_dataset(901, folds=["one"])

    other = tmp_path / "other"
    mixed = _write_dataset(other, {"two_ch": _case(0), "one_ch": _case(1, channels=1)})
    with pytest.raises(ProgressiveConfigError, match=r"same number of channels.*one_ch"):
        _rank(mixed, tmp_path / "x.json")

    bad = _case(2)
    bad[1, 3, 3, 3] = np.nan
    nan_folder = _write_dataset(tmp_path / "nan", {"fine": _case(1), "broken": bad})
    with pytest.raises(ProgressiveConfigError, match="Case broken channel 1 contains 1 NaN"):
        _rank(nan_folder, tmp_path / "y.json")

    good = _write_dataset(tmp_path / "good", {"a": _case(1), "b": _case(2)})
    with pytest.raises(ProgressiveConfigError, match="Reference case 'zzz' is not among"):
        _rank(good, tmp_path / "z.json", reference="zzz")
    with pytest.raises(ProgressiveConfigError, match="only used in reference mode"):
        _rank(good, tmp_path / "z.json", mode="pairwise", reference="a")
    with pytest.raises(ProgressiveConfigError, match="does not exist"):
        _rank(tmp_path / "missing", tmp_path / "z.json")


def test_cli_rank(dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("nnUNet_preprocessed", str(dataset.parent.parent))
    output = tmp_path / "cli.json"
    arguments = ["rank", "-d", DATASET, "--mode", "reference", "--registration", "none", "--region", "image",
                 "-o", str(output)]
    assert cli_main.main(arguments) == 2
    assert "-o names one file but 5 folds would be ranked" in capsys.readouterr().err
    code = cli_main.main([*arguments, "--fold", "all"])
    assert code == 0
    result = json.loads(output.read_text())
    assert result["mode"] == "reference" and result["region"] == "image" and result["registration"] == "none"
    assert cli_main.main(["rank", "-d", "955"]) == 2
    assert "not found" in capsys.readouterr().err
    # the CLI's choices mirror the library's (kept local so `nnprog --help` stays light)
    assert rank_cmd.REGISTRATIONS == REGISTRATION_METHODS
    assert rank_cmd.REGIONS == rd.REGIONS and rank_cmd.MODES == ("auto", *ranking.MODES)


SPLITS = [{"train": ["case_000", "case_001", "case_002", "case_dup"], "val": ["case_003", "case_out"]},
          {"train": ["case_000", "case_003", "case_out", "case_dup"], "val": ["case_001", "case_002"]}]


def test_a_fold_ranks_its_training_cases_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 23: the grid, data ranges, reference and every case's mean dissimilarity of fold 0 do not depend on
    its validation images; without --fold every fold of splits_final.json is ranked into its own file."""
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path))
    cases = _standard_cases()
    data_folder = _write_dataset(tmp_path, cases)
    (data_folder.parent / "splits_final.json").write_text(json.dumps(SPLITS))
    written = rd.rank_dataset(901, registration="rigid", mode="reference")
    assert [p.name for p in written] == [f"similarity_ranking_nnUNetPlans_3d_fullres_fold{f}.json" for f in (0, 1)]
    first = json.loads(written[0].read_text())
    assert first["case_ids"] == SPLITS[0]["train"] and first["settings"]["fold"] == 0
    assert first["settings"]["splits"].endswith("splits_final.json")
    assert "case_out" not in first["order"] and first["reference"] in SPLITS[0]["train"]
    assert json.loads(written[1].read_text())["order"][0] == "case_out", "fold 1 trains on the outlier"
    assert set(first["orders"]) == {"combined", "mse", "psnr", "ssim"} and first["orders"]["combined"] == first["order"]
    for metric in ("mse", "psnr", "ssim"):
        scores = first["scores"][metric]
        assert first["orders"][metric] == sorted(scores, key=lambda c: (-scores[c], c))

    # other validation images (a larger, brighter one among them): fold 0's ranking stays the same
    changed = {**cases, "case_out": _case(50, shape=(30, 28, 26)) * 3.0, "case_003": _case(51, invert=True)}
    other_root = tmp_path / "other"
    other_folder = _write_dataset(other_root, changed)
    (other_folder.parent / "splits_final.json").write_text(json.dumps(SPLITS))
    monkeypatch.setenv("nnUNet_preprocessed", str(other_root))
    [again] = rd.rank_dataset(901, registration="rigid", mode="reference", folds=["0"])
    second = json.loads(again.read_text())
    for key in ("grid_shape", "grid_spacing", "data_ranges", "reference", "order", "orders", "combined_rank"):
        assert second[key] == first[key], key
    for metric, scores in first["scores"].items():
        assert second["scores"][metric] == pytest.approx(scores, rel=1e-9)


def test_folds_without_a_split_file_follow_nnunet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before nnUNetv2_train wrote splits_final.json, fold F is nnU-Net's default 5-fold split; beyond the split file,
    nnU-Net's seeded 80:20 split; a split naming unknown cases is one clear error."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path))
    data_folder = _write_dataset(tmp_path, _standard_cases())
    ids = sorted(_standard_cases())
    [path] = rd.rank_dataset(901, registration="none", folds=[3])
    result = json.loads(path.read_text())
    assert result["case_ids"] == sorted(generate_crossval_split(ids, seed=12345, n_splits=5)[3]["train"])
    assert "default 5-fold split" in result["settings"]["splits"]
    assert not (data_folder.parent / "splits_final.json").exists(), "nnUNetv2_train writes the split, not rank"
    (data_folder.parent / "splits_final.json").write_text(json.dumps(SPLITS))
    [beyond] = rd.rank_dataset(901, registration="none", folds=[7])
    rng = np.random.RandomState(seed=12345 + 7)
    expected = sorted(ids[i] for i in rng.choice(len(ids), int(len(ids) * 0.8), replace=False))
    assert json.loads(beyond.read_text())["case_ids"] == expected
    (data_folder.parent / "splits_final.json").write_text(json.dumps([{"train": ["case_000", "gone"], "val": []}]))
    with pytest.raises(ProgressiveConfigError, match=r"splits_final.json: Fold 0's training cases \['gone'\]"):
        rd.rank_dataset(901, registration="none", folds=[0])
    (data_folder.parent / "splits_final.json").write_text("{}")
    with pytest.raises(ProgressiveConfigError, match="is not nnU-Net's split file"):
        rd.rank_dataset(901, registration="none", folds=[0])


def test_the_ranking_summary_counts_equal_its_pair_records(dataset: Path, tmp_path: Path, capsys) -> None:
    result = _rank(dataset, tmp_path / "r.json", registration="rigid_affine")
    records, counts = result["pairs"], result["registration_summary"]
    assert len(records) == counts["pairs"] == result["num_pairs"] == 15
    for status, count in counts["by_status"].items():
        assert count == sum(r["status"] == status for r in records)
    assert counts["registered"] == sum(r["registration_ok"] for r in records)
    assert counts["not_registered"] == len(result["failures"])
    assert counts["affine_discarded"] == sum(any(d.startswith("affine") for d in r["discarded"]) for r in records)
    for record in records:
        assert record["message"].startswith(f"kept {record['stage_kept']}")
        assert set(record["values"]) == {"mse", "psnr", "ssim", "uqi"}
    cache = json.loads(rd.cache_path_for(tmp_path / "r.json").read_text())
    assert [{k: p[k] for k in records[0]} for p in cache["pairs"]] == records
    assert f"registration: {counts['pairs']} pairs: " in capsys.readouterr().out
