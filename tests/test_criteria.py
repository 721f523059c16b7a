"Every criteria on every layer type and granularity, plus edge cases and bad input."
import pickle, pytest, torch, torch.nn as nn
from fasterai_lite.core.all import *
from fasterai_lite.core.criteria import criterias

LAYERS = [lambda: nn.Linear(6, 4), lambda: nn.Conv1d(3, 4, 5), lambda: nn.Conv2d(3, 4, 3), lambda: nn.Conv3d(2, 4, 3),
          lambda: nn.ConvTranspose2d(3, 4, 3)]

def trained(make):
    "A layer with reference weights and a gradient, its weights moved away from init"
    torch.manual_seed(0)
    m = make()
    for c in criterias.values(): c.prepare(m)
    with torch.no_grad(): m.weight.add_(torch.randn_like(m.weight) * .1)
    m.weight.grad = torch.randn_like(m.weight)
    return m

@pytest.mark.parametrize('make', LAYERS)
@pytest.mark.parametrize('name', available_criterias())
def test_every_criteria_every_granularity(make, name):
    m, crit = trained(make), as_criteria(name)
    w = m.weight.detach().clone()
    for g in allowed_granularities(m):
        s = crit(m, g)
        dims = get_dim(m, g)
        assert s.shape == tuple(1 if i in dims else n for i, n in enumerate(m.weight.shape))
        assert torch.isfinite(s).all() and (s > 0).all(), (name, g)
        assert s.dtype == torch.float32
    assert torch.equal(m.weight.detach(), w)  # scoring never touches the weights

def test_masked_units_score_zero_and_rank_last():
    m = trained(lambda: nn.Conv2d(3, 8, 3))
    mask = torch.ones(8, 1, 1, 1, dtype=torch.bool); mask[[1, 5]] = False
    m.register_buffer('_mask', mask)
    for name in available_criterias():
        s = as_criteria(name)(m, 'filter').flatten()
        assert (s[[1, 5]] == 0).all() and (s[mask.flatten()] > 0).all(), name
        # a finer granularity inside pruned filters also scores 0
        assert (as_criteria(name)(m, 'kernel')[[1, 5]] == 0).all()

def test_mean_and_sum_reducers_agree_on_order_for_equal_units():
    m = trained(lambda: nn.Conv2d(3, 8, 3))
    a = Criteria(torch.abs, reducer='mean')(m, 'filter').flatten()
    b = Criteria(torch.abs, reducer='sum')(m, 'filter').flatten()
    assert torch.equal(a.argsort(), b.argsort())
    torch.testing.assert_close(b, a * 27)

@pytest.mark.parametrize('norm', ['sum', 'standardization', 'mean', 'max', 'gaussian'])
def test_normalizers_keep_the_order_within_a_layer(norm):
    m = trained(lambda: nn.Conv2d(3, 16, 3))
    raw = large_final(m, 'filter').flatten()
    normed = Criteria(torch.abs, normalizer=norm)(m, 'filter').flatten()
    assert torch.equal(raw.argsort(), normed.argsort()) and torch.isfinite(normed).all()

def test_bfloat16_and_float64_weights():
    for dtype in (torch.bfloat16, torch.float64):
        m = trained(lambda: nn.Conv2d(3, 8, 3)).to(dtype)
        for name in ('large_final', 'movement', 'updating_movmag', 'grad_crit'):
            s = as_criteria(name)(m, 'filter')
            assert s.dtype == torch.float32 and torch.isfinite(s).all()

def test_floor_makes_negative_criteria_comparable():
    torch.manual_seed(0)
    a, b = nn.Linear(50, 50), nn.Linear(50, 50)
    with torch.no_grad(): b.weight.mul_(100)
    floor = min(small_final.transform(l).min() for l in (a, b))
    sa, sb = small_final(a, 'weight', floor=floor), small_final(b, 'weight', floor=floor)
    # with one floor, every score is 'floor - (-|w|)': the larger weights of b must score lower
    assert sb.median() < sa.median()
    torch.testing.assert_close(sa, a.weight.detach().abs().neg() - floor + EPS)

@pytest.mark.parametrize('name', [n for n in available_criterias() if as_criteria(n).ref_attr])
def test_missing_reference_says_how_to_provide_it(name):
    crit = as_criteria(name)
    with pytest.raises(RuntimeError, match=rf"Criteria '{name}' compares with .* kept in `m.{crit.ref_attr}`, but it has none. Call `criteria.prepare\(m\)`"):
        crit(nn.Linear(3, 3), 'row')

def test_update_weights_copies_in_place():
    m = nn.Linear(4, 4)
    updating_movement.update_weights(m)
    buf = m._old_weights
    with torch.no_grad(): m.weight.add_(1)
    updating_movement.update_weights(m)
    assert m._old_weights is buf and torch.equal(buf, m.weight.detach())
    torch.testing.assert_close(updating_movement(m, 'weight'), torch.full_like(buf, EPS))

def test_names_and_objects_are_interchangeable():
    assert len(available_criterias()) == 15 and 'grad_crit' in available_criterias()
    for name in available_criterias():
        assert as_criteria(name).name == name and as_criteria(as_criteria(name)) is as_criteria(name)

@pytest.mark.parametrize('bad, err, msg', [
    ('magnitude', ValueError, r"Unknown criteria 'magnitude': allowed are \['random', 'large_final'"),
    (None, TypeError, "criteria must be a Criteria or one of"),
    (torch.abs, TypeError, "got builtin_function_or_method"),
])
def test_bad_criteria(bad, err, msg):
    with pytest.raises(err, match=msg): as_criteria(bad)

def test_bad_granularity_through_criteria():
    with pytest.raises(ValueError, match="Unknown granularity 'filter' for Linear"):
        large_final(nn.Linear(2, 2), 'filter')

def test_criteria_pickle():
    "Criteria travel to DDP workers and into checkpoints"
    for name in available_criterias():
        c = pickle.loads(pickle.dumps(as_criteria(name)))
        m = trained(lambda: nn.Linear(5, 5))
        torch.manual_seed(1); a = c(m, 'row')
        torch.manual_seed(1); b = as_criteria(name)(m, 'row')
        torch.testing.assert_close(a, b)
