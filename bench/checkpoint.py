"""Checkpoints: the time to save and load a fastai checkpoint with the sparsity state beside it, next to a plain one.

Model: 4 x nn.Linear(2048, 2048) on random data (as bench/memory.py), global weight sparsity at 80%, mid-fit (so the
SparsifyCallback is running, as when SaveModelCallback saves every epoch). In the same after_epoch, interleaved:
`learn.save(name)` (fastai's checkpoint with the optimizer state, plus `<name>.sparsity.pth`) against fastai's own
`Learner.save`, and `learn.load(name)` (which also puts the masks back) against fastai's own `Learner.load`.
Prints the median of 7 repeats of each, their ratio, and the file sizes.
Usage: python bench/checkpoint.py"""
import contextlib, io, statistics, tempfile, time
from pathlib import Path
import torch, torch.nn as nn
from fastai.callback.core import Callback
from fastai.learner import Learner
from fastai.torch_core import set_seed
from fasterai_lite.callback import SparsifyCallback, sparsity_state_file
from overhead import mlp, random_dls

REPEATS = 7

def seconds(f) -> float:
    t = time.perf_counter(); f(); return time.perf_counter() - t

class TimeCheckpoints(Callback):
    "Times sparse and plain saves and loads, interleaved, once the schedule has masked the model"
    order = 45
    def after_epoch(self):
        if self.epoch != self.n_epoch - 1: return
        learn, plain_save, plain_load = self.learn, Learner.save.fastai_original, Learner.load.fastai_original
        self.times = {k: [] for k in ('save', 'save plain', 'load', 'load plain')}
        for _ in range(REPEATS):
            self.times['save'].append(seconds(lambda: learn.save('sparse')))
            self.times['save plain'].append(seconds(lambda: plain_save(learn, 'plain')))
            self.times['load'].append(seconds(lambda: learn.load('sparse')))
            self.times['load plain'].append(seconds(lambda: plain_load(learn, 'plain')))
        models = learn.path/learn.model_dir
        self.sizes = {'checkpoint': (models/'sparse.pth').stat().st_size, 'state': sparsity_state_file(models/'sparse.pth').stat().st_size}

if __name__ == '__main__':
    print(f"{'criteria':<14}{'save s':>9}{'plain':>9}{'ratio':>7}{'load s':>9}{'plain':>9}{'ratio':>7}{'ckpt MB':>9}{'state MB':>10}")
    for crit in ('large_final', 'movement'):
        set_seed(0)
        learn = Learner(random_dls(8), mlp(), loss_func=nn.CrossEntropyLoss(), path=Path(tempfile.mkdtemp()))
        timer = TimeCheckpoints()
        with learn.no_bar(), learn.no_logging(), contextlib.redirect_stdout(io.StringIO()):
            learn.fit(2, 1e-3, cbs=[SparsifyCallback(80, 'weight', 'global', crit, 'one_shot', layer_type=nn.Linear), timer])
        m = {k: statistics.median(v) for k, v in timer.times.items()}
        print(f"{crit:<14}{m['save']:>9.3f}{m['save plain']:>9.3f}{m['save'] / m['save plain']:>7.2f}"
              f"{m['load']:>9.3f}{m['load plain']:>9.3f}{m['load'] / m['load plain']:>7.2f}"
              f"{timer.sizes['checkpoint'] / 2**20:>9.1f}{timer.sizes['state'] / 2**20:>10.1f}")
