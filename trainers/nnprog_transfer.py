"""Fine-tuning trainers: `nnUNetv2_train D C F -tr nnUNetTrainer_Finetune -pretrained_weights FILE`.

FILE: a checkpoint of the same network (nnU-Net's pretraining workflow, `nnprog transfer prepare`) or the output of
`nnprog transfer adapt` (other input channels, classes, depth). Knobs: NNPROG_FINETUNE_LR, NNPROG_WARMUP_EPOCHS,
NNPROG_HEAD_EPOCHS, NNPROG_HEAD_LR, NNPROG_FROZEN_EPOCHS and the run-length knobs (NNPROG_EPOCHS, ...).
The fine-tuning trainers of UNETR, SwinUNETR and Primus are in nnprog_architectures.
Generated from the trainer catalogue (nnunet_progressive/nnunet/catalogue.py; `nnprog trainers --method transfer`).
"""
from nnunet_progressive.nnunet.variants import build_trainers

globals().update(build_trainers("transfer"))
