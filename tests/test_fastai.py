"""fastai's own learners, end to end, the way their users work: data through fastai's pipeline (image folders,
`ImageDataLoaders`, `DataBlock`, `TabularDataLoaders`, so batches of fastai's tensor types), `vision_learner`,
`unet_learner` and `tabular_learner` with fastai's defaults, `fit_one_cycle` and `fine_tune`, with and without
`to_fp16()`; each ends in a compact model whose predictions equal the sparse model's. Then the compact model on disk."""
import contextlib, subprocess, sys, warnings, pytest, numpy as np, torch, torch.nn as nn
import pandas as pd
from fastai.vision.all import (ImageDataLoaders, DataBlock, ImageBlock, MaskBlock, RandomSplitter, Resize, Normalize, imagenet_stats,
    PILImage, PILMask, TensorImage, vision_learner, unet_learner, resnet18, mobilenet_v3_small, xresnet18, accuracy, set_seed,
    get_image_files, load_learner, Learner)
from fastai.tabular.all import TabularDataLoaders, CategoryBlock, tabular_learner
from fasterai_lite.all import *
from fasterai_lite.data import digits_dls, tiny_resnet
from helpers import digit_folder, snapshot, unchanged

N_PER_CLASS = 24  # tiny data: 240 images, 48 of them held out

@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    "A folder of digit PNGs, one folder per class (as a user's images sit): a few of each class from `digits_images`"
    return digit_folder(tmp_path_factory.mktemp('data'), N_PER_CLASS)

def image_dls(path, size=32):
    return ImageDataLoaders.from_folder(path, valid_pct=0.2, seed=0, bs=32, num_workers=0, item_tfms=Resize(size),
                                       batch_tfms=Normalize.from_stats(*imagenet_stats))

def segmentation_dls(path):
    "A segmentation task on the digits: the mask marks the ink (pixels above half intensity), written beside the images"
    files, masks = get_image_files(path)[::4], path.parent/"masks"  # a quarter: a U-Net's decoder is the costliest part of the matrix
    for f in files:
        (masks/f.parent.name).mkdir(parents=True, exist_ok=True)
        PILMask.create((np.array(PILImage.create(f).convert('L')) > 127).astype(np.uint8)).save(masks/f.parent.name/f.name)
    block = DataBlock(blocks=(ImageBlock, MaskBlock(codes=['background', 'ink'])), splitter=RandomSplitter(0.2, seed=0),
                      get_y=lambda f: masks/f.parent.name/f.name, item_tfms=Resize(32), batch_tfms=Normalize.from_stats(*imagenet_stats))
    return block.dataloaders(files, bs=16, num_workers=0)

def tabular_dls():
    "The digits as a table: 64 pixel columns and a label"
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    df = pd.DataFrame(X[:300], columns=[f'p{i}' for i in range(64)]).assign(label=[str(v) for v in y[:300]])
    return TabularDataLoaders.from_df(df, procs=[Normalize], cont_names=[f'p{i}' for i in range(64)], y_names='label',
                                      y_block=CategoryBlock, valid_idx=list(range(240, 300)), bs=32, num_workers=0)

LEARNERS = {  # name -> (a learner on the digits, the layers to sparsify)
    'resnet18': (lambda p: vision_learner(image_dls(p), resnet18, pretrained=False, metrics=accuracy), (nn.Conv2d, nn.Linear)),
    'mobilenet_v3_small': (lambda p: vision_learner(image_dls(p), mobilenet_v3_small, pretrained=False, metrics=accuracy), (nn.Conv2d, nn.Linear)),
    'xresnet18': (lambda p: vision_learner(image_dls(p), xresnet18, pretrained=False, metrics=accuracy), (nn.Conv2d, nn.Linear)),
    'unet': (lambda p: unet_learner(segmentation_dls(p), resnet18, pretrained=False), nn.Conv2d),
    'tabular': (lambda p: tabular_learner(tabular_dls(), layers=[64, 32], metrics=accuracy), nn.Linear),
}

def ours(learn) -> list: return [c for c in learn.cbs if type(c).__module__.startswith('fasterai_lite')]

def weight_count(model) -> int: return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))

def predictions_of(learn, model):
    "`learn.get_preds()` on the validation set with `model` in place of `learn.model`, which is put back"
    kept, learn.model = learn.model, model
    try: return learn.get_preds()[0]
    finally: learn.model = kept

def pairwise(names:list) -> list:
    "(learner, fit, precision) runs in which every learner meets both fits and both precisions, and each fit each precision: half of all the combinations"
    halves = ([('fit_one_cycle', 'fp32'), ('fine_tune', 'fp16')], [('fit_one_cycle', 'fp16'), ('fine_tune', 'fp32')])
    return [(n, fit, prec) for i, n in enumerate(names) for fit, prec in halves[i % 2]]

@pytest.mark.parametrize('name, fit, precision', pairwise(list(LEARNERS)))
def test_learner_compacts_to_the_sparse_models_predictions(digits, name, fit, precision):
    make, layer_type = LEARNERS[name]
    set_seed(0)
    learn = make(digits)
    if precision == 'fp16': learn = learn.to_fp16()
    pruner = Pruner(verbose=False, keep_input=True)
    cb = SparsifyCallback(50, 'out_channel', 'local', 'large_final', 'agp', layer_type=layer_type, coupled=True, pruner=pruner)
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*CUDA is not available.*')  # fp16 autocast on a CPU falls back to float32
        one_group = name == 'tabular' and fit == 'fine_tune'  # nothing to freeze: both fits train everything, and both sparsify
        with pytest.warns(UserWarning, match='sparsity compounds') if one_group else contextlib.nullcontext():
            getattr(learn, fit)(1, 1e-3, cbs=cb)
        assert cb.prune_report.loc['macs', 'ratio'] > 1.2, cb.prune_report
        assert weight_count(learn.model) < weight_count(pruner.input_model)
        torch.testing.assert_close(predictions_of(learn, learn.model), predictions_of(learn, pruner.input_model), rtol=1e-4, atol=1e-5)
    assert not ours(learn)

@pytest.mark.parametrize('fit, context', [('fit_one_cycle', 'local'), ('fine_tune', 'global')])
def test_the_issue_reproduction_ends_compact(digits, fit, context, capsys):
    "The first try of a new user: an image folder, vision_learner's defaults, the callback in fit (it crashed after the fit)"
    set_seed(0)
    dls = ImageDataLoaders.from_folder(digits, valid_pct=0.2, seed=0, bs=64, num_workers=0, item_tfms=Resize(32))
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=accuracy)
    pruner = Pruner(keep_input=True)
    cb = SparsifyCallback(50, 'filter', context, 'large_final', 'one_shot', coupled=True, pruner=pruner)
    getattr(learn, fit)(1, 3e-3, cbs=cb)
    assert 'Removable (their channels can go, so only they are chosen): 100.0%' in capsys.readouterr().out
    assert pruner.report['removable_fraction'] == 1 and cb.prune_report.loc['params', 'ratio'] > 2
    torch.testing.assert_close(predictions_of(learn, learn.model), predictions_of(learn, pruner.input_model), rtol=1e-4, atol=1e-5)

def test_channel_groups_are_the_same_for_fastai_batches(digits):
    "Traced with a TensorImage the groups once lost their BatchNorms and the head's group"
    learn = vision_learner(image_dls(digits), resnet18, pretrained=False)
    x = learn.dls.one_batch()[0][:1]
    assert isinstance(x, TensorImage)
    describe = lambda groups: sorted((g.root, sorted(g.producers), sorted(g.norms), g.to_output) for g in groups)
    assert describe(channel_groups(learn.model, x)[0]) == describe(channel_groups(learn.model, x.as_subclass(torch.Tensor))[0])

def test_a_failed_compaction_keeps_the_trained_sparse_model(digits):
    "Compaction that fails at the end of the fit says so, and how to compact by hand; the trained model stays on the learner"
    learn = vision_learner(image_dls(digits), resnet18, pretrained=False)
    cb = SparsifyCallback(50, 'filter', 'local', 'large_final', 'one_shot', coupled=True, pruner=Pruner(rtol=1e-300, strict=True))
    model = learn.model
    with learn.no_bar(), learn.no_logging(), pytest.raises(RuntimeError, match=r"the fit is complete, but compacting its model "
            r"failed \(RuntimeError: Pruner: the compact model's outputs differ.*learn.model is the trained sparse model.*Pruner\(\).prune_model"):
        learn.fit(1, 1e-3, cbs=cb)
    assert learn.model is model and len(learn.recorder.values) == 1
    assert sum(int((m.weight.flatten(1).abs().sum(1) == 0).sum()) for m in model.modules() if isinstance(m, nn.Conv2d)) > 0
    assert not ours(learn) and not [n for n, _ in model.named_buffers() if n.endswith('_mask')]
    assert Pruner(verbose=False).prune_model(model, learn.dls.one_batch()[0][:1]) is not model  # and compacts by hand

class NumpyInEval(nn.Module):
    "Post-processes with NumPy in eval mode, as detection models do: fine in fastai (no gradients in validation), not traced"
    def __init__(self): super().__init__(); self.a, self.b, self.head = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Linear(8, 10)
    def forward(self, x):
        y = self.head(self.b(torch.relu(self.a(x))).mean((2, 3)))
        return y if self.training else torch.from_numpy(y.numpy())

def test_problems_of_the_end_of_fit_show_before_training(digits):
    learn = Learner(image_dls(digits), NumpyInEval(), loss_func=nn.CrossEntropyLoss())
    before = snapshot(learn.model)
    with pytest.raises(GraphError, match="could not trace the channel graph of NumpyInEval"):
        learn.fit(1, cbs=SparsifyCallback(50, 'filter', 'local', 'large_final', 'one_shot', prune=True))
    assert not learn.recorder.__dict__.get('values') and unchanged(learn.model, before)
    learn = vision_learner(image_dls(digits), resnet18, pretrained=False)
    with learn.no_bar(), learn.no_logging():
        with pytest.warns(UserWarning, match=r"coupled=False\): \d+\.\d% of the weights it sparsifies are in channels tied"):
            learn.fit(1, cbs=SparsifyCallback(30, 'filter', 'local', 'large_final', 'one_shot', prune=True))
        with pytest.warns(UserWarning, match="granularity 'weight' zeroes none, so the compact model will be the sparse one"):
            learn.fit(1, cbs=SparsifyCallback(30, 'weight', 'local', 'large_final', 'one_shot', prune=True))

@pytest.fixture(scope='module')
def compacted(digits, tmp_path_factory):
    "A vision_learner, compacted at the end of its fit and saved by fastai's own `learn.save`, with inputs and outputs to check"
    set_seed(0)
    learn = vision_learner(image_dls(digits), resnet18, pretrained=False, path=tmp_path_factory.mktemp('run'))
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 1e-3, cbs=SparsifyCallback(50, 'filter', 'local', 'large_final', 'one_shot', coupled=True, prune=True))
    x = learn.dls.valid.one_batch()[0][:4].as_subclass(torch.Tensor)
    with torch.no_grad(): y = learn.model.eval()(x)
    learn.save('compact')
    torch.save({'x': x, 'y': y}, learn.path/'check.pth')
    return learn

def test_export_and_load_learner(compacted):
    compacted.export('compact.pkl')
    loaded = load_learner(compacted.path/'compact.pkl')
    assert weight_count(loaded.model) == weight_count(compacted.model)
    torch.testing.assert_close(loaded.get_preds(dl=compacted.dls.valid)[0], compacted.get_preds()[0])

def test_export_with_the_librarys_own_loaders(tmp_path):
    learn = Learner(digits_dls(), tiny_resnet(16), path=tmp_path)  # the vocab and the loss come from the data, as in fastai
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, cbs=SparsifyCallback(50, 'filter', 'local', 'large_final', 'one_shot', coupled=True, prune=True))
    learn.export()
    assert weight_count(load_learner(tmp_path/'export.pkl').model) == weight_count(learn.model)

LOAD_IN_A_FRESH_PROCESS = '''
import sys, torch
from fastai.vision.all import vision_learner, create_vision_model, resnet18, ImageDataLoaders, Resize, Normalize, imagenet_stats
from fasterai_lite.compact import load_compact
run, data = sys.argv[1:]
check = torch.load(f'{run}/check.pth', weights_only=True)
model = load_compact(create_vision_model(resnet18, 10, pretrained=False), f'{run}/models/compact.pth')  # the constructor, then the file
with torch.no_grad(): err = float((model.eval()(check['x']) - check['y']).abs().max())
dls = ImageDataLoaders.from_folder(data, valid_pct=0.2, seed=0, bs=32, num_workers=0, item_tfms=Resize(32),
                                   batch_tfms=Normalize.from_stats(*imagenet_stats))
learn = vision_learner(dls, resnet18, pretrained=False, path=run).load_compact('compact')
with torch.no_grad(): err_learn = float((learn.model.eval()(check['x']) - check['y']).abs().max())
print(err, err_learn, sorted(m for m in sys.modules if m.startswith('tests') or m.startswith('test_')))
'''

def test_the_compact_model_loads_back_in_a_fresh_process_weights_only(compacted, digits):
    r = subprocess.run([sys.executable, '-c', LOAD_IN_A_FRESH_PROCESS, str(compacted.path), str(digits)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    err, err_learn, test_modules = r.stdout.split(maxsplit=2)
    assert float(err) < 1e-5 and float(err_learn) < 1e-5 and test_modules.strip() == '[]'

def test_loading_a_compact_checkpoint_into_a_dense_learner_names_the_loader(compacted):
    dense = vision_learner(compacted.dls, resnet18, pretrained=False, path=compacted.path)
    before = snapshot(dense.model)
    with pytest.raises(RuntimeError) as e: dense.load('compact')
    assert str(e.value).splitlines()[1].strip() == 'Unexpected key(s) in state_dict: "compact_model__load_with_load_compact".'
    with pytest.raises(ValueError, match="holds no compact model"): load_compact(dense.model, before)
    dense.load_compact('compact')
    assert weight_count(dense.model) == weight_count(compacted.model)

def test_show_results_and_interpretation_leave_the_model_alone(digits):
    "Both run fastai's get_preds, and so its before_fit and after_fit, with the callback added to the learner"
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from fastai.interpret import ClassificationInterpretation
    set_seed(0)
    learn = vision_learner(image_dls(digits), resnet18, pretrained=False, metrics=accuracy)
    cb = SparsifyCallback(50, 'filter', 'local', 'large_final', 'one_shot')
    learn.add_cb(cb)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3)
        before, report = snapshot(learn.model), cb.report
        learn.show_results(max_n=2); plt.close('all')
        ClassificationInterpretation.from_learner(learn).top_losses(2)
    assert unchanged(learn.model, before)
    assert cb.report is report and ours(learn) == [cb]
