"""Transfer learning, pure: source scores, weight-mapping plans, channel and kernel rules, fine-tuning phases.

No torch and no nnU-Net here (layer 1, docs/architecture.md); ``nnunet/transfer*.py`` gathers the inputs
(fingerprints, plans, state dicts) and acts on the results.
"""
