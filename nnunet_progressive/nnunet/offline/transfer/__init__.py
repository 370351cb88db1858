"""``nnprog transfer``'s nnU-Net side: source candidates (:mod:`.sources`), nnU-Net's pretraining workflow
(:mod:`.workflow`) and checkpoints adapted to a target network (:mod:`.weights`). The pure rules are in
:mod:`nnunet_progressive.transfer`."""
