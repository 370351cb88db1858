"""torch.compile strategy: one graph per patch shape, no silent fallback to eager."""
import pytest
import torch
import torch._dynamo.config as dynamo_config

from nnunet_progressive.nnunet.compile import configure_dynamo_for_shapes


@pytest.fixture
def fresh_dynamo():
    # saved and restored by hand: pytest's monkeypatch deletes torch's config entries on undo (they are not module
    # attributes), which broke torch.compile for every later test of the session
    names = ("recompile_limit", "cache_size_limit", "automatic_dynamic_shapes", "fail_on_recompile_limit_hit",
             "accumulated_recompile_limit", "accumulated_cache_size_limit")
    saved = {name: getattr(dynamo_config, name) for name in names if hasattr(dynamo_config, name)}
    torch._dynamo.reset()
    yield
    for name, value in saved.items():
        setattr(dynamo_config, name, value)
    torch._dynamo.reset()


def _run_shapes(num_shapes: int) -> int:
    network = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1), torch.nn.InstanceNorm3d(2))
    compiled = torch.compile(network, backend="eager")
    frames_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for i in range(num_shapes):
        compiled(torch.randn(2, 1, 8, 8, 8 + 4 * i))
    return torch._dynamo.utils.counters["stats"]["unique_graphs"] - frames_before


def test_each_stage_shape_gets_its_own_graph(fresh_dynamo):
    applied = configure_dynamo_for_shapes(12)
    assert applied["automatic_dynamic_shapes"] is False
    assert _run_shapes(12) == 12, "one static graph per patch shape, none skipped"


def test_without_configuration_dynamo_would_not_compile_every_shape(fresh_dynamo):
    dynamo_config.automatic_dynamic_shapes = False
    if hasattr(dynamo_config, "fail_on_recompile_limit_hit"):
        dynamo_config.fail_on_recompile_limit_hit = True
        with pytest.raises(Exception, match="(?i)recompile|cache_size|limit"):
            _run_shapes(12)
