"""Recovering accuracy and reaching a cost target on fastai's own learners: `DistillCallback` beside `SparsifyCallback`
on a `vision_learner` fed from an image folder, with `fine_tune`, mixed precision and a MACs target (`speedup=`)."""
import shutil, warnings, pytest, torch, torch.nn as nn
from fastai.vision.all import ImageDataLoaders, Resize, Normalize, imagenet_stats, vision_learner, resnet18, accuracy, set_seed
from fasterai_lite.all import *
from fasterai_lite.data import digits_images

@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    "A folder of digit PNGs, 16 of each class"
    root = tmp_path_factory.mktemp('data')
    full, small = digits_images(root/'digits'), root/'small'
    for c in sorted(full.iterdir()):
        (small/c.name).mkdir(parents=True)
        for f in sorted(c.iterdir())[:16]: shutil.copy(f, small/c.name/f.name)
    return small

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
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*CUDA is not available.*')  # fp16 autocast on a CPU falls back to float32
        learn.fine_tune(1, 1e-3, cbs=[kd, sp])
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
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(ValueError, match="speedup must be a number of times fewer MACs, at least 1, got 0.5"):
        SparsifyCallback(None, 'filter', 'global', 'large_final', 'agp', speedup=.5, coupled=True)
    with pytest.raises(ValueError, match="give sparsity or speedup, not both"):
        SparsifyCallback(50, 'filter', 'global', 'large_final', 'agp', speedup=2., coupled=True)
    with pytest.raises(ValueError, match="speedup= removes whole channel groups: it needs coupled=True"):
        SparsifyCallback(None, 'filter', 'global', 'large_final', 'agp', speedup=2.)
    with pytest.raises(ValueError, match="A speedup of 10000x cannot be reached"):
        learn.fit(1, cbs=SparsifyCallback(None, 'filter', 'global', 'large_final', 'agp', speedup=1e4, coupled=True))
    assert all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())
    assert hooks(learn.model) == 0

def test_a_teacher_of_other_classes_is_refused(folder):
    learn = learner(folder)
    with pytest.raises(ValueError, match=r"teacher's outputs have shape \(1, 5\) and the student's \(1, 10\)"):
        learn.fit(1, cbs=DistillCallback(teacher=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5))))
