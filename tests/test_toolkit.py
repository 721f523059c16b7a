"The MIT lab's toolkit: statistics, sensitivity scan and targets, the layer-collapse cap; edge cases and bad input."
import copy, re, pytest, torch, torch.nn as nn
import pandas as pd
import matplotlib; matplotlib.use('Agg')
from fastai.learner import Learner
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
from fasterai_lite.callback import SparsifyCallback
from fasterai_lite.stats import layer_stats, model_stats, compare_models, param_count, size_mb
from fasterai_lite.sensitivity import sensitivity_scan, sensitivity_targets
from fasterai_lite.data import digits_dls, digits_cnn, MnistNet, read_idx
from helpers import snapshot, unchanged

def learner(model=None):
    set_seed(0)
    return Learner(digits_dls(), model or digits_cnn(), loss_func=nn.CrossEntropyLoss(), metrics=accuracy)


def test_stats_of_dense_sparse_and_compact_models():
    learn = learner()
    cb = SparsifyCallback(50, 'filter', 'local', 'large_final', 'agp', coupled=True, prune=True)
    dense = copy.deepcopy(learn.model)
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-2, cbs=cb)
    x = learn.dls.valid.one_batch()[0][:1]
    cmp = compare_models({'dense': dense, 'compact': learn.model}, x)
    assert cmp.loc['params', 'compact'] == param_count(learn.model) == cb.prune_report.loc['params', 'compact']
    assert cmp.loc['macs', 'dense/compact'] == pytest.approx(cb.prune_report.loc['macs', 'ratio'], abs=0.01)
    st = layer_stats(learn.model, x)
    assert (st.sparsity < 50).all() and st.macs.sum() <= model_stats(learn.model, x)['macs']

def test_size_at_data_width_counts_parameters_only():
    m = MnistNet()
    assert size_mb(m, data_width=32) == pytest.approx(param_count(m) * 4 / 1e6)
    assert size_mb(m, data_width=8) == pytest.approx(param_count(m) / 1e6)

def test_scan_refuses_bad_input_and_touches_nothing():
    learn = learner()
    before = snapshot(learn.model)
    for kw, msg in [(dict(sparsities=[]), 'non-empty list'), (dict(sparsities=[-5]), r'\[-5\]'),
                    (dict(sparsities=[50, float('nan')]), 'nan'), (dict(sparsities=50), 'non-empty list'),
                    (dict(layers=['0', 'head']), r"Layers \['head'\] are not"),
                    (dict(layer_type=nn.Embedding), r"Nothing to scan: No layer of type \['Embedding'\]")]:
        with pytest.raises(ValueError, match=msg): sensitivity_scan(learn, **kw)
        assert unchanged(learn.model, before)
    mlp = learner(nn.Sequential(nn.Flatten(), nn.ReLU()))
    with pytest.raises(ValueError, match='Nothing to scan: No layer of type'): sensitivity_scan(mlp)

def test_scan_of_chosen_layers_with_filters_restores_batchnorm():
    learn = learner()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    before = snapshot(learn.model)
    scan = sensitivity_scan(learn, [50, 100], granularity='filter', layer_type=nn.Conv2d, layers=['3', '7'])
    assert scan.layer.tolist() == ['3', '3', '7', '7'] and scan.attrs['metric'] == 'accuracy'
    assert unchanged(learn.model, before)  # the BatchNorms the filters zeroed are back too
    assert (scan.groupby('layer')['drop'].last() > 0).all()  # a layer without any filter breaks the net

def test_scan_without_metrics_uses_the_loss():
    learn = learner(); learn.metrics = []
    scan = sensitivity_scan(learn, [90], layers=['0'])
    assert scan.attrs == dict(metric='valid_loss', baseline=scan.attrs['baseline'], higher_better=False)
    assert scan['drop'].iloc[0] == pytest.approx(scan.valid_loss.iloc[0] - scan.attrs['baseline'])

def test_targets_feed_the_callback():
    learn = learner()
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-2)
    scan = sensitivity_scan(learn, [25, 50, 75, 90])
    t = sensitivity_targets(scan, 50, budget=1.)
    cb = SparsifyCallback(t, 'weight', 'local', 'large_final', 'agp', layer_type=(nn.Conv2d, nn.Linear))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=cb)
    assert cb.report.zeros.sum() / cb.report.params.sum() == pytest.approx(.5, abs=1e-3)
    with pytest.raises(ValueError, match='budget must be'): sensitivity_targets(scan, 50, budget=-1)

def test_layer_cap_in_the_callback():
    with pytest.raises(ValueError, match=r'max_layer_sparsity must be a percentage in \[0, 100\], got 150'):
        SparsifyCallback(50, 'filter', 'global', 'large_final', 'agp', max_layer_sparsity=150)
    learn = learner()
    before = snapshot(learn.model)
    cb = SparsifyCallback(90, 'filter', 'global', 'movement', 'agp', max_layer_sparsity=80)
    with pytest.raises(ValueError, match='cannot be reached'), learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=cb)
    assert unchanged(learn.model, before) and not [n for n, _ in learn.model.named_buffers() if n.rsplit('.', 1)[-1] in ('_mask', '_init_weights', '_old_weights')]

def test_no_layer_collapses_by_default_in_global_coupled_mode():
    "A layer whose weights are 1000 times smaller than the others' is not singled out by a global threshold of filters"
    learn = learner(digits_cnn((16, 64, 8)))
    with torch.no_grad(): learn.model[7].weight.mul_(1e-3)  # its raw scores far below the others': it used to lose all but one
    cb = SparsifyCallback(40, 'filter', 'global', 'large_final', 'one_shot', coupled=True, prune=True)
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3, cbs=cb)
    convs = [m for m in learn.model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[2].out_channels >= 3  # its filters compare with each other (z-scores), not with the other layers' scale

def test_read_idx_refuses_other_files(tmp_path):
    (tmp_path/'x').write_bytes(b'\x00\x00\x0d\x01' + (3).to_bytes(4, 'big') + b'abc')
    with pytest.raises(ValueError, match='not an idx file of unsigned bytes'): read_idx(tmp_path/'x')

def test_statistics_and_plots_refuse_bad_arguments():
    from fasterai_lite.stats import latency_table
    from fasterai_lite.plots import plot_weight_hist, plot_kernels
    net, x = digits_cnn(), torch.randn(2, 1, 8, 8)
    for call, said in ((lambda: size_mb(net, data_width=0), 'data_width must be a positive int or None, got 0'),
                       (lambda: size_mb(net, data_width=-8), 'got -8'),
                       (lambda: latency_table({'a': net}, x, repeats=0), 'repeats must be a positive int, got 0'),
                       (lambda: latency_table({}, x), 'at least one model'),
                       (lambda: compare_models({}), 'compare_models needs at least one model, got an empty dict'),
                       (lambda: model_stats(nn.Sequential(nn.ReLU())), 'Sequential has no layer to report on'),
                       (lambda: plot_weight_hist(net, ncols=0), 'ncols must be a positive int, got 0'),
                       (lambda: plot_kernels(net, '0', max_kernels=0), 'max_kernels must be a positive int, got 0'),
                       (lambda: sensitivity_targets(pd.DataFrame(), 50, .01), 'got an empty frame')):
        with pytest.raises(ValueError, match=re.escape(said)): call()

def test_lossless_checks_refuse_bad_arguments_and_nan(tmp_path):
    from fasterai_lite.prune import output_difference
    from fasterai_lite.deploy import fold_batchnorms, export_onnx, OnnxModel
    net, x = digits_cnn().eval(), torch.randn(2, 1, 8, 8)
    for call, said in ((lambda: fold_batchnorms(net, x, rtol='a'), "rtol must be a positive number, got 'a'"),
                       (lambda: export_onnx(net, tmp_path/'m.onnx', x, rtol=-1), 'rtol must be a positive number, got -1'),
                       (lambda: export_onnx(net, tmp_path/'m.onnx', x, opset='x'), "opset must be an int >= 7 or None, got 'x'")):
        with pytest.raises(ValueError, match=re.escape(said)): call()
    assert not list(tmp_path.iterdir())  # refused before any work
    broken = copy.deepcopy(net)
    with torch.no_grad(): broken[0].weight[0] = float('nan')
    assert output_difference(net, broken, x) == float('inf')  # a NaN fails the lossless check
    export_onnx(net, tmp_path/'m.onnx', x[:1])
    with pytest.raises(ValueError, match=r"takes 1 input\(s\) \['input0'\], got 2"): OnnxModel(tmp_path/'m.onnx')(x, x)

def test_scan_refuses_criteria_that_need_reference_weights():
    learn = Learner(digits_dls(), digits_cnn(), loss_func=nn.CrossEntropyLoss(), metrics=accuracy)
    before = snapshot(learn.model)
    with pytest.raises(ValueError, match=r"criteria 'movement' compares the weights with their 'init' ones, which a scan does not have"):
        sensitivity_scan(learn, criteria='movement')
    assert unchanged(learn.model, before)
