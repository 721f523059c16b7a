"Interop with torch.nn.utils.prune: exact round trips, training on from torch's masks, our criteria from torch, bad input."
import pytest, torch, torch.nn as nn
import torch.nn.utils.prune as prune
from fastai.learner import Learner
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
from fasterai_lite.all import *
from fasterai_lite.data import digits_dls, digits_cnn
from helpers import snapshot, unchanged

def lenet():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

LAYERS = (nn.Conv2d, nn.Linear)
X = torch.randn(4, 1, 28, 28)

def test_export_import_round_trip_is_exact():
    model = lenet().eval()
    sp = Sparsifier(model, 'weight', 'global', 'large_final', layer_type=LAYERS)
    sp.sparsify_model(70)
    masks = {f'{n}.weight': sp.masks.mask(n).clone() for n in sp.layers}
    y = model(X)
    to_torch_prune(sp)
    # the state_dict of a model torch pruned itself with the same masks
    twin = lenet()
    for n, m in twin.named_modules():
        if f'{n}.weight' in masks: prune.custom_from_mask(m, 'weight', masks[f'{n}.weight'])
    assert list(model.state_dict()) == list(twin.state_dict())
    assert not any(k.endswith('.weight') for k in model.state_dict() if k.rsplit('.', 1)[0] in ('0', '3', '7', '9', '11'))
    # the state_dict loads into a fresh torch-pruned model and computes the same outputs
    fresh = lenet().eval()
    for n, m in fresh.named_modules():
        if isinstance(m, LAYERS): prune.identity(m, 'weight')
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(X), y, rtol=0, atol=0)
    back = from_torch_prune(fresh)
    assert sorted(back) == sorted(masks) and all(torch.equal(back[k], masks[k]) for k in masks)
    assert not prune.is_pruned(fresh) and all(not m._forward_pre_hooks for m in fresh.modules())
    torch.testing.assert_close(fresh(X), y, rtol=0, atol=0)

def test_callback_trains_on_from_torch_masks():
    set_seed(0)
    learn = Learner(digits_dls(), digits_cnn(), loss_func=nn.CrossEntropyLoss(), metrics=accuracy)
    params = [(m, 'weight') for m in learn.model.modules() if isinstance(m, LAYERS)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.5)
    masks = from_torch_prune(learn.model)
    cb = SparsifyCallback(80, 'weight', 'global', 'large_final', 'agp', layer_type=LAYERS, start_masks=masks)
    learn.fit_one_cycle(2, 1e-2, cbs=cb)
    sparsity = learn.recorder.values[0][learn.recorder.metric_names.index('sparsity') - 1]
    assert sparsity >= 50 - 0.01  # held from the first batch, while the schedule was still below it
    assert abs(cb.report.zeros.sum() / cb.report.params.sum() * 100 - 80) < 0.01
    mods = dict(learn.model.named_modules())
    for k, keep in masks.items():  # what torch pruned stayed pruned all along
        assert float(mods[k[:-len('.weight')]].weight.detach()[~keep].abs().sum()) == 0, k

def test_criteria_method_equals_sparsifier_with_gradients():
    a, b = lenet(), lenet()
    for m in (a, b): nn.CrossEntropyLoss()(m(X), torch.arange(4)).backward()
    sp = Sparsifier(a, 'kernel', 'local', 'grad_crit', layer_type=nn.Conv2d)
    sp.sparsify_model(40)
    for n in ('0', '3'): criteria_prune(b.get_submodule(n), 'weight', 0.4, 'grad_crit', 'kernel')
    for n in ('0', '3'): assert torch.equal(b.get_submodule(n).weight_mask != 0, sp.masks.mask(n).expand_as(sp.layers[n].weight))

def test_global_method_matches_torch_count_and_sparsifier():
    a, b = lenet(), lenet()
    Sparsifier(a, 'weight', 'global', 'large_final', layer_type=LAYERS).sparsify_model(80)
    params = [(m, 'weight') for m in b.modules() if isinstance(m, LAYERS)]
    prune.global_unstructured(params, pruning_method=CriteriaPruning, amount=0.8)
    for (m, _), ma in zip(params, [m for m in a.modules() if isinstance(m, LAYERS)]):
        assert torch.equal(m.weight_mask != 0, ma.weight != 0)

def test_bad_input_changes_nothing():
    model = lenet()
    with pytest.raises(ValueError, match='have no zero weights: there is no mask to export'): to_torch_prune(model)
    with pytest.raises(ValueError, match='has no torch.nn.utils.prune masks to import'): from_torch_prune(model)
    prune.l1_unstructured(model[0], 'weight', amount=0.5)
    model[0].weight_mask = torch.ones(3)  # a mask that does not fit its tensor
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"The mask of 0.weight has shape \(3,\), but the tensor has \(6, 1, 3, 3\)"): from_torch_prune(model)
    assert prune.is_pruned(model) and unchanged(model, before)
    lin = nn.Linear(8, 4)
    before = snapshot(lin)
    for kw, msg in [(dict(amount=-0.1), 'got -0.1'), (dict(amount=33), 'asks for 33 units'), (dict(amount=0.5, criteria='best'), "Unknown criteria 'best'"),
                    (dict(amount=0.5, granularity='slab'), "Unknown granularity 'slab'")]:
        with pytest.raises(ValueError, match=msg): criteria_prune(lin, 'weight', **kw)
        assert not prune.is_pruned(lin) and unchanged(lin, before)
    criteria_prune(lin, 'weight', 0.5)
    with pytest.raises(ValueError, match='reads the gradient'): criteria_prune(lin, 'weight', 0.5, 'grad_crit')  # torch's second pass: a copy, no gradient
    assert type(next(iter(lin._forward_pre_hooks.values()))).__name__ == 'CriteriaPruning'  # still the first method, not a broken container
    with pytest.raises(ValueError, match='start_masks must be a non-empty dict'): SparsifyCallback(50, 'weight', 'local', 'large_final', 'agp', start_masks={})
