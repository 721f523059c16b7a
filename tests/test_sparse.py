"SparsifyCallback in fastai's loop: fit variants, other callbacks, optimizers, lottery tickets, and bad input."
import warnings, pytest, torch, torch.nn as nn
from functools import partial
from fastai.learner import Learner
from fastai.callback.core import Callback
from fastai.callback.training import GradientAccumulation
from fastai.callback.tracker import SaveModelCallback, EarlyStoppingCallback
from fastai.optimizer import SGD, Adam
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
from fastcore.imports import noop
from fastcore.basics import ifnone
from fasterai_lite.core.all import *
from fasterai_lite.all import *
from fasterai_lite.data import digits_dls, digits_cnn as cnn
from helpers import snapshot, unchanged

def learner(model=None, flat=False, path=None, **kw):
    set_seed(0)
    kw.setdefault('metrics', accuracy)
    return Learner(digits_dls(flat=flat), model or cnn(), loss_func=nn.CrossEntropyLoss(), path=path or '.', **kw)

def conv_filters_zero(model):
    return [int((m.weight.flatten(1).abs().sum(1) == 0).sum()) for m in model.modules() if isinstance(m, nn.Conv2d)]

def no_buffers(model):
    "Nothing of ours (the masks and references of `Masks`) is left on the model"
    return not [n for n, _ in model.named_buffers() if n.rsplit('.', 1)[-1] in ('_mask', '_init_weights', '_old_weights')]

class Check(Callback):
    "Runs after SparsifyCallback's after_step and checks that masked weights are exactly 0"
    order = 90
    def before_fit(self): self.sp, self.checked = next(c for c in self.learn.cbs if isinstance(c, SparsifyCallback)).sparsifier, 0
    def after_step(self):
        for n, m in self.sp.layers.items():
            mask = self.sp.masks.mask(n)
            if mask is not None:
                assert (m.weight[~mask.expand_as(m.weight)] == 0).all(); self.checked += 1

@pytest.mark.parametrize('fit', ['fit', 'fit_one_cycle'])
@pytest.mark.parametrize('context', ['local', 'global'])
def test_filter_sparsity_is_exact(fit, context):
    learn = learner()
    cb = SparsifyCallback(50, 'filter', context, 'large_final', 'agp')
    getattr(learn, fit)(3, 1e-2, cbs=cb)
    zeros = conv_filters_zero(learn.model)
    if context == 'local': assert zeros == [8, 16, 16]
    else: assert sum(zeros) == 40
    assert no_buffers(learn.model) and cb.report is not None
    assert 'sparsity' in learn.recorder.metric_names and [m.name for m in learn.metrics] == ['accuracy']

@pytest.mark.parametrize('opt_func', [partial(SGD, mom=0.9, wd=1e-2), partial(Adam, wd=1e-2)], ids=['sgd_mom_wd', 'adam_wd'])
def test_masked_weights_stay_zero_every_step(opt_func):
    learn = learner(opt_func=opt_func)
    chk = Check()
    learn.fit(2, 1e-2, cbs=[SparsifyCallback(70, 'weight', 'global', 'large_final', 'lin', update_every=1), chk])
    assert chk.checked > 0

def test_state_dict_loads_into_a_fresh_model():
    learn = learner()
    learn.fit(1, cbs=SparsifyCallback(50, 'filter', 'local', 'movement', 'one_shot'))
    fresh = cnn(); fresh.load_state_dict(learn.model.state_dict())  # strict: no extra buffers
    assert conv_filters_zero(fresh) == [8, 16, 16]

@pytest.mark.parametrize('sched,update_every', [('agp', None), ('agp', 1), ('iterative', None), ('one_cycle', 3)])
def test_old_weights_are_one_step_back_at_every_event(sched, update_every):
    "At each pruning event an updating criteria compares with the weights one optimizer step back, as if copied every step"
    seen = []  # (batches done, reference) at each scoring
    def moved(x, ref): seen.append((spy.n, ref.clone())); return (x - ref).abs()
    crit = Criteria(noop, needs_update=True, output_fn=moved, name='recorded_movement')
    class Spy(Callback):
        order = 41  # just after SparsifyCallback's before_batch: the weights the next batch's reference must equal
        def before_fit(self):
            self.n, self.w, self.copies = 0, [self.learn.model[0].weight.detach().clone()], 0
            masks = cb.sparsifier.masks; keep = masks.keep_reference
            def counted(kind, names=None): self.copies += kind == 'old'; return keep(kind, names)
            masks.keep_reference = counted
        def before_batch(self):
            if self.training: self.n += 1; self.w.append(self.learn.model[0].weight.detach().clone())
    learn, spy = learner(), Spy()
    cb = SparsifyCallback(50, 'filter', 'local', crit, sched, update_every=update_every)
    learn.fit(2, 1e-2, cbs=[cb, spy])
    refs = seen[::3]  # three layers are scored at each event; the first is model[0]
    assert len(refs) >= 2 and len(seen) == 3 * len(refs)
    for n, ref in refs: assert torch.equal(ref, spy.w[n])  # w[n]: the weights as batch n-1 began training (w[0]: before fit)
    assert spy.copies == len(refs) < spy.n  # one copy (of every layer) before each event, not one per batch
    assert no_buffers(learn.model)

def test_validation_never_changes_masks():
    class Snap(Callback):
        order = 45
        def before_validate(self):
            sp = self.learn.sparsify.sparsifier
            self.before = {n: ifnone(sp.masks.mask(n), torch.ones(1)).clone() for n in sp.layers}
        def after_validate(self):
            sp = self.learn.sparsify.sparsifier
            for n in sp.layers: assert torch.equal(ifnone(sp.masks.mask(n), torch.ones(1)), self.before[n])
    learner().fit(2, cbs=[SparsifyCallback(50, 'filter', 'local', 'large_final', 'cos'), Snap()])

def test_plain_mlp_rows_and_weights():
    mlp = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.BatchNorm1d(64), nn.Linear(64, 10))
    learn = learner(mlp, flat=True)
    cb = SparsifyCallback(80, 'weight', 'global', 'large_final', 'agp', layer_type=nn.Linear)
    learn.fit_one_cycle(2, 1e-2, cbs=cb)
    w = torch.cat([m.weight.flatten() for m in mlp if isinstance(m, nn.Linear)])
    assert int((w == 0).sum()) == round(w.numel() * .8)
    mlp = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))
    learner(mlp, flat=True).fit(1, cbs=SparsifyCallback({'0': 50}, 'row', 'local', 'large_final', 'one_shot', layer_type=nn.Linear))
    dead = mlp[0].weight.abs().sum(1) == 0
    assert int(dead.sum()) == 32 and (mlp[0].bias[dead] == 0).all() and (mlp[1].weight[dead] == 0).all() and (mlp[1].bias[dead] == 0).all()

def test_fine_tune():
    learn = learner()
    learn.fine_tune(1, cbs=SparsifyCallback(50, 'filter', 'local', 'large_final', 'one_cycle'))
    assert conv_filters_zero(learn.model) == [8, 16, 16] and no_buffers(learn.model)

def test_gradient_accumulation():
    "Steps happen every 4 batches; masks are re-applied after each and the target is reached"
    learn, chk = learner(), Check()
    learn.fit(2, 1e-2, cbs=[GradientAccumulation(n_acc=256), SparsifyCallback(50, 'filter', 'local', 'large_final', 'agp'), chk])
    assert conv_filters_zero(learn.model) == [8, 16, 16] and no_buffers(learn.model)
    assert 0 < chk.checked < 3 * 2 * len(learn.dls.train)  # fewer optimizer steps than batches

def test_save_model_callback_reloads_then_sparsify_finishes(tmp_path):
    "SaveModelCallback reloads the best (maybe less sparse) epoch in its after_fit; the final target still holds"
    learn = learner(path=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit(4, 1e-2, cbs=[SaveModelCallback(monitor='valid_loss', fname='best'), SparsifyCallback(50, 'filter', 'local', 'large_final', 'agp')])
    assert (tmp_path/'models'/'best.pth').exists()
    assert conv_filters_zero(learn.model) == [8, 16, 16] and no_buffers(learn.model)
    learn.load('best')  # the checkpoint holds the masks as buffers: loading into the clean model must not fail
    assert no_buffers(learn.model)

def test_early_stopping_callback():
    learn = learner()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit(6, 1e-1, cbs=[EarlyStoppingCallback(monitor='valid_loss', patience=0), SparsifyCallback(50, 'filter', 'local', 'large_final', 'lin')])
    assert conv_filters_zero(learn.model) == [8, 16, 16] and no_buffers(learn.model)

def test_torchvision_resnet():
    "A residual net from torchvision (random init): BatchNorms found by fx, channels zeroed exactly"
    from torchvision.models import resnet18
    model = resnet18(weights=None, num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, 3, padding=1, bias=False)
    learn = learner(model)
    learn.fit(1, 1e-3, cbs=SparsifyCallback(30, 'filter', 'local', 'large_final', 'one_shot'))
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d): assert int((m.weight.flatten(1).abs().sum(1) == 0).sum()) == round(m.out_channels * .3), name
    dead = model.layer1[0].conv1.weight.flatten(1).abs().sum(1) == 0
    assert (model.layer1[0].bn1.weight[dead] == 0).all() and (model.layer1[0].bn1.bias[dead] == 0).all()

def test_fastai_tabular_model():
    import numpy as np, pandas as pd
    from fastai.tabular.all import TabularDataLoaders, tabular_learner, Categorify, Normalize, CategoryBlock
    rng = np.random.default_rng(0)
    df = pd.DataFrame({'a': rng.choice(['x', 'y', 'z'], 400), 'b': rng.normal(size=400), 'c': rng.normal(size=400)})
    df['y'] = ((df.b + df.c) > 0).astype(int)
    dls = TabularDataLoaders.from_df(df, cat_names=['a'], cont_names=['b', 'c'], y_names='y', procs=[Categorify, Normalize],
                                     y_block=CategoryBlock(), bs=64, valid_idx=list(range(320, 400)))
    learn = tabular_learner(dls, layers=[32, 16])
    learn.fit(2, cbs=SparsifyCallback(50, 'row', 'local', 'large_final', 'agp', layer_type=nn.Linear))
    lins = [m for m in learn.model.modules() if isinstance(m, nn.Linear)]
    assert [int((m.weight.abs().sum(1) == 0).sum()) for m in lins] == [16, 8, 1]
    assert no_buffers(learn.model)

def test_early_stop_applies_the_final_target_with_a_warning():
    class StopAfterOne(Callback):
        def after_epoch(self):
            from fastai.callback.core import CancelFitException
            raise CancelFitException()
    learn = learner()
    with pytest.warns(UserWarning, match="final target was applied without further training"):
        learn.fit(4, cbs=[SparsifyCallback(50, 'filter', 'local', 'large_final', 'lin'), StopAfterOne()])
    assert conv_filters_zero(learn.model) == [8, 16, 16]

def test_grad_crit_scores_with_gradients():
    learn = learner()
    learn.fit(1, cbs=SparsifyCallback(50, 'filter', 'local', 'grad_crit', 'agp'))
    assert conv_filters_zero(learn.model) == [8, 16, 16]

def test_lottery_ticket_rewinds_and_saves_tickets(tmp_path):
    learn = learner(path=tmp_path)
    init = [m.weight.detach().clone() for m in learn.model if isinstance(m, nn.Conv2d)]
    cb = SparsifyCallback(50, 'filter', 'local', 'large_final', 'iterative', lth=True, save_tickets=True, reset_end=True)
    learn.fit(2, 1e-2, cbs=cb)
    convs = [m for m in learn.model if isinstance(m, nn.Conv2d)]
    for m, w0 in zip(convs, init):  # reset_end: the surviving weights are the initial ones
        kept = m.weight.flatten(1).abs().sum(1) != 0
        assert torch.equal(m.weight[kept], w0[kept])
    assert len(list((tmp_path/'models').glob('ticket_*.pth'))) == 3  # iterative: 3 pruning events
    assert no_buffers(learn.model)

def test_rewind_epoch_captures_later_weights():
    learn = learner()
    cb = SparsifyCallback(50, 'filter', 'local', 'large_final', Schedule(sched_oneshot, start_pct=.5), lth=True, rewind_epoch=1, reset_end=True)
    learn.fit(2, 1e-2, cbs=cb)
    assert conv_filters_zero(learn.model) == [8, 16, 16]

def test_memory_only_what_the_criteria_needs():
    class Peek(Callback):
        order = 45
        def after_epoch(self):
            sp = self.learn.sparsify.sparsifier
            def size(t): return 0 if t is None else t.numel() * t.element_size()
            self.bufs = {'mask': sum(size(sp.masks.mask(n)) for n in sp.layers),
                         **{k: sum(size(sp.masks.reference(n, k)) for n in sp.layers) for k in ('init', 'old')}}
            self.params = sum(m.weight.numel() for m in sp.layers.values())
    for crit, extra in [('large_final', 1), ('movement', 5), ('updating_movement', 5)]:
        p = Peek()
        learner().fit(1, cbs=[SparsifyCallback(50, 'weight', 'local', crit, 'one_shot'), p])
        assert sum(p.bufs.values()) / p.params == extra, (crit, p.bufs)
    p = Peek()
    learner().fit(1, cbs=[SparsifyCallback(50, 'filter', 'local', 'large_final', 'one_shot'), p])
    assert p.bufs['mask'] == 16 + 32 + 32 and p.bufs['init'] == 0  # one bool per filter

@pytest.mark.parametrize('kwargs, err, msg', [
    (dict(sparsity=101), ValueError, r"sparsity must be a percentage in \[0, 100\], got 101"),
    (dict(sparsity=-1), ValueError, r"got -1"),
    (dict(sparsity=float('nan')), ValueError, r"got nan"),
    (dict(granularity='filters'), ValueError, r"Unknown granularity 'filters': allowed are \["),
    (dict(context='globally'), ValueError, r"Unknown context 'globally': allowed are \['local', 'global'\]"),
    (dict(criteria='l1'), ValueError, r"Unknown criteria 'l1': allowed are"),
    (dict(schedule='cubic'), ValueError, r"Unknown schedule 'cubic': allowed are"),
    (dict(nm=True, sparsity=80), ValueError, r"N:M sparsity 2:4 prunes exactly 50% of each layer \(or 0%\), got sparsity=80"),
    (dict(nm=True, sparsity={'0': 50}), ValueError, r"N:M sparsity 2:4 prunes the same share of every layer: give one percentage, not a dict"),
    (dict(nm=(True, 4)), ValueError, r"nm must be False, True \(2:4\) or a pair \(N, M\) with 0 < N < M, got \(True, 4\)"),
    (dict(rewind_epoch=-1), ValueError, r"rewind_epoch must be a non-negative int, got -1"),
    (dict(round_to=0), ValueError, r"round_to must be a positive int or None, got 0"),
    (dict(layer_type='Conv2d'), TypeError, r"layer_type must be an nn.Module subclass"),
])
def test_bad_arguments_fail_at_construction(kwargs, err, msg):
    args = dict(sparsity=50, granularity='filter', context='local', criteria='large_final', schedule='agp') | kwargs
    with pytest.raises(err, match=msg): SparsifyCallback(**args)

@pytest.mark.parametrize('kwargs, msg', [
    (dict(sparsity={'3 ': 50}), r"The model has no layer '3 ' to sparsify; close matches: \['3'"),
    (dict(sparsity={'features.0': 50}), r"no layer 'features.0'"),
    (dict(sparsity={'1': 50}), r"Layer '1' is a BatchNorm2d, not one of the sparsified layer types"),
    (dict(layer_type=nn.Conv1d), r"No layer of type \['Conv1d'\] in Sequential; its prunable layers are \['Conv2d', 'Linear'\]"),
    (dict(nm=True, granularity='weight'), r"layer '0' has weight shape \(16, 1, 3, 3\), whose 1 inputs are not a multiple of 4"),
    (dict(nm=True, granularity='filter', sparsity=50), r"N:M sparsity keeps N of every M weights: it needs granularity='weight', got 'filter'"),
    (dict(model=nn.Sequential(nn.Conv2d(1, 4, 3))), r"model= must be learn.model or one of its modules, got a Sequential that is not in it"),
    (dict(lth=True, rewind_epoch=2, schedule='agp'), r"rewind_epoch \(2\) is after the schedule starts pruning \(epoch 0.6 of 3\)"),
    (dict(granularity='kernel', layer_type=nn.Linear), r"Unknown granularity 'kernel' for Linear: allowed are \['weight', 'column', 'row', 'out_channel', 'layer'\]"),
])
def test_bad_input_against_the_model_touches_nothing(kwargs, msg):
    learn = learner()
    before = snapshot(learn.model)
    args = dict(sparsity=50, granularity='filter', context='local', criteria='large_final', schedule='agp') | kwargs
    with pytest.raises(ValueError, match=msg): learn.fit(3, cbs=SparsifyCallback(**args))
    assert unchanged(learn.model, before)
    assert not any(isinstance(c, SparsifyCallback) for c in learn.cbs) and [m.name for m in learn.metrics] == ['accuracy']

def test_schedule_instances_are_reusable_across_fits():
    "The same callback (and schedule) used for two fits does the same thing twice"
    cb = SparsifyCallback(50, 'filter', 'local', 'large_final', 'agp')
    for _ in range(2):
        learn = learner()
        learn.fit(2, cbs=cb)
        assert conv_filters_zero(learn.model) == [8, 16, 16]

def test_deferred_event_is_retried_on_a_plateau():
    "A step of the schedule that comes too soon after the last re-masking is applied later, not dropped"
    class Levels(Callback):
        order = 90
        def before_fit(self): self.seen = []
        def after_batch(self):
            if self.training: self.seen.append(self.learn.sparsify.sparsifier.n_pruned['0'])
    learn, spy = learner(), Levels()
    n = 3 * len(learn.dls.train)
    sched = Schedule(partial(sched_iterative, n_steps=3))  # a third at once, the next at 1/3, the last at 2/3
    learn.fit(3, cbs=[SparsifyCallback(60, 'filter', 'local', 'large_final', sched, update_every=n // 2), spy])
    assert sorted(set(spy.seen)) == [3, 6, 10]                      # 20%, 40%, 60% of 16 filters
    assert spy.seen.index(6) - spy.seen.index(3) == n // 2          # the middle step waited for the cadence

def test_a_second_sparsifier_and_a_users_own_mask_are_refused():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    live = Sparsifier(model, 'weight', 'local', 'large_final', layer_type=nn.Linear)
    live.sparsify_model(50)
    masks = [m._mask.clone() for m in model if isinstance(m, nn.Linear)]
    with pytest.raises(ValueError, match=r"Layer '0' already has a '_mask' attribute.*another live Sparsifier's \(call its remove\(\) first\)"):
        Sparsifier(model, 'weight', 'local', 'large_final', layer_type=nn.Linear)
    assert all(torch.equal(m._mask, k) for m, k in zip([m for m in model if isinstance(m, nn.Linear)], masks))  # kept as they were
    own = nn.Sequential(nn.Linear(8, 8))
    own[0].register_buffer('_mask', torch.ones(8, 8))
    with pytest.raises(ValueError, match=r"or the model's own \(rename it\)"): Sparsifier(own, 'weight', 'local', 'large_final', layer_type=nn.Linear)
    assert own[0]._mask.sum() == 64

@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_non_finite_weights_are_refused_naming_the_layer(bad):
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad(): model[2].weight[0, 0] = bad
    sp = Sparsifier(model, 'weight', 'global', 'large_final', layer_type=nn.Linear)
    with pytest.raises(ValueError, match=r"Layer '2' has NaN or infinite large_final scores"): sp.sparsify_model(50)
    assert all(int((m.weight == 0).sum()) == 0 for m in (model[0], model[2]))  # nothing zeroed

@pytest.mark.parametrize('make, said', [
    (lambda: nn.Sequential(nn.LazyLinear(32), nn.ReLU(), nn.Linear(32, 10)), r"Layer '0' is a lazy module that has not run yet"),
    (lambda: nn.Sequential(torch.nn.utils.parametrizations.weight_norm(nn.Linear(64, 32)), nn.ReLU(), nn.Linear(32, 10)), r"Layer '0' has a parametrized weight"),
    (lambda: nn.Sequential(torch.nn.utils.spectral_norm(nn.Linear(64, 32)), nn.ReLU(), nn.Linear(32, 10)), r"Layer '0' has a parametrized weight"),
], ids=['lazy', 'weight_norm', 'spectral_norm'])
def test_weights_that_cannot_be_masked_are_refused_before_training(make, said):
    learn = Learner(digits_dls(flat=True), make(), loss_func=nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match=said):
        learn.fit(1, cbs=SparsifyCallback(50, 'weight', 'local', 'large_final', 'one_shot', layer_type=nn.Linear))
    assert not [n for n, _ in learn.model.named_buffers() if n.rsplit('.', 1)[-1].startswith('_')]
    assert not any(isinstance(c, SparsifyCallback) for c in learn.cbs) and not [m for m in learn.metrics if m.name == 'sparsity']

def test_a_meta_model_is_refused():
    with pytest.raises(ValueError, match="Layer '0' is on the meta device"):
        Sparsifier(nn.Sequential(nn.Linear(4, 4, device='meta')), 'weight', 'local', 'large_final', layer_type=nn.Linear)

def test_non_finite_weights_are_refused_with_n_m_too():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    with torch.no_grad(): model[0].weight[3, 1] = float('nan')
    sp = Sparsifier(model, 'weight', 'local', 'large_final', nm=True, layer_type=nn.Linear)
    with pytest.raises(ValueError, match=r"Layer '0' has NaN or infinite large_final scores"): sp.sparsify_model(50)
    assert all(int((m.weight == 0).sum()) == 0 for m in (model[0], model[2]))  # nothing zeroed

@pytest.mark.parametrize('target, said', [(30, r"prunes exactly 50% of each layer \(or 0%\), got sparsity=30"),
                                          ({'0': 50}, "give one percentage, not a dict")])
def test_n_m_targets_other_than_its_share_are_refused(target, said):
    "Once any target gave 2:4 (50%), whatever was asked"
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    sp = Sparsifier(model, 'weight', 'local', 'large_final', nm=True, layer_type=nn.Linear)
    with pytest.raises(ValueError, match=said): sp.sparsify_model(target)
    with pytest.raises(ValueError, match=said if isinstance(target, int) else "prunes exactly"): sp.sparsify_layer('0', 30)
    sp.sparsify_model(50)
    assert all(int((m.weight.reshape(-1, 4) != 0).sum(1).max()) == 2 for m in (model[0], model[2]))
