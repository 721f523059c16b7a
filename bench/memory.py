"""Memory: extra bytes per parameter that SparsifyCallback holds during training, for each criteria.

Counts, at the end of every epoch of a real fit, the bytes of the buffers the callback keeps on the sparsified layers
(`Masks`: the mask, and the 'init' and 'old' reference weights), divided by the number of weights of those layers; prints the largest value
seen. Model: 4 x nn.Linear(2048, 2048) on random data, global, 80%.
Usage: python bench/memory.py"""
import contextlib, io
import torch, torch.nn as nn
from fastai.callback.core import Callback
from fastai.learner import Learner
from fastai.torch_core import set_seed
from fasterai_lite.callback import SparsifyCallback
from overhead import mlp, random_dls

BUFFERS = ('mask', 'init', 'old')  # the kinds of state `Masks` holds

def nbytes(t) -> int: return 0 if t is None else t.numel() * t.element_size()

class HeldBytes(Callback):
    "Largest bytes-per-weight the SparsifyCallback holds, by buffer, seen at the end of each epoch"
    order = 45
    def before_fit(self): self.peak = {}
    def after_epoch(self):
        sp = self.learn.sparsify.sparsifier
        n = sum(m.weight.numel() for m in sp.layers.values())
        for b in BUFFERS:
            held = sum(nbytes(sp.masks.mask(l) if b == 'mask' else sp.masks.reference(l, b)) for l in sp.layers)
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
