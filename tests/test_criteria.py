"Every criteria on every layer type and granularity, plus edge cases and bad input."
import pickle, pytest, torch, torch.nn as nn
from fasterai_lite.core.all import *
from helpers import snapshot, unchanged

LAYERS = [lambda: nn.Linear(6, 4), lambda: nn.Conv1d(3, 4, 5), lambda: nn.Conv2d(3, 4, 3), lambda: nn.Conv3d(2, 4, 3),
          lambda: nn.ConvTranspose2d(3, 4, 3)]

def trained(make):
    "A layer with a gradient, its weights moved away from its reference weights `m.ref` (a plain attribute, for the tests)"
    torch.manual_seed(0)
    m = make()
    ref = m.weight.detach().clone()
    with torch.no_grad(): m.weight.add_(torch.randn_like(m.weight) * .1)
    m.weight.grad = torch.randn_like(m.weight)
    m.ref = ref
    return m

def score(crit, m, g, **kw):
    "`crit`'s scores of layer `m`, handing it the reference weights it compares with"
    return crit(m, g, ref=m.ref if crit.reference_kind else None, **kw)

@pytest.mark.parametrize('make', LAYERS)
@pytest.mark.parametrize('name', available_criterias())
def test_every_criteria_every_granularity(make, name):
    m, crit = trained(make), as_criteria(name)
    w = m.weight.detach().clone()
    for g in allowed_granularities(m):
        s = score(crit, m, g)
        dims = get_dim(m, g)
        assert s.shape == tuple(1 if i in dims else n for i, n in enumerate(m.weight.shape))
        assert torch.isfinite(s).all() and (s > 0).all(), (name, g)
        assert s.dtype == torch.float32
    assert torch.equal(m.weight.detach(), w)  # scoring never touches the weights

def test_masked_units_score_zero_and_rank_last():
    m = trained(lambda: nn.Conv2d(3, 8, 3))
    mask = torch.ones(8, 1, 1, 1, dtype=torch.bool); mask[[1, 5]] = False
    for name in available_criterias():
        s = score(as_criteria(name), m, 'filter', mask=mask).flatten()
        assert (s[[1, 5]] == 0).all() and (s[mask.flatten()] > 0).all(), name
        # a finer granularity inside pruned filters also scores 0
        assert (score(as_criteria(name), m, 'kernel', mask=mask)[[1, 5]] == 0).all()

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
            m.ref = m.ref.to(dtype)
            s = score(as_criteria(name), m, 'filter')
            assert s.dtype == torch.float32 and torch.isfinite(s).all()

def test_floor_makes_negative_criteria_comparable():
    torch.manual_seed(0)
    a, b = nn.Linear(50, 50), nn.Linear(50, 50)
    with torch.no_grad(): b.weight.mul_(100)
    floor = min(small_final.transform(l.weight).min() for l in (a, b))
    sa, sb = small_final(a, 'weight', floor=floor), small_final(b, 'weight', floor=floor)
    # with one floor, every score is 'floor - (-|w|)': the larger weights of b must score lower
    assert sb.median() < sa.median()
    torch.testing.assert_close(sa, a.weight.detach().abs().neg() - floor + EPS)

@pytest.mark.parametrize('name', [n for n in available_criterias() if as_criteria(n).reference_kind])
def test_missing_reference_says_how_to_provide_it(name):
    with pytest.raises(ValueError, match=rf"Criteria '{name}' compares with the .*, but no `ref` was given: pass them as `ref`"):
        as_criteria(name)(nn.Linear(3, 3), 'row')

@pytest.mark.parametrize('name', available_criterias())
def test_scoring_writes_nothing_on_the_layer(name):
    m = trained(lambda: nn.Conv2d(3, 8, 3))
    before = snapshot(m)
    score(as_criteria(name), m, 'filter', generator=torch.Generator().manual_seed(0))
    assert dict(m.named_buffers()) == {} and unchanged(m, before)

def test_random_draws_from_the_generator_it_is_given():
    m = nn.Linear(8, 8)
    a, b = (random_scores(m, 'weight', generator=torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(a, b) and not torch.equal(a, random_scores(m, 'weight', generator=torch.Generator().manual_seed(4)))

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
        torch.manual_seed(1); a = score(c, m, 'row')
        torch.manual_seed(1); b = score(as_criteria(name), m, 'row')
        torch.testing.assert_close(a, b)
