"""torch.compile strategy: one graph per patch shape, no silent fallback to eager."""
import pytest
import torch
import torch._dynamo.config as dynamo_config

from nnunet_progressive.nnunet.hooks.compile import configure_dynamo_for_shapes

CONFIG_NAMES = ("recompile_limit", "cache_size_limit", "automatic_dynamic_shapes", "fail_on_recompile_limit_hit",
                "accumulated_recompile_limit", "accumulated_cache_size_limit")


@pytest.fixture
def fresh_dynamo():
    """Dynamo's settings restored after the test (set back, not monkeypatched: pytest's undo deletes the entries of
    torch's config module, after which later tests would see no limits at all)."""
    saved = {name: getattr(dynamo_config, name) for name in CONFIG_NAMES if hasattr(dynamo_config, name)}
    torch._dynamo.reset()
    yield
    for name, value in saved.items():
        setattr(dynamo_config, name, value)
    torch._dynamo.reset()
    assert all(hasattr(dynamo_config, name) for name in saved)


def _run_shapes(num_shapes: int) -> int:
    network = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1), torch.nn.InstanceNorm3d(2))
    compiled = torch.compile(network, backend="eager")
    frames_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for i in range(num_shapes):
        compiled(torch.randn(2, 1, 8, 8, 8 + 4 * i))
    return torch._dynamo.utils.counters["stats"]["unique_graphs"] - frames_before


LIMIT_NAMES = ("recompile_limit", "cache_size_limit")


def test_each_stage_shape_gets_its_own_graph(fresh_dynamo):
    applied = configure_dynamo_for_shapes(12)
    assert applied["automatic_dynamic_shapes"] is False
    assert any(applied.get(name) == 12 + 6 for name in LIMIT_NAMES), applied  # 12 stages + the extra shapes
    assert applied.get("fail_on_recompile_limit_hit", True) is True  # set wherever this torch has the switch
    assert _run_shapes(12) == 12, "one static graph per patch shape, none skipped"


def test_without_configuration_dynamo_would_not_compile_every_shape(fresh_dynamo):
    """What configure_dynamo_for_shapes prevents: past dynamo's default limit of 8 graphs, the next shapes are not
    compiled. Torches with `fail_on_recompile_limit_hit` can be told to raise; older ones fall back to eager
    silently (fewer graphs than shapes)."""
    dynamo_config.automatic_dynamic_shapes = False
    limit = next(name for name in LIMIT_NAMES if hasattr(dynamo_config, name))  # cache_size_limit: the old name
    setattr(dynamo_config, limit, 8)
    if hasattr(dynamo_config, "fail_on_recompile_limit_hit"):
        dynamo_config.fail_on_recompile_limit_hit = True
        with pytest.raises(Exception, match="(?i)recompile|cache_size|limit"):
            _run_shapes(12)
    else:
        assert _run_shapes(12) == 8, "past the limit dynamo compiles no further graph (silent eager fallback)"
