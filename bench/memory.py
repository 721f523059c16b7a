"""Memory: extra bytes per parameter that SparsifyCallback holds during training, for each criteria.

Counts, at the end of every epoch of a real fit, the bytes of the buffers the callback keeps on the sparsified layers
(`_mask`, `_init_weights`, `_old_weights`), divided by the number of weights of those layers; prints the largest value
seen. Model: 4 x nn.Linear(2048, 2048) on random data, global, 80%.
Usage: python bench/memory.py"""
import contextlib, io
import torch, torch.nn as nn
from fastai.callback.core import Callback
from fastai.learner import Learner
from fastai.torch_core import set_seed
from fasterai_lite.sparse import SparsifyCallback
from overhead import mlp, random_dls

BUFFERS = ('_mask', '_init_weights', '_old_weights')

class HeldBytes(Callback):
    "Largest bytes-per-weight the SparsifyCallback holds, by buffer, seen at the end of each epoch"
    order = 45
    def before_fit(self): self.peak = {}
    def after_epoch(self):
        layers = self.learn.sparsify.sparsifier.layers.values()
        n = sum(m.weight.numel() for m in layers)
        for b in BUFFERS:
            held = sum(getattr(m, b).numel() * getattr(m, b).element_size() for m in layers if getattr(m, b, None) is not None)
            self.peak[b] = max(self.peak.get(b, 0), held / n)

if __name__ == '__main__':
    print(f"{'criteria':<20}{'granularity':<12}" + ''.join(f"{b:>15}" for b in BUFFERS) + f"{'total B/param':>15}")
    for crit in ('large_final', 'movement', 'updating_movement'):
        for g in ('weight', 'row'):
            set_seed(0)
            learn, held = Learner(random_dls(8), mlp(), loss_func=nn.CrossEntropyLoss()), HeldBytes()
            with learn.no_bar(), learn.no_logging(), contextlib.redirect_stdout(io.StringIO()):  # no per-fit report
                learn.fit(2, 1e-3, cbs=[SparsifyCallback(80, g, 'global', crit, 'agp', layer_type=nn.Linear), held])
            print(f"{crit:<20}{g:<12}" + ''.join(f"{held.peak[b]:>15.3f}" for b in BUFFERS) + f"{sum(held.peak.values()):>15.3f}")
