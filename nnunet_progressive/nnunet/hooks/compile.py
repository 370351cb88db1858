"""torch.compile with a patch size that changes during training.

Strategy: one static graph per distinct input shape. Dynamo's recompile limit (8 by default) is raised
to cover every shape the curriculum will use plus the validation shapes, automatic dynamic shapes are
turned off (conv nets with dynamic shapes specialise anyway and run slower kernels), and hitting the
limit raises instead of silently falling back to eager. Each stage thus compiles once, when it starts.
"""
from __future__ import annotations

# shapes besides the training stages: validation steps (eval mode, deep supervision on), final
# sliding-window validation (eval mode, deep supervision off, batch 1), and a margin.
EXTRA_SHAPES = 6


def configure_dynamo_for_shapes(num_training_shapes: int) -> dict[str, object]:
    """Set torch._dynamo's limits for ``num_training_shapes`` distinct training input shapes.

    Returns the settings applied (for the training log). Limits are only ever raised.
    """
    import torch._dynamo.config as dynamo_config

    needed = num_training_shapes + EXTRA_SHAPES
    applied: dict[str, object] = {}
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, name) and getattr(dynamo_config, name) < needed:
            setattr(dynamo_config, name, needed)
            applied[name] = needed
    for name in ("accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(dynamo_config, name) and getattr(dynamo_config, name) < 4 * needed:
            setattr(dynamo_config, name, 4 * needed)
            applied[name] = 4 * needed
    if hasattr(dynamo_config, "automatic_dynamic_shapes"):
        dynamo_config.automatic_dynamic_shapes = False
        applied["automatic_dynamic_shapes"] = False
    if hasattr(dynamo_config, "fail_on_recompile_limit_hit"):
        dynamo_config.fail_on_recompile_limit_hit = True
        applied["fail_on_recompile_limit_hit"] = True
    return applied
