"""The epoch bar of a training, fed from nnU-Net's training log (what `nnprog demo` and `benchmark run` show)."""
from __future__ import annotations

from nnunet_progressive.benchmark.progress import EpochBar, expected_epochs, parse_log_progress

LOG = """2025-01-01 10:00:00.000001: Epoch 0
2025-01-01 10:00:00.000002: Current learning rate: 0.01
2025-01-01 10:00:00.000003: PGPS stage 1/9 | patch 16x8x8 | batch 2 | 100 voxels/s
2025-01-01 10:00:05.000000: train_loss -0.1
2025-01-01 10:00:05.000000: Pseudo dice [np.float32(0.51), np.float32(0.0)]
2025-01-01 10:00:05.000000: Epoch time: 5.01 s
2025-01-01 10:00:05.100000: Epoch 1
2025-01-01 10:00:05.100000: PGPS stage 2/9 | patch 16x16x8 | batch 2 | 100 voxels/s
"""


def test_log_progress_follows_epochs_stages_and_pseudo_dice():
    assert parse_log_progress("") == parse_log_progress("nnU-Net banner\n")
    progress = parse_log_progress(LOG)
    assert (progress.epochs_done, progress.epoch_running, progress.stage) == (1, 1, "2/9")
    assert progress.pseudo_dice == "0.51, 0.0"
    finished = parse_log_progress(LOG + "2025-01-01 10:00:09.000000: Epoch time: 3.9 s\n")
    assert finished.epochs_done == 2


def test_expected_epochs_from_knob_trainer_defaults_or_nnunet_default():
    from nnunet_progressive.core.knobs import ProgressiveSettings

    plain, finetune = ProgressiveSettings(), ProgressiveSettings(epochs=150)  # fine-tuning trains 150 by default
    assert expected_epochs(plain, {"NNPROG_EPOCHS": "18"}) == 18
    assert expected_epochs(finetune, {"NNPROG_EPOCHS": 18}) == 18
    assert expected_epochs(ProgressiveSettings(epochs=250), {}) == 250
    assert expected_epochs(finetune, {}) == 150 and expected_epochs(plain, {}) == 1000
    assert expected_epochs(finetune, {"NNPROG_EPOCHS": "ten"}) == 150  # the run itself reports the bad value


def test_epoch_bar_reads_only_what_the_log_gained():
    earlier_attempt = "2025-01-01 09:00:00.000000: Epoch 7\n2025-01-01 09:00:01.000000: Epoch time: 1.0 s\n"
    bar = EpochBar("PGPS", total=9, start=len(earlier_attempt), enabled=False)
    bar.look(earlier_attempt)
    assert bar.bar.n == 0  # the earlier attempt's epochs are not this training's
    bar.look(earlier_attempt + LOG)
    assert bar.bar.n == 1
    resumed = "2025-01-01 11:00:00.000000: Epoch 5\n"
    bar.look(earlier_attempt + LOG + resumed)
    assert bar.bar.n == 5  # `--c` continues at epoch 5: five epochs are done
    last = "2025-01-01 11:00:00.000000: Epoch 8\n2025-01-01 11:00:01.000000: Epoch time: 1.0 s\n"
    bar.look(earlier_attempt + LOG + resumed + last)
    assert bar.bar.n == 9 and "final validation" in bar.bar.postfix
    bar.close()


def test_epoch_bar_shows_the_running_epochs_iterations_from_the_heartbeat():
    from nnunet_progressive.core.heartbeat import HEARTBEAT_SECONDS_ENV, heartbeat_line, heartbeat_seconds

    bar = EpochBar("PGPS", total=9, enabled=False)
    bar.look(LOG + heartbeat_line(1, 40, 250) + "\n")
    assert "iteration 40/250" in bar.bar.postfix and "stage 2/9" in bar.bar.postfix
    bar.look(LOG + heartbeat_line(1, 40, 250) + "\n2025-01-01 10:00:09.000000: Epoch 2\n")
    assert "iteration" not in bar.bar.postfix  # an older epoch's heartbeat is not this epoch's
    bar.close()
    assert heartbeat_seconds({HEARTBEAT_SECONDS_ENV: "2"}) == 2.0
    assert heartbeat_seconds({}) is None and heartbeat_seconds({HEARTBEAT_SECONDS_ENV: "x"}) is None
