"""INT8 after training on fastai's own learners: a compact `vision_learner` resnet18 fed from an image folder, calibrated
on its `DataLoaders`, written as an 8-bit ONNX file and checked; bad input refused with no file left."""
import pytest, torch, torch.nn as nn
from fastai.callback.core import Callback
from fastai.vision.all import ImageDataLoaders, Resize, Normalize, imagenet_stats, vision_learner, resnet18, accuracy, set_seed
from fasterai_lite.all import *
from helpers import digit_folder, snapshot, unchanged

@pytest.fixture(scope='module')
def compact(tmp_path_factory):
    "A vision_learner resnet18 on a digit folder, its filters halved (coupled, pruned) in one short fit"
    folder = digit_folder(tmp_path_factory.mktemp('data'), 16)
    set_seed(0)
    dls = ImageDataLoaders.from_folder(folder, valid_pct=0.2, seed=0, bs=32, num_workers=0, item_tfms=Resize(32),
                                       batch_tfms=Normalize.from_stats(*imagenet_stats))
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=accuracy)
    sp = SparsifyCallback(50, 'filter', 'local', 'large_final', 'one_shot', coupled=True, prune=True)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=sp)
    assert sp.prune_report is not None
    return learn

def test_a_compact_vision_learner_quantizes_from_its_dataloaders(compact, tmp_path):
    learn = compact
    before = snapshot(learn.model)
    report = quantize_onnx(learn.model, tmp_path/'int8.onnx', learn.dls, n_batches=2, min_agreement=.8)
    assert report.samples == 2 * learn.dls.bs and report.smaller > 3, report
    assert .8 <= report.agreement <= 1
    int8 = OnnxModel(tmp_path/'int8.onnx')
    xb = calibration_batches(learn.dls.valid, 1)[0][0]
    assert int8(xb).shape == (len(xb), learn.dls.c)
    assert unchanged(learn.model, before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['int8.onnx']

def test_top1_accuracy_on_image_folder_batches_matches_fastai(compact, tmp_path):
    "TensorImage batches through the float model and the 8-bit file: the float figure is fastai's accuracy metric"
    learn = compact
    with learn.no_bar(): metric = learn.validate()[1]
    assert top1_accuracy(learn.model, learn.dls.valid) == pytest.approx(metric)
    quantize_onnx(learn.model, tmp_path/'int8.onnx', learn.dls, n_batches=2, min_agreement=0)
    assert 0 <= top1_accuracy(OnnxModel(tmp_path/'int8.onnx'), learn.dls.valid) <= 1
    with pytest.raises(ValueError, match="No samples: list gave no batch"): top1_accuracy(learn.model, [])

def near_ties(model:nn.Module) -> nn.Module:
    "`model` followed by a head whose classes differ by far less than an 8-bit step: the float model's class varies, the 8-bit model's ties"
    torch.manual_seed(0)
    head = nn.Linear(10, 10)
    with torch.no_grad(): head.weight.copy_(torch.randn(1, 10) + 1e-6 * torch.randn(10, 10)); head.bias.zero_()
    return nn.Sequential(model, head).eval()

def test_bad_calibration_and_settings_leave_no_file(compact, tmp_path):
    model = compact.model
    with pytest.raises(ValueError, match=r"example_inputs of shapes \[\(2, 1, 8, 8\)\] do not run through"):
        quantize_onnx(model, tmp_path/'x.onnx', [(torch.randn(2, 1, 8, 8),)])
    with pytest.raises(ValueError, match="No calibration data"): quantize_onnx(model, tmp_path/'x.onnx', [])
    with pytest.raises(ValueError, match=r"activations must be one of \['int8', 'uint8'\], got 'int4'"):
        quantize_onnx(model, tmp_path/'x.onnx', compact.dls, activations='int4')
    with pytest.raises(ValueError, match="n_batches must be a positive int, got 0"): quantize_onnx(model, tmp_path/'x.onnx', compact.dls, n_batches=0)
    with pytest.raises(ValueError, match="does not exist"): quantize_onnx(model, tmp_path/'no'/'x.onnx', compact.dls, n_batches=1)
    with pytest.raises(RuntimeError, match="nothing written"):  # a check no 8-bit model can pass: see near_ties
        quantize_onnx(near_ties(model), tmp_path/'x.onnx', compact.dls, n_batches=1, min_agreement=.9)
    assert list(tmp_path.iterdir()) == []

class Branchy(nn.Module):
    "A decision on the data: neither ONNX nor torch.export can hold both branches"
    def __init__(self): super().__init__(); self.l = nn.Linear(4, 3)
    def forward(self, x): return self.l(x) if x.sum() > 0 else -self.l(x)

def test_a_model_onnx_cannot_express_is_refused(tmp_path):
    with pytest.raises(ValueError, match="froze a decision"):
        quantize_onnx(Branchy(), tmp_path/'x.onnx', [(torch.rand(8, 4),)])
    assert list(tmp_path.iterdir()) == []

def test_a_learnt_range_that_cannot_be_placed_is_named_and_calibrated(tmp_path):
    "After an average pool ONNX Runtime gives a layer's input the grid of the pool's input: that range is calibrated, with a warning"
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(8, 4, 3), nn.Flatten(), nn.Linear(4 * 5 * 5, 3)).eval()
    ranges = {'0': (-2., 2.), '3': (0., 1.), '5': (0., 4.)}
    with pytest.warns(UserWarning, match=r"No input tensor found in the ONNX graph for \['3'\]: calibrated instead"):
        r = quantize_onnx(model, tmp_path/'x.onnx', [(torch.randn(16, 3, 16, 16),)], min_agreement=0, ranges=ranges)
    assert r.learnt_ranges == 2

def learner(folder):
    set_seed(0)
    dls = ImageDataLoaders.from_folder(folder, valid_pct=0.2, seed=0, bs=32, num_workers=0, item_tfms=Resize(32),
                                       batch_tfms=Normalize.from_stats(*imagenet_stats))
    return vision_learner(dls, resnet18, pretrained=False, metrics=accuracy)

@pytest.fixture(scope='module')
def folder(tmp_path_factory): return digit_folder(tmp_path_factory.mktemp('qat'), 16)

def pre_hooks(model) -> int: return sum(len(m._forward_pre_hooks) for m in model.modules())

def test_quantization_aware_fine_tune_beside_sparsity_and_distillation_ends_compact_and_exports(folder, tmp_path):
    learn = learner(folder)
    sp = SparsifyCallback(50, 'filter', 'global', 'large_final', 'agp', coupled=True, prune=True)
    qat, kd = QuantizeCallback(), DistillCallback()
    with learn.no_bar(), learn.no_logging(), pytest.warns(UserWarning, match='nothing to teach'):  # the new head starts untrained
        learn.fine_tune(2, 1e-3, cbs=[sp, qat, kd])
    assert sp.prune_report is not None and pre_hooks(learn.model) == 0 and qat.ranges and kd.frozen is None
    assert qat.started >= sp.schedule.end_pct  # after the last cut
    report = quantize_onnx(learn.model, tmp_path/'qat.onnx', learn.dls, n_batches=2, min_agreement=.8, ranges=qat.ranges)
    assert report.smaller > 3
    assert report.learnt_ranges == len(qat.ranges) == sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in learn.model.modules())

class Boom(Callback):
    "Keeps the float weights before the third batch is rounded, then raises after its backward pass (before QuantizeCallback's)"
    order = 45
    def before_batch(self):
        if self.iter == 2: self.floats = snapshot(self.learn.model)
    def after_backward(self):
        if self.iter == 2: raise RuntimeError('boom')

def test_an_interrupted_fit_leaves_the_float_weights_and_no_hook(folder):
    learn = learner(folder)
    boom = Boom()
    with pytest.raises(RuntimeError, match='boom'), learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3, cbs=[QuantizeCallback(start_pct=0), boom])
    assert pre_hooks(learn.model) == 0
    assert all(torch.equal(boom.floats[k], v) for k, v in learn.model.state_dict().items() if k.endswith('weight'))

def test_evaluating_and_exporting_with_quantize_callback_attached(folder, tmp_path):
    "validate, get_preds and lr_find leave the weights and hooks alone; a fit, then export and load_learner, give the same predictions"
    from fastai.vision.all import load_learner
    learn = learner(folder)
    learn.add_cbs([QuantizeCallback(start_pct=.5)])
    before = snapshot(learn.model)
    with learn.no_bar(), learn.no_logging():
        learn.validate(); learn.get_preds(); learn.lr_find(num_it=5, show_plot=False)
    assert unchanged(learn.model, before) and pre_hooks(learn.model) == 0
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    learn.export(tmp_path/'qat.pkl')
    back = load_learner(tmp_path/'qat.pkl')
    x = learn.dls.one_batch()[0]
    with torch.no_grad(): assert torch.allclose(back.model.eval()(x), learn.model.eval()(x), atol=1e-5)
    assert pre_hooks(back.model) == 0

def test_quantization_aware_training_under_mixed_precision(folder):
    "fp16 autocast (on a CPU it falls back to float32, as on a GPU it would not): the rounded fit trains, and ends with no hook"
    import warnings
    learn = learner(folder).to_fp16()
    qat = QuantizeCallback(start_pct=0)
    with warnings.catch_warnings(), learn.no_bar(), learn.no_logging():
        warnings.filterwarnings('ignore', message='.*CUDA is not available.*')
        learn.fit(1, 1e-3, cbs=qat)
    loss = learn.recorder.values[-1][0]
    assert torch.isfinite(torch.tensor(loss)) and qat.started == 0 and qat.ranges and pre_hooks(learn.model) == 0

def test_a_compact_vision_learner_runs_in_8_bits_through_torchao_and_inductor(compact):
    "The PyTorch path: calibrated on the learner's DataLoaders (its head's BatchNorm1d too), called on its TensorImage batches and by validate, the model untouched"
    learn = compact
    before = snapshot(learn.model)
    int8 = quantize_inductor(learn.model, learn.dls, n_batches=2, min_agreement=.8)
    assert int8.report.samples == 2 * learn.dls.bs and .8 <= int8.report.agreement <= 1, int8.report
    xb = learn.dls.valid.one_batch()[0]  # a TensorImage
    assert int8(xb).shape == (len(xb), learn.dls.c)
    score = top1_accuracy(int8, learn.dls.valid)
    float_model, learn.model = learn.model, int8  # in the learner's place, as a user would validate it
    with learn.no_bar(), learn.no_logging(): metric = learn.validate()[1]
    learn.model = float_model
    assert metric == pytest.approx(score)
    assert unchanged(learn.model, before)

def test_a_model_torch_export_cannot_capture_is_refused():
    with pytest.raises(ValueError, match="torch.export cannot capture Branchy as one graph"):
        quantize_inductor(Branchy(), [(torch.rand(8, 4),)])
