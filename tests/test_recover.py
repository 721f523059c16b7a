"""Recovering accuracy and reaching a cost target on fastai's own learners: `DistillCallback` beside `SparsifyCallback`
on a `vision_learner` fed from an image folder, with `fine_tune`, mixed precision and a MACs target (`speedup=`)."""
import warnings, pytest, torch, torch.nn as nn
from fastai.vision.all import ImageDataLoaders, Resize, Normalize, imagenet_stats, vision_learner, resnet18, resnet34, accuracy, set_seed, load_learner
from fasterai_lite.all import *
from helpers import digit_folder, snapshot, unchanged
from fastai.callback.core import Callback

@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    "A folder of digit PNGs, 16 of each class"
    return digit_folder(tmp_path_factory.mktemp('data'), 16)

def learner(folder):
    set_seed(0)
    dls = ImageDataLoaders.from_folder(folder, valid_pct=0.2, seed=0, bs=32, num_workers=0, item_tfms=Resize(32),
                                       batch_tfms=Normalize.from_stats(*imagenet_stats))
    return vision_learner(dls, resnet18, pretrained=False, metrics=accuracy)

def hooks(model) -> int: return sum(len(m._forward_hooks) for m in model.modules())

@pytest.mark.parametrize('fp16', [False, True])
def test_distillation_and_a_macs_target_end_compact(folder, fp16):
    "fine_tune with a default teacher and a 2x MACs target: the compact model has 2x (within 5%) fewer MACs, no teacher or hook stays"
    learn = learner(folder)
    if fp16: learn = learn.to_fp16()
    kd = DistillCallback()
    sp = SparsifyCallback(None, 'filter', 'global', 'large_final', 'agp', speedup=2., coupled=True, prune=True, round_to=8)
    with warnings.catch_warnings(), pytest.warns(UserWarning, match='teacher, a copy of the model as this fit starts, .* nothing to teach'):
        warnings.filterwarnings('ignore', message='.*CUDA is not available.*')  # fp16 autocast on a CPU falls back to float32
        learn.fine_tune(1, 1e-3, cbs=[kd, sp])  # the new head starts untrained: the default teacher says it cannot teach yet
    ratio = float(sp.prune_report.loc['macs', 'ratio'])
    assert 2 <= ratio <= 2.1, ratio
    assert kd.frozen is None and hooks(learn.model) == 0 and kd.cost['teacher_seconds'] > 0
    assert not [c for c in learn.cbs if type(c).__module__.startswith('fasterai_lite')]
    kept = sp.allocation.table().kept
    assert (kept % 8 == 0).all() and (kept >= 8).all()

def test_global_filter_pruning_never_collapses_a_layer(folder):
    "The report's case: 50% of the filters, global, coupled, on a vision_learner resnet18 kept 1 of 512 filters in some layers"
    learn = learner(folder)
    sp = SparsifyCallback(50, 'filter', 'global', 'large_final', 'agp', coupled=True)
    learn.fit(1, 1e-3, cbs=sp)
    kept = 100 - sp.report.set_index('layer').sparsity
    assert kept.min() >= 15, kept.sort_values().head()

def test_bad_cost_targets_are_refused_before_training(folder):
    learn = learner(folder)
    before = snapshot(learn.model)
    with pytest.raises(ValueError, match="speedup must be a number of times fewer MACs, at least 1, got 0.5"):
        SparsifyCallback(None, 'filter', 'global', 'large_final', 'agp', speedup=.5, coupled=True)
    with pytest.raises(ValueError, match="give sparsity or speedup, not both"):
        SparsifyCallback(50, 'filter', 'global', 'large_final', 'agp', speedup=2., coupled=True)
    with pytest.raises(ValueError, match="speedup= removes whole channel groups: it needs coupled=True"):
        SparsifyCallback(None, 'filter', 'global', 'large_final', 'agp', speedup=2.)
    with pytest.raises(ValueError, match="A speedup of 10000x cannot be reached"):
        learn.fit(1, cbs=SparsifyCallback(None, 'filter', 'global', 'large_final', 'agp', speedup=1e4, coupled=True))
    assert unchanged(learn.model, before)
    assert hooks(learn.model) == 0

def test_a_teacher_of_other_classes_is_refused(folder):
    learn = learner(folder)
    with pytest.raises(ValueError, match=r"teacher's outputs have shape \(1, 5\) and the student's \(1, 10\)"):
        learn.fit(1, cbs=DistillCallback(teacher=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5))))

def test_every_recovery_tool_together_on_a_vision_learner(folder):
    "Distillation, the growing push and the cut monitor beside a 2x MACs target, fit_one_cycle: compact at 2x, each cut measured, nothing left"
    learn = learner(folder)
    sp = SparsifyCallback(None, 'filter', 'global', 'large_final', 'agp', speedup=2., coupled=True, prune=True)
    kd, push, monitor = DistillCallback(), GroupPenaltyCallback(.05), CutMonitor()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        learn.fit_one_cycle(2, 1e-3, cbs=[sp, kd, push, monitor])
    assert not [w for w in caught if 'shadowing' in str(w.message)]  # fastai warns when a callback's attribute hides the learner's
    assert 2 <= float(sp.prune_report.loc['macs', 'ratio']) <= 2.1
    cuts = monitor.cuts
    assert len(cuts) >= 1 and cuts.sparsity.is_monotonic_increasing and cuts.accuracy_before.between(0, 1).all()
    assert push.chosen == [] and kd.frozen is None and hooks(learn.model) == 0
    assert not [c for c in learn.cbs if type(c).__module__.startswith('fasterai_lite')]

class _ShareOfChosen(Callback):
    "The share of the norm of the tensors the push holds that is in the units to remove, after the last step before the cut"
    order, run_valid = 46, False
    @torch.no_grad()
    def after_step(self):
        push = next(c for c in self.learn.cbs if isinstance(c, GroupPenaltyCallback))
        if sum(push.sparsifying.sparsifier.n_pruned.values()): return  # cut already
        self.share = float(sum((t * going).abs().sum() for t, going in push.chosen) / sum(t.abs().sum() for t, _ in push.chosen))

def test_the_push_shrinks_what_the_cut_removes(folder):
    "Before the cut, the units the final target removes lose most of their size under the push; without it they keep it"
    def share(strength):
        learn = learner(folder)
        sp = SparsifyCallback(50, 'filter', 'local', 'large_final', Schedule(sched_oneshot, .99, name='cut at the end'), coupled=True)
        full = Schedule(lambda s, e, p: 1., 0., 1., name='full from the start')
        probe = _ShareOfChosen()
        learn.fit(2, 1e-3, cbs=[sp, GroupPenaltyCallback(strength, schedule=full, every=1), probe])
        return probe.share
    plain, pushed = share(0.), share(.2)
    assert pushed < plain / 2, (plain, pushed)  # about 0.50 and 0.17 here

def test_bad_recovery_arguments_are_refused(folder):
    with pytest.raises(ValueError, match=r"strength must be a number in \[0, 1\], got 2"): GroupPenaltyCallback(2)
    with pytest.raises(ValueError, match="weight must be a number in"): DistillCallback(weight=-.1)
    learn = learner(folder)
    with pytest.raises(ValueError, match="must have exactly one, in the same fit or added before, and has 0"):
        learn.fit(1, cbs=GroupPenaltyCallback())
    assert not [c for c in learn.cbs if type(c).__module__.startswith('fasterai_lite')]

def test_evaluating_and_exporting_with_the_recovery_tools_attached(folder, tmp_path):
    "validate, get_preds and lr_find with every recovery tool attached change nothing; after the fit, export and load_learner give the same predictions"
    learn = learner(folder)
    sp = SparsifyCallback(None, 'filter', 'global', 'large_final', 'agp', speedup=2., coupled=True, prune=True)
    kd, push, monitor = DistillCallback(), GroupPenaltyCallback(), CutMonitor()
    learn.add_cbs([sp, kd, push, monitor])
    before = snapshot(learn.model)
    learn.validate(); learn.get_preds()
    with learn.no_logging(): learn.lr_find(num_it=4, show_plot=False)
    assert unchanged(learn.model, before) and hooks(learn.model) == 0 and kd.frozen is None
    assert monitor.rows == [] and push.chosen == []
    with pytest.warns(UserWarning, match='nothing to teach'): learn.fit_one_cycle(1, 1e-3)  # an untrained head, as above
    assert 2 <= float(sp.prune_report.loc['macs', 'ratio']) <= 2.1 and len(monitor.cuts) >= 1
    learn.export(tmp_path/'compact.pkl')
    loaded = load_learner(tmp_path/'compact.pkl')
    dl = learn.dls.test_dl([learn.dls.valid_ds.items[0]])
    torch.testing.assert_close(loaded.get_preds(dl=dl)[0], learn.get_preds(dl=dl)[0])
    assert param_count(loaded.model) == param_count(learn.model)

def test_attention_transfer_pairs_the_stages_of_a_deeper_teacher(folder):
    "features='stages' pairs a resnet34 teacher's stage ends with a resnet18 student's by size, beside a coupled, pruned fit"
    teacher = vision_learner(learner(folder).dls, resnet34, pretrained=False).model
    learn = learner(folder)
    kd = DistillCallback(teacher, features='stages')
    sp = SparsifyCallback(50, 'filter', 'local', 'large_final', 'agp', coupled=True, prune=True)
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*nothing to teach')  # an untrained teacher: the pairing is what is tested
        learn.fit(1, 1e-3, cbs=[kd, sp])
    assert kd.pairs == {n: n for n in ('0.2', '0.4', '0.5', '0.6')}  # 16, 8, 4 and 2 positions a side; layer4's 1x1 is left out
    assert hooks(learn.model) == 0 and hooks(teacher) == 0 and sp.prune_report is not None

def test_an_ensemble_of_trained_learners_teaches_a_pruned_one(folder):
    "Two vision_learners fit on two data orders teach a third through Ensemble, beside a 2x MACs target: compact at 2x, teachers unchanged"
    teachers = []
    for seed in (0, 1):
        t = learner(folder); set_seed(seed)
        t.fit(1, 1e-3)
        teachers.append(t.model)
    before = [snapshot(m) for m in teachers]
    learn = learner(folder)
    kd = DistillCallback(Ensemble(teachers))
    sp = SparsifyCallback(None, 'filter', 'global', 'large_final', 'agp', speedup=2., coupled=True, prune=True)
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*nothing to teach')  # one epoch on 128 images: what is tested is the plumbing
        learn.fit(1, 1e-3, cbs=[kd, sp])
    assert 2 <= float(sp.prune_report.loc['macs', 'ratio']) <= 2.1
    assert kd.frozen is None and hooks(learn.model) == 0 and kd.cost['teacher_seconds'] > 0
    for m, b in zip(teachers, before): assert unchanged(m, b)  # the members stay as they were
    with pytest.raises(ValueError, match="features='stages' can't pair the stages of an Ensemble"):
        DistillCallback(Ensemble(teachers), features='stages')
