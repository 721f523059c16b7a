"Pruner: lossless compaction of real architectures (random init, no downloads), edge cases, and the end-of-fit hand-off."
import copy, pytest, torch, torch.nn as nn
import torchvision.models as tvm
from fastai.learner import Learner, load_learner
from fastai.callback.core import Callback
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
from fasterai_lite.sparsifier import Sparsifier
from fasterai_lite.callback import SparsifyCallback
from fasterai_lite.prune import Pruner, output_difference
from fasterai_lite.stats import param_count
from fasterai_lite.data import vgg_cifar
from helpers import randomize_norms, snapshot, unchanged

def lenet():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84),
                         nn.ReLU(), nn.Linear(84, 10))

class MnistNet(nn.Module):
    "PyTorch's MNIST example: conv-conv-pool-flatten-fc-fc"
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)
    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv2(torch.relu(self.conv1(x)))), 2)
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))

def mlp(): return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))

def fastai_resnet18():
    from fastai.vision.learner import create_vision_model
    return create_vision_model(tvm.resnet18, n_out=10, pretrained=False)

def fastai_xresnet(name):
    "fastai's own xresnet family, with the head vision_learner puts on it"
    from fastai.vision import models
    from fastai.vision.learner import create_vision_model
    return create_vision_model(getattr(models.xresnet, name), n_out=10, pretrained=False)

def vit():
    "A ViT-B/16 on 32x32 images (4 patches), its zero-initialised head made random so that every zero is ours"
    model = tvm.vit_b_16(weights=None, image_size=32)
    nn.init.normal_(model.heads.head.weight, std=.02)
    return model

CASES = {  # model, input shape, and what to sparsify: (layer type, granularity) pairs, each coupled
    'resnet18': (lambda: tvm.resnet18(weights=None), (2, 3, 64, 64), [(nn.Conv2d, 'filter')]),
    'resnet50': (lambda: tvm.resnet50(weights=None), (2, 3, 32, 32), [(nn.Conv2d, 'filter')]),  # bottleneck blocks
    'vgg11_bn': (lambda: tvm.vgg11_bn(weights=None), (2, 3, 32, 32), [(nn.Conv2d, 'filter')]),
    'mobilenet_v2': (lambda: tvm.mobilenet_v2(weights=None), (2, 3, 64, 64), [(nn.Conv2d, 'filter')]),
    'densenet121': (lambda: tvm.densenet121(weights=None), (2, 3, 32, 32), [(nn.Conv2d, 'filter')]),
    'fastai_resnet18': (fastai_resnet18, (2, 3, 64, 64), [(nn.Conv2d, 'filter'), (nn.Linear, 'row')]),
    'vgg_cifar': (vgg_cifar, (2, 3, 32, 32), [(nn.Conv2d, 'filter'), (nn.Linear, 'row')]),
    'lenet': (lenet, (2, 1, 28, 28), [(nn.Conv2d, 'filter'), (nn.Linear, 'row')]),
    'mnist_net': (MnistNet, (2, 1, 28, 28), [(nn.Conv2d, 'filter'), (nn.Linear, 'row')]),
    'mlp': (mlp, (2, 64), [(nn.Linear, 'row')]),
    'resnext50_32x4d': (lambda: tvm.resnext50_32x4d(weights=None), (2, 3, 32, 32), [(nn.Conv2d, 'filter')]),  # grouped convs
    'regnet_x_400mf': (lambda: tvm.regnet_x_400mf(weights=None), (2, 3, 32, 32), [(nn.Conv2d, 'filter')]),
    'efficientnet_b0': (lambda: tvm.efficientnet_b0(weights=None), (2, 3, 32, 32), [(nn.Conv2d, 'filter')]),
    'mobilenet_v3_small': (lambda: tvm.mobilenet_v3_small(weights=None), (2, 3, 64, 64), [(nn.Conv2d, 'filter')]),
    'fastai_xresnet18': (lambda: fastai_xresnet('xresnet18'), (2, 3, 32, 32), [(nn.Conv2d, 'filter')]),
    'fastai_xresnext18': (lambda: fastai_xresnet('xresnext18'), (2, 3, 32, 32), [(nn.Conv2d, 'filter')]),  # grouped, in vision_learner's head
    'convnext_tiny': (lambda: tvm.convnext_tiny(weights=None), (2, 3, 32, 32), [((nn.Conv2d, nn.Linear), 'out_channel')]),  # MLP units
    'vit_b_16': (lambda: vit(), (2, 3, 32, 32), [((nn.Conv2d, nn.Linear), 'out_channel')]),  # MLP units only
    'shufflenet_v2_x0_5': (lambda: tvm.shufflenet_v2_x0_5(weights=None), (2, 3, 64, 64), [(nn.Conv2d, 'filter')]),  # channel shuffle
    'swin_t': (lambda: tvm.swin_t(weights=None), (2, 3, 64, 64), [((nn.Conv2d, nn.Linear), 'out_channel')]),  # windows: MLP units
}

@pytest.mark.parametrize('name', list(CASES))
def test_lossless_and_smaller(name):
    make, shape, what = CASES[name]
    torch.manual_seed(0)
    model = make().eval(); randomize_norms(model)
    x = torch.randn(*shape)
    for layer_type, granularity in what:
        sp = Sparsifier(model, granularity, 'local', 'large_final', layer_type=layer_type, coupled=True, example_inputs=x[:1])
        sp.sparsify_model(50); sp.remove()
    before = snapshot(model)
    pruner = Pruner(verbose=False)
    compact = pruner.prune_model(model, x)
    r = pruner.report
    assert output_difference(model, compact, x) <= 1e-5
    assert r['params_compact'] < r['params'] and r['macs_compact'] < r['macs']
    assert r['removable_fraction'] >= .95, r
    assert model(x).shape == compact(x).shape                                       # the output size never changes
    assert unchanged(model, before)   # the input model is untouched

def test_fastai_head_concat_pool_is_pruned_through():
    "AdaptiveConcatPool2d doubles the channels before BatchNorm1d and Linear: both halves go with each channel"
    model = fastai_resnet18().eval(); randomize_norms(model)
    x = torch.randn(2, 3, 64, 64)
    sp = Sparsifier(model, 'filter', 'local', 'large_final', coupled=True, example_inputs=x[:1]); sp.sparsify_model(25); sp.remove()
    compact = Pruner(verbose=False).prune_model(model, x)
    bn1d = [m for m in compact[1].modules() if isinstance(m, nn.BatchNorm1d)][0]
    last_body = [m for m in compact[0].modules() if isinstance(m, nn.Conv2d)][-1]
    assert bn1d.num_features == 2 * last_body.out_channels < 1024
    assert output_difference(model, compact, x) <= 1e-5

def test_grouped_conv_zeros_off_the_positions_are_kept_and_reported():
    "Filters of a grouped conv zeroed one by one (not the same position in every group) stay, and the report says why"
    model = tvm.resnext50_32x4d(weights=None).eval()
    x = torch.randn(1, 3, 32, 32)
    conv = model.layer1[0].conv2  # 128 channels in 32 groups of 4
    with torch.no_grad(): conv.weight[[0, 1, 2, 3]] = 0; model.layer1[0].bn2.weight[[0, 1, 2, 3]] = 0; model.layer1[0].bn2.bias[[0, 1, 2, 3]] = 0
    p = Pruner(verbose=False); compact = p.prune_model(model, x)
    assert compact.layer1[0].conv2.out_channels == 128 and output_difference(model, compact, x) <= 1e-5
    assert p.report['channels_kept'] == 4 and 'same position in each of its groups' in p.report['kept'][0]['reason']
    with torch.no_grad(): conv.weight[4::4] = 0; model.layer1[0].bn2.weight[4::4] = 0; model.layer1[0].bn2.bias[4::4] = 0
    compact = p.prune_model(model, x)  # position 0 of every group is now zero: those 32 go
    assert compact.layer1[0].conv2.out_channels == 96 and compact.layer1[0].conv2.groups == 32 and output_difference(model, compact, x) <= 1e-5

def test_transformer_mlp_units_go_attention_and_residual_stream_stay():
    model = vit().eval()
    x = torch.randn(1, 3, 32, 32)
    sp = Sparsifier(model, 'out_channel', 'local', 'large_final', coupled=True, layer_type=(nn.Conv2d, nn.Linear), example_inputs=x)
    assert {n for n, r in sp.removable.items() if r} == {f'encoder.layers.encoder_layer_{i}.mlp.0' for i in range(12)}
    sp.sparsify_model(50); sp.remove()
    compact = Pruner(verbose=False).prune_model(model, x)
    block = compact.encoder.layers[0]
    assert (block.mlp[0].out_features, block.mlp[3].in_features) == (1536, 1536)
    assert block.self_attention.in_proj_weight.shape == (2304, 768) and compact.conv_proj.out_channels == 768
    assert output_difference(model, compact, x) <= 1e-5

class Shuffled(nn.Module):
    "A channel shuffle between two convs, as in ShuffleNet: channel i of `a` reaches another input of `b`"
    def __init__(self): super().__init__(); self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 4, 1)
    def forward(self, x):
        y = self.a(x); n, c, h, w = y.shape
        return self.b(y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w))

def test_channel_shuffle_is_kept_with_the_reason():
    torch.manual_seed(0)
    model, x = Shuffled().eval(), torch.randn(2, 3, 8, 8)
    sp = Sparsifier(model, 'filter', 'local', 'large_final', coupled=True, example_inputs=x[:1]); sp.sparsify_model(50); sp.remove()
    p = Pruner(verbose=False); compact = p.prune_model(model, x)
    assert output_difference(model, compact, x) <= 1e-5 and compact.a.out_channels == 8
    assert 'channel shuffle' in p.report['kept'][0]['reason']
    with pytest.raises(RuntimeError, match='removing them alone changes the outputs'): Pruner(verbose=False, strict=True).prune_model(model, x)

class NumpyInside(nn.Module):
    "Reads an activation with .numpy(): fine without gradients, but the tracer follows autograd"
    def __init__(self): super().__init__(); self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1)
    def forward(self, x):
        y = self.a(x)
        return self.b(y / float(abs(y.numpy()).max()))

def test_untraceable_model_comes_back_whole_with_the_reason():
    model, x = NumpyInside().eval(), torch.randn(1, 3, 8, 8)
    p = Pruner(verbose=False); compact = p.prune_model(model, x)
    assert output_difference(model, compact, x) == 0 and 'could not trace the channel graph of NumpyInside' in p.report['kept'][0]['reason']
    with pytest.raises(ValueError, match='could not trace the channel graph of NumpyInside'):
        Sparsifier(model, 'filter', 'local', 'large_final', coupled=True, example_inputs=x)

def test_uncoupled_residual_zeros_are_kept():
    "Filters zeroed layer by layer in a ResNet: channels that are zero in only some producers of a sum stay"
    model = tvm.resnet18(weights=None).eval(); randomize_norms(model)
    x = torch.randn(2, 3, 64, 64)
    sp = Sparsifier(model, 'filter', 'local', 'large_final'); sp.sparsify_model(50); sp.remove()
    p = Pruner(verbose=False); compact = p.prune_model(model, x)
    assert output_difference(model, compact, x) <= 1e-5
    assert p.report['removable_fraction'] < .9  # what the coupled mode is for
    zero = lambda conv: conv.weight.flatten(1).abs().sum(1) == 0
    in_all = zero(model.conv1) & zero(model.layer1[0].conv2) & zero(model.layer1[1].conv2)
    assert zero(model.layer1[0].conv2).sum() == 32 and in_all.sum() < 32
    assert compact.layer1[0].conv2.out_channels == 64 - in_all.sum()  # only channels zero in every producer of the sum go

def test_nothing_to_remove(capsys):
    model = vgg_cifar().eval()
    compact = Pruner().prune_model(model, torch.randn(2, 3, 32, 32))
    assert 'no zero channel' in capsys.readouterr().out
    assert compact is not model and all(torch.equal(a, b) for a, b in zip(compact.state_dict().values(), model.state_dict().values()))

def test_all_filters_zero_keeps_one():
    model = vgg_cifar().eval()
    with torch.no_grad(): model[0].weight.zero_(); model[0].bias.zero_(); model[1].weight.zero_(); model[1].bias.zero_()
    with pytest.warns(UserWarning, match="every channel of \\['0'\\] is zero"):
        compact = Pruner(verbose=False).prune_model(model, torch.randn(2, 3, 32, 32))
    assert compact[0].out_channels == 1 and compact[3].in_channels == 1
    assert output_difference(model, compact, torch.randn(2, 3, 32, 32)) <= 1e-5

def test_bfloat16_and_train_mode_kept():
    model = vgg_cifar().to(torch.bfloat16).train()
    sp = Sparsifier(model, 'filter', 'local', 'large_final'); sp.sparsify_model(50); sp.remove()
    x = torch.randn(2, 3, 32, 32, dtype=torch.bfloat16)
    compact = Pruner(verbose=False).prune_model(model, x)
    assert compact[0].weight.dtype == torch.bfloat16 and compact[0].out_channels == 16
    assert output_difference(model, compact, x) <= 1e-5  # compared in float32 copies
    assert model.training and compact.training and all(m.training for m in model.modules())

def test_example_inputs_guessed():
    model = MnistNet().eval()
    with torch.no_grad(): model.conv2.weight[:10] = 0; model.conv2.bias[:10] = 0
    compact = Pruner(verbose=False).prune_model(model)  # 28x28 found from the model itself
    assert compact.conv2.out_channels == 54 and compact.fc1.in_features == 54 * 144

def test_blocked_channels_are_kept_and_named_or_refused_with_strict():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.ReLU(), nn.Conv2d(8, 4, 3))
    with torch.no_grad(): model[0].weight[:2] = 0; model[0].bias[:2] = 0
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(ValueError, match="'1' \\(GroupNorm\\)"): Pruner(verbose=False, strict=True).prune_model(model, x)
    p = Pruner(verbose=False)
    compact = p.prune_model(model, x)
    assert compact[0].out_channels == 8 and p.report['channels_kept'] == 2 and "'1' (GroupNorm)" in p.report['kept'][0]['reason']
    assert output_difference(model, compact, x) <= 1e-5 and model[0].out_channels == 8

def test_prune_bad_pruner_argument():
    with pytest.raises(TypeError, match="pruner must be a Pruner"): SparsifyCallback(50, 'filter', 'local', 'large_final', 'one_shot', pruner='yes')
    with pytest.raises(ValueError, match="coupled=True traces the whole learn.model"):
        SparsifyCallback(50, 'filter', 'local', 'large_final', 'one_shot', coupled=True, model=nn.Linear(2, 2))

class KeepDense(Callback):
    "Copies the model just before the end-of-fit compaction (which runs at order 70)"
    order = 65
    def after_fit(self): self.dense = copy.deepcopy(self.learn.model)

def synthetic_dls():
    "Two classes of random 16x16 images, as fastai Datasets (which `learn.export` needs)"
    from fastai.data.core import Datasets
    from fastai.data.transforms import ItemGetter
    x = torch.randn(512, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    items = list(zip(x, (x[:, 0].mean((1, 2)) > 0).long()))
    dsets = Datasets(items, [[ItemGetter(0)], [ItemGetter(1)]], splits=[list(range(384)), list(range(384, 512))])
    return dsets.dataloaders(bs=32, shuffle=True)

def small_cnn(): return vgg_cifar((16, 32, 'M'), n_out=2, size=16)

def test_hand_off_at_end_of_fit(tmp_path):
    set_seed(0)
    learn = Learner(synthetic_dls(), small_cnn(), loss_func=nn.CrossEntropyLoss(), metrics=accuracy, path=tmp_path)
    keep = KeepDense()
    cb = SparsifyCallback(50, 'filter', 'global', 'large_final', 'agp', coupled=True, prune=True)
    learn.fit_one_cycle(3, 1e-2, cbs=[cb, keep])
    compact = learn.model
    assert [m.out_channels for m in compact.modules() if isinstance(m, nn.Conv2d)] != [16, 32]
    assert param_count(compact) < param_count(keep.dense)
    assert cb.prune_report.loc['params', 'compact'] == param_count(compact) and cb.prune_report.loc['macs', 'ratio'] > 1
    after = learn.validate()
    learn.model = keep.dense; before = learn.validate(); learn.model = compact
    assert abs(before[0] - after[0]) <= 1e-5 * abs(before[0]) and before[1] == after[1]
    assert not any(k.endswith(('_mask', '_init_weights', '_old_weights')) for k in compact.state_dict())
    learn.fit(1, 1e-3)  # a fresh optimizer on the new parameters: training goes on
    learn.export('compact.pkl')
    loaded = load_learner(tmp_path / 'compact.pkl')
    x = learn.dls.valid.one_batch()[0]
    assert torch.allclose(loaded.model.eval()(x), learn.model.eval()(x))
    torch.save(learn.model, tmp_path / 'm.pth')
    assert torch.equal(torch.load(tmp_path / 'm.pth', weights_only=False).eval()(x), learn.model.eval()(x))

def test_one_callback_prunes_conv_filters_and_linear_units_together():
    set_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(16 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 2))
    learn = Learner(synthetic_dls(), model, loss_func=nn.CrossEntropyLoss(), metrics=accuracy)
    cb = SparsifyCallback(50, 'out_channel', 'local', 'large_final', 'agp', layer_type=(nn.Conv2d, nn.Linear), coupled=True, prune=True)
    learn.fit_one_cycle(2, 1e-2, cbs=cb)
    compact = learn.model
    assert (compact[0].out_channels, compact[5].in_features, compact[5].out_features, compact[7].in_features) == (8, 8 * 8 * 8, 16, 16)
    assert compact[7].out_features == 2  # the output stays

class Ghost(nn.Module):
    "GhostNet-style: a cheap depthwise conv's channels concatenated to the primary ones, then sliced"
    def __init__(self):
        super().__init__()
        self.primary, self.cheap = nn.Conv2d(3, 6, 1), nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.mid, self.head = nn.Conv2d(8, 8, 1), nn.Conv2d(8, 4, 1)
    def forward(self, x):
        a = self.primary(x)
        return self.head(torch.relu(self.mid(torch.cat([a, self.cheap(a)], 1)[:, :8])))

def test_cat_then_slice_channels_are_kept_never_emptied():
    model, x = Ghost().eval(), torch.randn(1, 3, 8, 8)
    sp = Sparsifier(model, 'filter', 'local', 'large_final', coupled=True, example_inputs=x)
    assert sp.removable == {'primary': False, 'cheap': False, 'mid': True, 'head': False}
    with torch.no_grad():  # every channel of the concatenated group zero
        for m in (model.primary, model.cheap): m.weight.zero_(); m.bias.zero_()
    sp.sparsify_model(50); sp.remove()
    p = Pruner(verbose=False); compact = p.prune_model(model, x)
    assert (compact.primary.out_channels, compact.cheap.out_channels, compact.mid.out_channels) == (6, 6, 4)
    assert 'SliceBackward0' in p.report['kept'][0]['reason'] and output_difference(model, compact, x) <= 1e-5

class GhostModule(nn.Module):
    "GhostNet's module: a primary 1x1 conv, a depthwise 'cheap' conv of its output, concatenated, sliced to `cout`"
    def __init__(self, cin, cout, act=True):
        super().__init__(); init, self.cout = -(-cout // 2), cout
        A = (lambda: nn.ReLU(inplace=True)) if act else nn.Identity
        self.primary = nn.Sequential(nn.Conv2d(cin, init, 1, bias=False), nn.BatchNorm2d(init), A())
        self.cheap = nn.Sequential(nn.Conv2d(init, init, 3, padding=1, groups=init, bias=False), nn.BatchNorm2d(init), A())
    def forward(self, x): p = self.primary(x); return torch.cat([p, self.cheap(p)], 1)[:, :self.cout]

class SqueezeExcite(nn.Module):
    def __init__(self, c, r): super().__init__(); self.reduce, self.expand = nn.Conv2d(c, r, 1), nn.Conv2d(r, c, 1)
    def forward(self, x): return x * nn.functional.hardsigmoid(self.expand(torch.relu(self.reduce(x.mean((2, 3), keepdim=True)))))

class GhostBottleneck(nn.Module):
    "A ghost module, a depthwise stride-2 conv, squeeze-excitation, a ghost module without activation, a shortcut added in place"
    def __init__(self, cin, mid, cout, stride=1, se=0):
        super().__init__()
        self.g1 = GhostModule(cin, mid)
        self.dw = nn.Sequential(nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid)) if stride > 1 else nn.Identity()
        self.se = SqueezeExcite(mid, max(4, int(mid * se) // 4 * 4)) if se else nn.Identity()
        self.g2 = GhostModule(mid, cout, act=False)
        self.short = nn.Identity() if cin == cout and stride == 1 else nn.Sequential(
            nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
    def forward(self, x):
        y = self.g2(self.se(self.dw(self.g1(x)))); y += self.short(x); return y

def ghost_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        GhostBottleneck(16, 16, 16), GhostBottleneck(16, 48, 24, 2), GhostBottleneck(24, 72, 24), GhostBottleneck(24, 72, 40, 2, se=.25),
        GhostBottleneck(40, 120, 40, se=.25), GhostBottleneck(40, 240, 80, 2), GhostBottleneck(80, 200, 80), GhostBottleneck(80, 480, 112, se=.25),
        nn.Conv2d(112, 160, 1), nn.BatchNorm2d(160), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(160, 10)).eval()

def test_ghostnet_compacts_losslessly_and_names_what_it_keeps():
    "GhostNet's bottleneck once gave a conv with 0 output channels, and the output check crashed inside the forward"
    net, x = ghost_net(), torch.randn(2, 3, 64, 64)
    randomize_norms(net)
    Sparsifier(net, 'out_channel', 'local', 'large_final', coupled=True, example_inputs=x).sparsify_model(50)
    p = Pruner(verbose=False)
    compact = p.prune_model(net, x)
    assert output_difference(net, compact, x) <= 1e-5 and param_count(compact) < param_count(net) / 1.3
    assert all(m.out_channels > 0 for m in compact.modules() if isinstance(m, nn.Conv2d))
    kept = p.kept_frame()
    assert len(kept) and kept.reason.str.contains('changes the outputs').all()  # the groups through the concatenation and slice

def test_tied_weights_are_refused_by_name_before_anything_changes():
    from fasterai_lite.interop import to_torch_prune
    tied = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    tied[2].weight = tied[0].weight
    before = snapshot(tied)
    for what, call in (('A Sparsifier', lambda: Sparsifier(tied, 'row', 'local', 'large_final', layer_type=nn.Linear)),
                       ('Pruner', lambda: Pruner().prune_model(tied)), ('to_torch_prune', lambda: to_torch_prune(tied))):
        with pytest.raises(ValueError, match=rf"{what} cannot work on tied weights: modules '0' and '2' share one weight tensor"): call()
    assert tied[2].weight is tied[0].weight and unchanged(tied, before)
