"""Checkpoints: the time to save and load a fastai checkpoint with the sparsity state beside it, next to a plain one.

Model: 4 x nn.Linear(2048, 2048) on random data (as bench/memory.py), global weight sparsity at 80%, mid-fit (so the
SparsifyCallback is running, as when SaveModelCallback saves every epoch). In the same after_epoch, interleaved:
fastai's `learn.save(name, with_opt=True)` followed by the callback's state (`write_state` of its `state_dict`, as it
writes one beside each SaveModelCallback checkpoint) against `learn.save` alone, and fastai's `learn.load(name)`
followed by reading, checking and restoring the state (what `SparsifyCallback(resume=name)` does) against
`learn.load` alone. Prints the median of 7 repeats of each, their ratio, and the file sizes.
Usage: python bench/checkpoint.py"""
import contextlib, io, statistics, tempfile, time
from pathlib import Path
import torch, torch.nn as nn
from fastai.callback.core import Callback
from fastai.learner import Learner
from fastai.torch_core import set_seed
from fasterai_lite.callback import SparsifyCallback, STATE_KEYS
from fasterai_lite.checkpoint import sparsity_state_file, write_state, read_state
from overhead import mlp, random_dls

REPEATS = 7

def seconds(f) -> float:
    t = time.perf_counter(); f(); return time.perf_counter() - t

class TimeCheckpoints(Callback):
    "Times saves and loads with and without the sparsity state, interleaved, once the schedule has masked the model"
    order = 45
    def after_epoch(self):
        if self.epoch != self.n_epoch - 1: return
        learn, cb = self.learn, self.learn.sparsify
        state_file = lambda name: sparsity_state_file(learn.path/learn.model_dir/f'{name}.pth')
        def save_with_state(): write_state(cb.state_dict(), state_file(learn.save('sparse', with_opt=True).stem))
        def load_with_state(): learn.load('sparse'); cb.load_state_dict(read_state(state_file('sparse'), STATE_KEYS))
        self.times = {k: [] for k in ('save', 'save plain', 'load', 'load plain')}
        for _ in range(REPEATS):
            self.times['save'].append(seconds(save_with_state))
            self.times['save plain'].append(seconds(lambda: learn.save('plain', with_opt=True)))
            self.times['load'].append(seconds(load_with_state))
            self.times['load plain'].append(seconds(lambda: learn.load('plain')))
        models = learn.path/learn.model_dir
        self.sizes = {'checkpoint': (models/'sparse.pth').stat().st_size, 'state': state_file('sparse').stat().st_size}

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
