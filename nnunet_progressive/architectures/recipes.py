"""Training recipes per architecture as published, each value with its source.

nnU-Net's loss, data pipeline, epochs and iterations stay as they are; a recipe sets only what the published
training of that architecture sets differently: optimiser, learning rate and its schedule, weight decay,
gradient clipping, mixed precision and deep supervision. Epoch counts of the published code (e.g. 50 warmup
epochs of 5000 in the MONAI reference scripts) are mapped onto nnU-Net's run as a share of its length
(nnU-Net's own warmup trainers use 50 of 1000 epochs, 5%).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

LR_SCHEDULES = ("poly", "warmup_cosine", "warmup_poly")


@dataclass(frozen=True)
class Recipe:
    """How an architecture is trained (the rest is nnU-Net's).

    Attributes:
        architecture: name in tables.
        optimizer: "sgd" (nnU-Net: Nesterov, momentum 0.99) or "adamw".
        learning_rate: initial (peak) learning rate.
        weight_decay: decoupled for AdamW, L2 for SGD.
        betas: AdamW betas.
        eps: AdamW epsilon.
        grad_clip: maximum gradient norm; None: no clipping.
        mixed_precision: fp16 autocast with a gradient scaler on CUDA (nnU-Net's default); fp32 otherwise.
        deep_supervision: losses on the decoder's lower resolutions (nnU-Net's U-Nets only).
        lr_schedule: "poly" (nnU-Net: (1 - e/E)^0.9), "warmup_cosine" (linear warmup, then cosine to 0) or
            "warmup_poly" (linear warmup, then poly; nnU-Net's Primus).
        warmup_share: share of the epochs spent warming up (warmup schedules).
        applied_by: "nnunet-progressive" (our trainers set it) or "nnU-Net" (nnU-Net's own trainer does).
        sources: field name -> where its value comes from.
    """

    architecture: str
    optimizer: str
    learning_rate: float
    weight_decay: float
    grad_clip: float | None
    mixed_precision: bool
    deep_supervision: bool
    lr_schedule: str
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_share: float = 0.0
    applied_by: str = "nnunet-progressive"
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")

    def warmup_epochs(self, num_epochs: int) -> int:
        """Warmup epochs of a run of ``num_epochs`` (at least one, fewer than the run) for warmup schedules."""
        if not self.lr_schedule.startswith("warmup"):
            return 0
        return min(max(1, round(self.warmup_share * num_epochs)), max(num_epochs - 1, 0))

    def learning_rate_at(self, epoch: int, num_epochs: int) -> float:
        """The learning rate of ``epoch`` (0-based) in a run of ``num_epochs``: a pure function, so `--c` is exact."""
        if num_epochs < 1 or epoch < 0:
            raise ValueError(f"need epoch >= 0 and num_epochs >= 1, got {epoch}, {num_epochs}")
        epoch = min(epoch, num_epochs - 1)
        warmup = self.warmup_epochs(num_epochs)
        if epoch < warmup:
            return self.learning_rate * (epoch + 1) / warmup
        progress = (epoch - warmup) / max(num_epochs - warmup, 1)
        if self.lr_schedule == "warmup_cosine":
            return self.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.learning_rate * (1.0 - progress) ** 0.9


MONAI_REFERENCE = ("the authors' reference training (Project-MONAI/research-contributions, UNETR/BTCV and "
                   "SwinUNETR/BTCV|BRATS21 main.py defaults)")

UNETR_RECIPE = Recipe(
    architecture="UNETR",
    optimizer="adamw", learning_rate=1e-4, weight_decay=1e-5, grad_clip=None, mixed_precision=True,
    deep_supervision=False, lr_schedule="warmup_cosine", warmup_share=0.05,
    sources={
        "optimizer": "UNETR paper (Hatamizadeh et al., WACV 2022): AdamW; " + MONAI_REFERENCE,
        "learning_rate": "UNETR paper: initial learning rate 1e-4; " + MONAI_REFERENCE,
        "weight_decay": MONAI_REFERENCE + ": --reg_weight 1e-5",
        "grad_clip": MONAI_REFERENCE + ": no gradient clipping",
        "mixed_precision": MONAI_REFERENCE + ": AMP on unless --noamp",
        "deep_supervision": "UNETR has a single output",
        "lr_schedule": MONAI_REFERENCE + ": warmup_cosine, 50 warmup epochs (5% here, as nnU-Net's 50 of 1000)",
    },
)

SWIN_UNETR_RECIPE = Recipe(
    architecture="SwinUNETR",
    optimizer="adamw", learning_rate=1e-4, weight_decay=1e-5, grad_clip=None, mixed_precision=True,
    deep_supervision=False, lr_schedule="warmup_cosine", warmup_share=0.05,
    sources={
        "optimizer": "Swin UNETR (Hatamizadeh et al., BrainLes 2021; Tang et al., CVPR 2022): AdamW; "
                     + MONAI_REFERENCE,
        "learning_rate": MONAI_REFERENCE + ": --optim_lr 1e-4 (published ports inside nnU-Net use 1e-4 to 8e-4)",
        "weight_decay": MONAI_REFERENCE + ": --reg_weight 1e-5",
        "grad_clip": MONAI_REFERENCE + ": no gradient clipping",
        "mixed_precision": MONAI_REFERENCE + ": AMP on unless --noamp",
        "deep_supervision": "SwinUNETR has a single output",
        "lr_schedule": MONAI_REFERENCE + ": warmup_cosine, 50 warmup epochs (5% here, as nnU-Net's 50 of 1000)",
    },
)

PRIMUS_RECIPE = Recipe(
    architecture="Primus",
    optimizer="adamw", learning_rate=3e-4, weight_decay=5e-2, grad_clip=1.0, mixed_precision=True,
    deep_supervision=False, lr_schedule="warmup_poly", betas=(0.9, 0.98), warmup_share=0.05,
    applied_by="nnU-Net (warmup length: nnunet-progressive)",
    sources={**{field_name: "nnU-Net 2.8.1 training/nnUNetTrainer/primus/primus_trainers.py (AbstractPrimus); "
                            "Wald, Roy, Isensee et al., Primus, arXiv 2503.01835"
                for field_name in ("optimizer", "learning_rate", "weight_decay", "grad_clip", "mixed_precision",
                                   "deep_supervision")},
             "lr_schedule": "nnU-Net 2.8.1 nnUNetTrainer_warmup: linear warmup for 50 of 1000 epochs, then poly; "
                            "kept at 5% for shorter runs here"},
)

NNUNET_RECIPE = Recipe(
    architecture="U-Net / ResEnc U-Net (nnU-Net)",
    optimizer="sgd", learning_rate=1e-2, weight_decay=3e-5, grad_clip=12.0, mixed_precision=True,
    deep_supervision=True, lr_schedule="poly", applied_by="nnU-Net",
    sources={field_name: "nnU-Net 2.8.1 nnUNetTrainer (SGD Nesterov momentum 0.99, PolyLR exponent 0.9)"
             for field_name in ("optimizer", "learning_rate", "weight_decay", "grad_clip", "mixed_precision",
                                "deep_supervision", "lr_schedule")},
)

RECIPES = {recipe.architecture: recipe for recipe in (NNUNET_RECIPE, UNETR_RECIPE, SWIN_UNETR_RECIPE, PRIMUS_RECIPE)}


def recipe_table() -> str:
    """The recipes as a markdown table (docs/architectures.md carries a copy, checked by a test)."""
    lines = ["| architecture | optimiser | lr | weight decay | schedule | grad clip | precision | deep supervision "
             "| set by |", "|---|---|---|---|---|---|---|---|---|"]
    for r in RECIPES.values():
        optimizer = "SGD (Nesterov, 0.99)" if r.optimizer == "sgd" else f"AdamW (betas {r.betas[0]}, {r.betas[1]})"
        schedule = r.lr_schedule
        if r.warmup_share:
            schedule += f" ({r.warmup_share:.0%} warmup)"
        lines.append(
            f"| {r.architecture} | {optimizer} | {r.learning_rate:g} | {r.weight_decay:g} | {schedule} | "
            f"{'none' if r.grad_clip is None else f'{r.grad_clip:g}'} | "
            f"{'fp16 autocast (CUDA)' if r.mixed_precision else 'fp32'} | "
            f"{'yes' if r.deep_supervision else 'no'} | {r.applied_by} |")
    return "\n".join(lines)
