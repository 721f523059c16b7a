"Deploy: BatchNorm folding is lossless on real architectures and leaves the input model alone."
import pytest, torch, torch.nn as nn
import torchvision.models as tvm
from fasterai_lite.all import *
from fasterai_lite.data import vgg_cifar
from helpers import randomize_norms, snapshot, unchanged

def trained_looking(model):
    "In eval mode, with BatchNorm statistics as after training, so that a wrong fold shows in the outputs"
    randomize_norms(model)
    return model.eval()

CASES = {'resnet18': (lambda: tvm.resnet18(weights=None), (2, 3, 64, 64)),
         'mobilenet_v2': (lambda: tvm.mobilenet_v2(weights=None), (2, 3, 64, 64)),
         'vgg_cifar': (vgg_cifar, (2, 3, 32, 32))}

@pytest.mark.parametrize('name', list(CASES))
def test_folding_is_lossless(name):
    make, shape = CASES[name]
    torch.manual_seed(0)
    model, x = trained_looking(make()), torch.randn(*shape)
    before = snapshot(model)
    folded, report = fold_batchnorms(model, x)
    n_norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert report.folded.sum() == n_norms and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert output_difference(model, folded, x) <= 1e-5
    assert unchanged(model, before)

def test_folding_a_compact_model():
    "The deploy path: sparsify channels, compact, fold"
    torch.manual_seed(0)
    model, x = trained_looking(tvm.resnet18(weights=None)), torch.randn(2, 3, 64, 64)
    sp = Sparsifier(model, 'filter', 'local', 'large_final', coupled=True, example_inputs=x[:1]); sp.sparsify_model(50); sp.remove()
    compact = Pruner(verbose=False).prune_model(model, x)
    folded, report = fold_batchnorms(compact, x)
    assert report.folded.all() and output_difference(model, folded, x) <= 1e-5

@pytest.mark.parametrize('name', ['resnet18', 'vgg_cifar'])
def test_onnx_export_round_trips(name, tmp_path):
    make, shape = CASES[name]
    torch.manual_seed(0)
    model, x = trained_looking(make()), torch.randn(*shape)
    report = export_onnx(model, tmp_path/'m.onnx', x[:1])
    import onnxruntime as ort
    session = ort.InferenceSession(str(tmp_path/'m.onnx'), providers=['CPUExecutionProvider'])
    for batch in (x, torch.cat([x, x])):  # a dynamic batch
        got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0])
        want = model(batch)
        assert float((got - want).abs().max() / want.abs().max()) <= 1e-4
    assert report.max_difference <= 1e-4 and report.batch == 'dynamic'

def test_onnx_export_without_the_extra_names_it(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # as if it were not installed
    with pytest.raises(ImportError, match=r'pip install "fasterai_lite\[deploy\]"'): export_onnx(vgg_cifar(), tmp_path/'m.onnx')
    assert not any(tmp_path.iterdir())
