"""Low-rank layers on fastai's own learners: the head of a `vision_learner` resnet18 fed from an image folder, factorized
by energy, fine-tuned with `fit`, exported and loaded back; then made 8-bit."""
import pytest, torch, torch.nn as nn
from fastai.vision.all import ImageDataLoaders, Resize, Normalize, imagenet_stats, vision_learner, resnet18, accuracy, set_seed, load_learner
from fasterai_lite.all import *
from helpers import digit_folder, snapshot, unchanged

@pytest.fixture(scope='module')
def learn(tmp_path_factory):
    folder = digit_folder(tmp_path_factory.mktemp('data'), 16)
    set_seed(0)
    dls = ImageDataLoaders.from_folder(folder, valid_pct=0.2, seed=0, bs=32, num_workers=0, item_tfms=Resize(32),
                                       batch_tfms=Normalize.from_stats(*imagenet_stats))
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=accuracy)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-3)
    return learn

def test_the_head_of_a_vision_learner_goes_low_rank_and_fine_tunes(learn, tmp_path):
    heads = [n for n, m in learn.model.named_modules() if isinstance(m, nn.Linear)]
    assert heads == ['1.4', '1.8']  # fastai's head: 1024 -> 512 -> classes
    learn.freeze()  # as vision_learner leaves a pretrained body
    dense, frozen = param_count(learn.model), learn.opt.frozen_idx
    assert frozen > 0
    learn.to_low_rank(energy=.8)
    report = learn.low_rank_report
    assert (report.energy >= .8).all() and report.loc['1.4', 'params_after'] < report.loc['1.4', 'params']
    assert param_count(learn.model) < dense and learn.opt.frozen_idx == frozen
    factors = [p.clone() for p in learn.model[1][4].parameters()]
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)  # the new optimizer trains the factors
    assert not any(torch.equal(a, b) for a, b in zip(factors, learn.model[1][4].parameters()))
    assert all(not p.requires_grad for p in learn.model[0].parameters() if p.ndim > 1)  # the body stays frozen
    loss, acc = learn.validate()
    assert 0 <= acc <= 1
    learn.export(tmp_path/'lowrank.pkl')
    back = load_learner(tmp_path/'lowrank.pkl')
    x = learn.dls.one_batch()[0]
    with torch.no_grad(): assert torch.allclose(back.model.eval()(x), learn.model.eval()(x), atol=1e-5)
    report8 = quantize_onnx(learn.model, tmp_path/'lowrank_int8.onnx', learn.dls, n_batches=1, min_agreement=.5)
    assert report8.smaller > 3

def test_bad_ranks_are_refused_and_the_model_never_changes(learn):
    before = snapshot(learn.model)
    with pytest.raises(ValueError, match="rank must be a positive int or None, got 0"): low_rank(learn.model, rank=0)
    with pytest.raises(ValueError, match=r"energy must be a share in \(0, 1\], got 1.5"): low_rank(learn.model, energy=1.5)
    with pytest.raises(ValueError, match="give rank or energy, one of them"): low_rank(learn.model, rank=4, energy=.5)
    last = [n for n, m in learn.model.named_modules() if isinstance(m, nn.Linear)][-1]
    most = min(learn.model.get_submodule(last).weight.shape)
    with pytest.raises(ValueError, match=f"rank must be at most {most} for layer '{last}'"): low_rank(learn.model, rank=most + 1, layers=[last])
    with pytest.raises(ValueError, match="The model has no layer 'fc'"): low_rank(learn.model, rank=2, layers=['fc'])
    assert unchanged(learn.model, before)
