"""Image similarity between datasets (transfer/images.py) and the adapt report (transfer/report.py)."""
from __future__ import annotations

import numpy as np

from nnunet_progressive.datasets.synthetic import PRESETS, generate_case
from nnunet_progressive.pdl.similarity.compare import Thumbnail
from nnunet_progressive.transfer.images import dataset_image_similarity, z_scored
from nnunet_progressive.transfer.report import mapping_report


def _cases(spec, indices):
    return [(generate_case(spec, i)[0], spec.spacing) for i in indices]


def test_same_kind_of_images_score_higher_than_another_modality_and_field_of_view():
    ct = PRESETS["tiny3d"]
    same = dataset_image_similarity(_cases(ct, [0, 1]), _cases(ct.replace(seed=7), [0, 1]))
    other = dataset_image_similarity(_cases(ct, [0, 1]), _cases(PRESETS["anisotropic"], [0, 1]))
    assert len(same.pair_ssim) == 4 and same.registration_failures == 0
    assert same.score > 0.5 > other.score >= 0.0


def test_z_scoring_uses_the_body_only():
    image = np.zeros((1, 4, 4), np.float32)
    image[0, :2] = [[1, 2, 3, 4], [5, 6, 7, 8]]
    body = np.zeros((4, 4), bool)
    body[:2] = True
    scored = z_scored(Thumbnail(image, body)).image[0]
    assert abs(scored[body].mean()) < 1e-6 and abs(scored[body].std() - 1) < 1e-6


def test_mapping_report_lists_both_shapes_and_rules():
    record = {
        "source_checkpoint": "src.pth", "target_dataset": "Dataset612_T", "target_configuration": "3d_fullres",
        "target_plans": "nnUNetPlans", "target_trainer": "nnUNetTrainer", "mapped_share": 0.9,
        "counts": {"loaded": 1, "adapted": 1, "fresh": 1, "head": 1},
        "source_channel_names": ["CT"], "target_channel_names": ["T1", "T2"], "channel_matches": [None, None],
        "entries": [
            {"target": "a", "source": "a", "target_shape": [4, 2, 3], "source_shape": [4, 1, 3], "status": "adapted",
             "rule": "input channels 1 -> 2"},
            {"target": "b", "source": None, "target_shape": [8], "source_shape": None, "status": "fresh",
             "rule": "no source tensor of this name"},
            {"target": "c", "source": "c", "target_shape": [4], "source_shape": [4], "status": "loaded",
             "rule": "identical"},
            {"target": "decoder.seg_layers.0.bias", "source": None, "target_shape": [3], "source_shape": [4],
             "status": "head", "rule": "segmentation head"}],
        "unused_source": ["x", "y"],
    }
    text = mapping_report(record)
    assert "90.0% of the target's weights" in text
    assert "1 tensors loaded, 1 adapted, 1 fresh, 1 segmentation-head tensors" in text
    assert "state-dict names" not in text  # no aliases given: nothing to say
    record["state_dict_names"] = {"loaded": 1, "adapted": 4, "fresh": 1, "head": 1}
    record["head_rows"] = {"kept": {"background": "background", "Aorta": "aorta"}, "fresh": ["vessel"]}
    text = mapping_report(record)
    assert "1 segmentation-head tensors (7 state-dict names: several name one tensor)" in text
    assert "segmentation heads: rows kept from the source for background, Aorta (source aorta); fresh rows for " \
           "vessel" in text
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "a source 4x1x3 target 4x2x3 input channels 1 -> 2" in lines
    assert "b source - target 8 no source tensor of this name" in lines
    assert "source tensors the target has no place for (2): x, y" in text
