"A training run's whole life: checkpoint and resume, the best checkpoint at the target, interruptions, fine_tune, mixed precision."
import io, os, warnings, pytest, numpy as np, torch, torch.nn as nn
from functools import partial
from fastai.optimizer import SGD
from fastai.learner import Learner
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.tracker import SaveModelCallback
from fastai.callback.fp16 import MixedPrecision
from fastai.metrics import accuracy
from fastai.torch_core import set_seed, params
from fasterai_lite.all import *
from fasterai_lite.data import tensor_dls, digits_dls, digits_cnn
from helpers import snapshot, unchanged

def learner(path, model=None, **kw):
    "Digits, with the training batches in a fixed order, so that a resumed run sees the batches an uninterrupted one does"
    set_seed(0)
    learn = Learner(digits_dls(), model or digits_cnn(), loss_func=nn.CrossEntropyLoss(), metrics=accuracy, path=path, **kw)
    learn.dls.train.shuffle = False
    return learn

def ours(learn) -> list:
    "Everything of this library left on the learner or its model"
    bufs = [n for n, _ in learn.model.named_buffers() if n.rsplit('.', 1)[-1] in ('_mask', '_init_weights', '_old_weights')]
    cbs = [c for c in learn.cbs if type(c).__module__.startswith('fasterai_lite')]
    return bufs + cbs + [m for m in learn.metrics if m.name == 'sparsity']

def weights(learn): return {n: m.weight.detach().clone() for n, m in learn.model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}

SETTINGS = dict(sparsity=60, granularity='weight', context='global', criteria='movement', schedule='agp', layer_type=(nn.Conv2d, nn.Linear))

@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    "4 epochs with a checkpoint (and its sparsity state) at the end of every epoch"
    path = tmp_path_factory.mktemp('run')
    learn = learner(path)
    learn.fit_one_cycle(4, 1e-2, cbs=[SparsifyCallback(**SETTINGS), SaveModelCallback(every_epoch=True, with_opt=True, fname='ck')])
    return path, weights(learn)

def test_resume_mid_schedule_ends_like_an_uninterrupted_run(uninterrupted):
    path, final = uninterrupted
    assert (path/'models'/'ck_1.pth.sparsity').exists()
    learn = learner(path)
    learn.load('ck_1')  # end of epoch 1: the schedule is mid-ramp (agp ends at 70% of training)
    learn.fit_one_cycle(4, 1e-2, start_epoch=2, cbs=SparsifyCallback(**SETTINGS, resume='ck_1'))
    resumed = weights(learn)
    for n, w in final.items():
        assert torch.equal(resumed[n] == 0, w == 0), n  # the same masks
        torch.testing.assert_close(resumed[n], w, rtol=1e-4, atol=1e-5)
    assert not ours(learn)

def test_resume_with_other_settings_names_the_difference(uninterrupted):
    path, _ = uninterrupted
    learn = learner(path); learn.load('ck_1')
    before = weights(learn)
    with pytest.raises(ValueError, match=r"saved with other settings: sparsity: 60 -> 70"):
        learn.fit_one_cycle(4, 1e-2, start_epoch=2, cbs=SparsifyCallback(**{**SETTINGS, 'sparsity': 70}, resume='ck_1'))
    learn.load('ck_1')
    with pytest.raises(ValueError, match=r"granularity: 'weight' -> 'row'.*criteria: 'movement' -> 'large_final'"):
        learn.fit_one_cycle(4, 1e-2, start_epoch=2, cbs=SparsifyCallback(**{**SETTINGS, 'granularity': 'row', 'criteria': 'large_final', 'layer_type': nn.Linear}, resume='ck_1'))
    learn.load('ck_1')
    n = len(learn.dls.train)
    with pytest.raises(ValueError, match=rf"ck_1.pth.sparsity was saved after {2 * n} training batches \(epoch 1\), but start_epoch=3 resumes after {3 * n}: resume from the checkpoint saved at the end of epoch 2"):
        learn.fit_one_cycle(4, 1e-2, start_epoch=3, cbs=SparsifyCallback(**SETTINGS, resume='ck_1'))
    with pytest.raises(ValueError, match=r"resume='ck_1'\) continues the run saved in .*ck_1.pth.sparsity after epoch 1: fit with start_epoch=2"):
        learn.fit_one_cycle(4, 1e-2, cbs=SparsifyCallback(**SETTINGS, resume='ck_1'))
    assert not ours(learn) and all(torch.equal(w, before[n]) for n, w in weights(learn).items())  # refused before training

def test_resume_into_a_model_with_other_layer_names(uninterrupted):
    path, _ = uninterrupted
    learn = learner(path, model=nn.Sequential(digits_cnn()))
    learn.load('ck_1', strict=False)
    with pytest.raises(ValueError, match=r"this model's \['0.0', '0.3', '0.7', '0.12'\] are not in it, and its \['0', '3', '7', '12'\] are not in this model"):
        learn.fit_one_cycle(4, 1e-2, start_epoch=2, cbs=SparsifyCallback(**SETTINGS, resume='ck_1'))
    assert not ours(learn)

def test_resume_without_a_saved_state_warns(tmp_path):
    learn = learner(tmp_path)
    with pytest.warns(UserWarning, match=r"start_epoch=1\) without SparsifyCallback\(resume=<checkpoint>\)"):
        learn.fit(2, 1e-2, start_epoch=1, cbs=SparsifyCallback(**SETTINGS))
    with pytest.raises(FileNotFoundError, match=r"No sparsity state at .*models/nothing.pth.sparsity"):
        learn.fit(2, 1e-2, start_epoch=1, cbs=SparsifyCallback(**SETTINGS, resume='nothing'))
    with pytest.raises(TypeError, match=r"resume must be the name or path of a checkpoint"): SparsifyCallback(**SETTINGS, resume=io.BytesIO())

def test_resume_refuses_weights_the_state_was_not_saved_with(uninterrupted):
    "A checkpoint not loaded, or overwritten since (here by a plain learn.save of other weights): refused before training"
    path, _ = uninterrupted
    learn = learner(path)
    before = weights(learn)
    with pytest.raises(ValueError, match=r"weights are not the ones this sparsity state was saved with: learn.load the checkpoint .*ck_1.pth.sparsity"):
        learn.fit_one_cycle(4, 1e-2, start_epoch=2, cbs=SparsifyCallback(**SETTINGS, resume='ck_1'))
    assert not ours(learn) and all(torch.equal(w, before[n]) for n, w in weights(learn).items())

@pytest.mark.parametrize('damage', ['truncated', 'random', 'mask_of_2s', 'float_reference_as_int', 'missing_key'])
def test_a_damaged_state_file_is_named_and_nothing_changes(uninterrupted, tmp_path, damage):
    path, _ = uninterrupted
    models = tmp_path/'models'; models.mkdir()
    for f in ('ck_1.pth', 'ck_1.pth.sparsity'): (models/f).write_bytes((path/'models'/f).read_bytes())
    state_file = models/'ck_1.pth.sparsity'
    if damage == 'truncated': state_file.write_bytes(state_file.read_bytes()[:len(state_file.read_bytes()) // 2])
    elif damage == 'random': state_file.write_bytes(os.urandom(4096))
    else:
        state = torch.load(state_file, weights_only=True)
        masks = state['sparsifier']['masks']
        n = next(iter(masks['mask']))
        if damage == 'mask_of_2s': masks['mask'][n] = masks['mask'][n].to(torch.uint8) * 2
        elif damage == 'float_reference_as_int': masks['init'][n] = masks['init'][n].to(torch.int64)  # movement's reference
        else: del state['last_plan']
        torch.save(state, state_file)
    learn = learner(tmp_path); learn.load('ck_1')
    before = weights(learn)
    message = {'truncated': 'cannot be read', 'random': 'cannot be read', 'mask_of_2s': "holds values other than 0 and 1",
               'float_reference_as_int': "is not a floating-point tensor", 'missing_key': r"\['last_plan'\] missing"}[damage]
    with pytest.raises(ValueError, match=rf"(?s){message}.*ck_1.pth.sparsity|ck_1.pth.sparsity.*{message}"):
        learn.fit_one_cycle(4, 1e-2, start_epoch=2, cbs=SparsifyCallback(**SETTINGS, resume='ck_1'))
    assert not ours(learn) and all(torch.equal(w, before[n]) for n, w in weights(learn).items())

def test_an_interrupted_state_write_keeps_the_last_whole_state(tmp_path, monkeypatch):
    "A Ctrl-C while the state file is written: the previous one stays whole, and no temporary file is left"
    learn = learner(tmp_path)
    class CtrlCInSecondWrite(Callback):
        order = 65  # after SaveModelCallback saved epoch 1's checkpoint, before the state is written beside it
        def after_epoch(self):
            if self.epoch != 1: return
            def interrupted(obj, f, *a, **k): f.write(b'half a state'); raise KeyboardInterrupt
            monkeypatch.setattr(torch, 'save', interrupted)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(2, 1e-2, cbs=[SparsifyCallback(**SETTINGS), SaveModelCallback(every_epoch=True, fname='ck'), CtrlCInSecondWrite()])
    monkeypatch.undo()
    models = tmp_path/'models'
    assert sorted(p.name for p in models.iterdir()) == ['ck_0.pth', 'ck_0.pth.sparsity', 'ck_1.pth']
    assert torch.load(models/'ck_0.pth.sparsity', weights_only=True)['epoch'] == 0 and not ours(learn)

def test_checkpoint_names_never_share_a_state_file(tmp_path):
    "A checkpoint named `ck_0.sparsity` once overwrote the state of `ck_0`"
    learn = learner(tmp_path)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2, cbs=[SparsifyCallback(**SETTINGS), SaveModelCallback(every_epoch=True, fname='ck'),
                                SaveModelCallback(fname='ck_0.sparsity')])
    models = tmp_path/'models'
    assert sorted(p.name for p in models.iterdir()) == ['ck_0.pth', 'ck_0.pth.sparsity', 'ck_0.sparsity.pth', 'ck_0.sparsity.pth.sparsity']
    assert torch.load(models/'ck_0.pth.sparsity', weights_only=True)['epoch'] == 0

def test_fastais_save_and_load_are_fastais(tmp_path):
    "Importing the library replaces no Learner method; save and load take file objects with the callback attached"
    from fastai.learner import Learner as L
    ours_on_learner = sorted(n for n, f in vars(L).items() if getattr(f, '__module__', '').startswith('fasterai_lite'))
    assert ours_on_learner == ['load_compact', 'to_low_rank']  # additions, not replacements: fastai has neither
    assert L.save.__module__ == L.load.__module__ == 'fastai.learner' and L.fine_tune.__module__ == 'fastai.callback.schedule'
    learn = learner(tmp_path)
    learn.add_cb(SparsifyCallback(**SETTINGS))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    buf = io.BytesIO(); learn.save(buf); buf.seek(0)
    other = learner(tmp_path); other.load(buf)
    assert all(torch.equal(w, weights(learn)[n]) for n, w in weights(other).items())

def test_load_then_lr_find_then_resume_keeps_the_masks(uninterrupted):
    "lr_find between the load and the resumed fit once lost the state handed over by learn.load"
    path, final = uninterrupted
    learn = learner(path); learn.load('ck_1')
    with learn.no_bar(), learn.no_logging():
        learn.lr_find(num_it=5, show_plot=False)
        learn.fit_one_cycle(4, 1e-2, start_epoch=2, cbs=SparsifyCallback(**SETTINGS, resume='ck_1'))
    assert all(torch.equal(w == 0, final[n] == 0) for n, w in weights(learn).items())

def test_best_checkpoint_is_at_the_target_sparsity(tmp_path):
    "SaveModelCallback(monitor='valid_loss') picks its best among the epochs at the final sparsity"
    learn = learner(tmp_path)
    cb, best = SparsifyCallback(60, 'filter', 'global', 'large_final', 'agp'), SaveModelCallback(monitor='valid_loss', fname='best')
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)  # the final target is never applied after the fact
        learn.fit_one_cycle(5, 1e-2, cbs=[cb, best])
    losses = [v[1] for v in learn.recorder.values]
    settled = 3  # agp ends at 70% of 5 epochs: the last pruning event is in epoch 3
    assert best.best == min(losses[settled:])
    assert sum(int((m.weight.flatten(1).abs().sum(1) == 0).sum()) for m in learn.model.modules() if isinstance(m, nn.Conv2d)) == 48  # 60% of 80

class Raise(Callback):
    "Raises `exc` at `event` of training batch `at`, after recording the masks, and after the optimizer step has moved pruned weights"
    order = 30  # before SparsifyCallback's after_step re-applies the masks
    def __init__(self, exc, event, at=30): self.exc, self.event, self.at = exc, event, at
    def _maybe(self, event):
        if event != self.event or not self.training or self.train_iter != self.at: return
        sp = self.learn.sparsify.sparsifier
        self.masks = {n: sp.masks.mask(n).clone() for n in sp.layers if sp.masks.mask(n) is not None}
        raise self.exc
    def after_loss(self): self._maybe('after_loss')
    def after_step(self): self._maybe('after_step')

@pytest.mark.parametrize('exc, event', [(CancelFitException(), 'after_step'), (KeyboardInterrupt(), 'after_loss'),
                                        (RuntimeError('boom'), 'after_step')], ids=['cancel_fit', 'ctrl_c_mid_batch', 'error_in_after_step'])
def test_an_interrupted_fit_leaves_masks_applied_and_nothing_of_ours(tmp_path, exc, event):
    learn, stop = learner(tmp_path, opt_func=partial(SGD, mom=0.9, wd=1e-2)), Raise(exc, event)
    cb = SparsifyCallback(50, 'weight', 'global', 'large_final', 'lin', layer_type=(nn.Conv2d, nn.Linear), update_every=1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        if isinstance(exc, CancelFitException): learn.fit(3, 1e-2, cbs=[cb, stop])
        else:
            with pytest.raises(type(exc)): learn.fit(3, 1e-2, cbs=[cb, stop])
    w = weights(learn)
    assert stop.masks and all((w[n][~m.expand_as(w[n])] == 0).all() for n, m in stop.masks.items())  # no pruned unit grew back
    assert not ours(learn)
    learn.fit(1, 1e-2)  # a second fit works normally, without our column
    assert 'sparsity' not in learn.recorder.metric_names
    learn.fit(1, 1e-2, cbs=SparsifyCallback(30, 'filter', 'local', 'large_final', 'one_shot'))
    assert not ours(learn)

def test_a_callback_added_with_add_cb_is_cleaned_up_by_the_next_fit(tmp_path):
    learn = learner(tmp_path)
    cb = SparsifyCallback(50, 'filter', 'local', 'large_final', 'agp')
    learn.add_cb(cb)
    with pytest.raises(RuntimeError): learn.fit(2, 1e-2, cbs=Raise(RuntimeError('boom'), 'after_step'))
    learn.fit(1, 1e-2)  # fastai never removes an add_cb callback, so the next fit starts by clearing the last one's state
    learn.remove_cb(cb)
    assert not ours(learn) and cb.report is not None

def test_fine_tune_prunes_in_the_second_fit_and_compacts_once(tmp_path, capsys):
    learn = learner(tmp_path, splitter=lambda m: [params(m[:-1]), params(m[-1])])  # body and head, as vision_learner splits them
    cb = SparsifyCallback(50, 'filter', 'local', 'large_final', 'agp', prune=True)
    learn.fine_tune(2, 1e-2, cbs=cb)
    assert [m.out_channels for m in learn.model.modules() if isinstance(m, nn.Conv2d)] == [8, 16, 16]  # halved once
    assert "3 of the 3 layers to sparsify are frozen (fine_tune's first fit" in capsys.readouterr().out
    assert not ours(learn)

def test_a_frozen_learner_stays_dense_until_unfrozen(tmp_path):
    "Read from the learner's state, not from fine_tune: learn.freeze() then fit leaves the body dense; unfreeze, and it sparsifies"
    learn = learner(tmp_path, splitter=lambda m: [params(m[:-1]), params(m[-1])])
    cb = SparsifyCallback(50, 'filter', 'local', 'large_final', 'one_shot')
    with learn.no_bar(), learn.no_logging():
        learn.freeze(); learn.fit(1, 1e-2, cbs=cb)
        assert sum(int((w.flatten(1).abs().sum(1) == 0).sum()) for n, w in weights(learn).items() if w.ndim == 4) == 0
        learn.fit(1, 1e-2, cbs=SparsifyCallback(50, 'row', 'local', 'large_final', 'one_shot', layer_type=nn.Linear))  # the head trains: sparsified
        assert int((weights(learn)['12'].abs().sum(1) == 0).sum()) == 5
        learn.unfreeze(); learn.fit(1, 1e-2, cbs=cb)
    assert sum(int((w.flatten(1).abs().sum(1) == 0).sum()) for n, w in weights(learn).items() if w.ndim == 4) == 40

def test_two_fits_with_prune_warn_that_sparsity_compounds(tmp_path):
    learn = learner(tmp_path)
    cb = SparsifyCallback(50, 'filter', 'local', 'large_final', 'one_shot', prune=True)
    learn.fit(1, 1e-2, cbs=cb)
    with pytest.warns(UserWarning, match="sparsity compounds"): learn.fit(1, 1e-2, cbs=cb)
    assert [m.out_channels for m in learn.model.modules() if isinstance(m, nn.Conv2d)] == [4, 8, 8]

class Zeros(Callback):
    "Checks after every step (once SparsifyCallback has re-applied the masks) that masked weights are exactly 0"
    order, checked = 90, 0
    def after_step(self):
        sp = self.learn.sparsify.sparsifier
        for n, m in sp.layers.items():
            mask = sp.masks.mask(n)
            if mask is not None: assert (m.weight[~mask.expand_as(m.weight)] == 0).all() and m.weight.dtype == torch.float32; self.checked += 1

@pytest.mark.parametrize('precision', ['to_fp16', 'to_bf16'])
def test_mixed_precision_keeps_masks_exact_and_compacts(tmp_path, precision):
    learn = getattr(learner(tmp_path), precision)()
    chk = Zeros()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # fp16 autocast on CPU warns that it is unsupported there and falls back
        learn.fit_one_cycle(2, 1e-2, cbs=[SparsifyCallback(50, 'filter', 'global', 'large_final', 'agp', coupled=True, prune=True), chk])
    assert chk.checked > 0 and any(isinstance(c, MixedPrecision) for c in learn.cbs)
    assert sum(m.out_channels for m in learn.model.modules() if isinstance(m, nn.Conv2d)) < 80 and not ours(learn)

@pytest.mark.parametrize('evaluate', ['validate', 'get_preds', 'lr_find'])
def test_evaluating_with_the_callback_attached_leaves_the_model_alone(tmp_path, evaluate):
    "With the callback added to the learner, evaluation (and lr_find) neither sparsifies, nor moves the schedule, nor leaves buffers"
    learn = learner(tmp_path)
    cb = SparsifyCallback(50, 'weight', 'global', 'large_final', 'agp', layer_type=(nn.Conv2d, nn.Linear))
    learn.add_cb(cb)
    with learn.no_bar(), learn.no_logging():
        learn.fit(2, 1e-2)  # a sparse fit first: its zeros must stay as they are
        before, report = snapshot(learn.model), cb.report
        if evaluate == 'lr_find': learn.lr_find(num_it=10, show_plot=False)
        else: getattr(learn, evaluate)()
    assert unchanged(learn.model, before)
    assert cb.report is report and not ours(learn)[:-1] and ours(learn)[-1] is cb  # only the callback the user added

class ValidateMidFit(Callback):
    "Calls learn.validate() at the end of the first epoch, as some callbacks do, and records the masks around it"
    order, masks = 65, None
    def after_epoch(self):
        if self.epoch or self.masks is not None: return  # validate() runs after_epoch too
        sp = self.learn.sparsify.sparsifier
        self.masks = [{n: sp.masks.mask(n).clone() for n in sp.layers if sp.masks.mask(n) is not None} for _ in range(2)]
        self.learn.validate()
        self.masks[1] = {n: sp.masks.mask(n).clone() for n in sp.layers if sp.masks.mask(n) is not None}

def test_a_validate_inside_the_fit_changes_no_mask(tmp_path):
    learn, mid = learner(tmp_path), ValidateMidFit()
    with learn.no_bar(), learn.no_logging():
        learn.fit(2, 1e-2, cbs=[SparsifyCallback(50, 'weight', 'global', 'large_final', 'lin', layer_type=(nn.Conv2d, nn.Linear)), mid])
    (a, b) = mid.masks
    assert a and list(a) == list(b) and all(torch.equal(a[n], b[n]) for n in a)
    assert not ours(learn)

def test_without_a_validation_set_the_example_comes_from_the_training_set(tmp_path):
    x, y = digits_dls().train_ds.tensors
    learn = Learner(tensor_dls((x, y), (x[:0], y[:0])), digits_cnn(), loss_func=nn.CrossEntropyLoss(), path=tmp_path)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2, cbs=SparsifyCallback(50, 'filter', 'local', 'large_final', 'one_shot', coupled=True, prune=True))
    assert [m.out_channels for m in learn.model.modules() if isinstance(m, nn.Conv2d)] == [8, 16, 16]

@pytest.mark.parametrize('sparsity', [np.float64(60), np.float32(60), np.int64(60), {'3': np.float32(60), '7': np.int64(50)}],
                         ids=['float64', 'float32', 'int64', 'dict'])
def test_numpy_numbers_give_checkpoints_that_load_and_resume(tmp_path, sparsity):
    settings = dict(SETTINGS, sparsity=sparsity, context='local')
    learn = learner(tmp_path)
    with learn.no_bar(), learn.no_logging():
        learn.fit(2, 1e-2, cbs=[SparsifyCallback(**settings), SaveModelCallback(every_epoch=True, fname='ck')])
        learn = learner(tmp_path)
        learn.load('ck_0')
        torch.load(tmp_path/'models'/'ck_0.pth.sparsity', weights_only=True)  # plain Python numbers in the saved settings
        learn.fit(2, 1e-2, start_epoch=1, cbs=SparsifyCallback(**settings, resume='ck_0'))
    assert not ours(learn)

def test_a_clean_up_that_raises_still_takes_everything_off(tmp_path, monkeypatch):
    "If re-applying the masks fails while cleaning up an interrupted fit, the rest of the clean-up still runs and fastai removes the callback"
    class BreakThenRaise(Callback):
        order = 30
        def after_step(self):
            if self.train_iter != 5: return
            def broken(masks): raise RuntimeError('masks broken')
            monkeypatch.setattr(Masks, 'apply', broken)
            raise RuntimeError('boom')
    learn = learner(tmp_path)
    with pytest.warns(UserWarning, match="cleaning up after an interrupted fit raised RuntimeError: masks broken"), pytest.raises(RuntimeError, match='boom'):
        learn.fit(1, 1e-2, cbs=[SparsifyCallback(50, 'filter', 'local', 'large_final', 'one_shot'), BreakThenRaise()])
    assert not ours(learn)
    monkeypatch.undo()
    learn.fit(1, 1e-2)  # a plain fit after it: plain
    assert 'sparsity' not in learn.recorder.metric_names
