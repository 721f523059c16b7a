"Granularity tables against real layer weights: every type, every name, and the errors."
import pytest, torch, torch.nn as nn
from fasterai_lite.core.granularity import *

LAYERS = [nn.Linear(6, 4), nn.Conv1d(3, 4, 5), nn.Conv2d(3, 4, 3), nn.Conv3d(3, 4, 3),
          nn.ConvTranspose1d(3, 4, 5), nn.ConvTranspose2d(3, 4, 3), nn.ConvTranspose3d(3, 4, 3),
          nn.Conv2d(4, 8, 3, groups=2), nn.Conv2d(4, 4, 3, groups=4)]

def n_units(m, g):
    dims = get_dim(m, g)
    return m.weight.sum(dim=dims, keepdim=True).numel() if dims else m.weight.numel()

@pytest.mark.parametrize('m', LAYERS, ids=lambda m: repr(m))
def test_every_granularity_fits_the_weight(m):
    for g in allowed_granularities(m):
        dims = get_dim(m, g)
        assert all(0 <= d < m.weight.ndim for d in dims), (g, dims)
        assert len(set(dims)) == len(dims)
    assert get_dim(m, 'layer') == tuple(range(m.weight.ndim))
    assert n_units(m, 'layer') == 1 and n_units(m, 'weight') == m.weight.numel()

@pytest.mark.parametrize('m', LAYERS, ids=lambda m: repr(m))
def test_filter_is_one_unit_per_output_channel(m):
    g = 'row' if isinstance(m, nn.Linear) else 'filter'
    out_channels = m.out_features if isinstance(m, nn.Linear) else m.out_channels
    groups = getattr(m, 'groups', 1)
    # a transposed conv's weight holds out_channels/groups filters per group, shared across groups
    expected = out_channels // groups if isinstance(m, nn.modules.conv._ConvTransposeNd) else out_channels
    assert n_units(m, g) == expected

def test_conv1d_is_not_linear():
    "fasterai reuses Linear's table for Conv1d; its 3-D weight needs its own"
    c = nn.Conv1d(3, 4, 5)
    assert get_dim(c, 'filter') == (1, 2) and get_dim(c, 'kernel') == (2,)
    assert 'row' not in allowed_granularities(c) and 'column' not in allowed_granularities(c)

def test_transposed_conv_filters_are_dim_1():
    c = nn.ConvTranspose2d(3, 8, 3)
    assert c.weight.shape[1] == 8 and get_dim(c, 'filter') == (0, 2, 3) and n_units(c, 'filter') == 8

def test_unknown_granularity_names_type_and_choices():
    with pytest.raises(ValueError, match=r"Unknown granularity 'filters' for Conv2d: allowed are \['weight'"):
        get_dim(nn.Conv2d(1, 1, 1), 'filters')
    with pytest.raises(ValueError, match="for Linear"):
        get_dim(nn.Linear(1, 1), 'kernel')

def test_unsupported_layer_names_supported_types():
    with pytest.raises(ValueError, match=r"Unsupported layer type BatchNorm2d: granularities are defined for \['Linear', 'Conv1d', 'Conv2d'"):
        allowed_granularities(nn.BatchNorm2d(3))

def test_user_layer_and_subclass():
    class Scaled(nn.Module):
        def __init__(self): super().__init__(); self.weight = nn.Parameter(torch.randn(5, 7))
    add_granularity(Scaled, {'weight': (), 'unit': 1})
    assert get_dim(Scaled(), 'unit') == (1,) and Scaled in available_modules()
    add_granularity(Scaled, {'unit': (0, 5)})  # a table that does not fit the weight
    with pytest.raises(ValueError, match=r"weight has shape \(5, 7\)"):
        get_dim(Scaled(), 'unit')

    class Sub(nn.Linear): pass
    assert get_dim(Sub(2, 3), 'row') == (1,)

@pytest.mark.parametrize('bad', [{'g': 'x'}, {'g': 1.5}, {3: 0}])
def test_add_granularity_rejects_bad_tables(bad):
    with pytest.raises(ValueError, match="dims must be non-negative ints"):
        add_granularity(nn.Linear, bad)
    assert get_dim(nn.Linear(2, 2), 'row') == (1,)  # the registry was left as it was

def test_add_granularity_rejects_non_modules():
    with pytest.raises(TypeError, match="nn.Module subclass"): add_granularity('Conv2d', {'w': 0})
    with pytest.raises(TypeError, match="non-empty dict"): add_granularity(nn.Linear, {})
