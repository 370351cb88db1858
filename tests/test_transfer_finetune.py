"""Fine-tuning schedules (transfer/finetune.py): phases, learning rates, newly trained roles."""
from __future__ import annotations

import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.transfer.finetune import (
    DECODER,
    ENCODER,
    HEADS,
    NEW,
    ROLES,
    build_finetune_schedule,
    default_warmup_epochs,
)


def test_default_warmup_follows_nnssl():
    assert [default_warmup_epochs(e) for e in (1000, 150, 100, 5)] == [50, 15, 10, 1]


def test_finetune_is_linear_warmup_then_nnunet_poly():
    schedule = build_finetune_schedule("finetune", 10, 1e-3, warmup_epochs=4)
    assert [p.name for p in schedule.phases] == ["warmup (all layers)", "poly (all layers)"]
    assert [schedule.lr_at(e) for e in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert schedule.lr_at(4) == pytest.approx(1e-3)
    assert schedule.lr_at(7) == pytest.approx(1e-3 * (1 - 3 / 6) ** 0.9)
    assert all(schedule.learning_rates(e)[r] > 0 for e in range(10) for r in ROLES)
    assert schedule.lr_at(10) == schedule.lr_at(9)  # nnU-Net steps once past the end


def test_head_first_trains_heads_alone_then_everything():
    schedule = build_finetune_schedule("head_first", 20, 1e-3, warmup_epochs=4, head_epochs=4, head_lr=5e-4)
    assert [(p.start, p.end, p.trains) for p in schedule.phases] == [
        (0, 4, (HEADS,)), (4, 8, ROLES), (8, 20, ROLES)]
    rates = schedule.learning_rates(1)
    assert rates[HEADS] == pytest.approx(5e-4) and rates[DECODER] == rates[ENCODER] == rates[NEW] == 0
    assert [schedule.lr_at(e) for e in range(4)] == pytest.approx([2.5e-4, 5e-4, 5e-4, 5e-4 * 0.5 ** 0.9])
    assert schedule.newly_trained(4) == (DECODER, NEW, ENCODER) and schedule.newly_trained(5) == ()
    assert "phase 1/3 'heads only'" in schedule.describe(0) and "frozen: decoder, new, encoder" in schedule.describe(0)


def test_frozen_encoder_defaults_are_nnssl_sawtooth():
    schedule = build_finetune_schedule("frozen_encoder", 150, 1e-3)
    assert [(p.start, p.end) for p in schedule.phases] == [(0, 15), (15, 30), (30, 150)]
    assert schedule.phases[0].trains == (HEADS, DECODER, NEW)
    assert schedule.learning_rates(3)[ENCODER] == 0 and schedule.learning_rates(15)[ENCODER] > 0
    assert schedule.newly_trained(15) == (ENCODER,)


def test_zero_warmup_and_phases_that_leave_no_poly_epoch():
    assert [p.name for p in build_finetune_schedule("finetune", 5, 1e-3, warmup_epochs=0).phases] == [
        "poly (all layers)"]
    with pytest.raises(ProgressiveConfigError, match="NNPROG_HEAD_EPOCHS=4 \\+ NNPROG_WARMUP_EPOCHS=2 leave no"):
        build_finetune_schedule("head_first", 6, 1e-3, warmup_epochs=2, head_epochs=4)
    with pytest.raises(ProgressiveConfigError, match="unknown fine-tuning recipe"):
        build_finetune_schedule("frozen", 6, 1e-3)
