"""Training overhead of SparsifyCallback: a plain fit and a fit with the callback, same model, data and seed,
interleaved (the order alternates every repeat) and repeated; prints the median of the paired time ratios, for wall
time and for the process's CPU time (steadier when other work on the machine takes the CPU away).

- CNN: a small CNN on scikit-learn's digits, filter granularity, global, 50%.
- MLP: 4 x nn.Linear(2048, 2048), batch 32, random data, weight granularity, global, 80%.
Each with large_final + agp and updating_movement + agp, default settings. If fasterai is importable, its
SparsifyCallback runs in the same loop. Usage: python bench/overhead.py [--repeats 5] [--only cnn|mlp] [--without-fasterai]"""
import argparse, contextlib, gc, io, statistics, time, importlib
import torch, torch.nn as nn
from torch.utils.data import TensorDataset
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.torch_core import set_seed
from fasterai_lite.data import digits_dls, digits_cnn
import fasterai_lite.callback as lite

def mlp(): return nn.Sequential(*[l for _ in range(4) for l in (nn.Linear(2048, 2048), nn.ReLU())][:-1])

def random_dls(n_batches=40, bs=32):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n_batches * bs, 2048, generator=g), torch.randint(0, 2048, (n_batches * bs,), generator=g)
    return DataLoaders(DataLoader(TensorDataset(x, y), bs=bs, shuffle=True), DataLoader(TensorDataset(x[:64], y[:64]), bs=64))

SETUPS = {
    'cnn': dict(model=digits_cnn, dls=digits_dls, epochs=10, args=(50, 'filter', 'global'), layer_type=nn.Conv2d),
    'mlp': dict(model=mlp, dls=random_dls, epochs=8, args=(80, 'weight', 'global'), layer_type=nn.Linear),
}

def timed_fit(setup, cb_factory=None) -> tuple[float, float]:
    "Wall and CPU seconds of one fit"
    set_seed(0)
    learn = Learner(setup['dls'](), setup['model'](), loss_func=nn.CrossEntropyLoss())
    cbs = [] if cb_factory is None else [cb_factory()]
    with learn.no_bar(), learn.no_logging(), contextlib.redirect_stdout(io.StringIO()):  # no per-fit report
        t, c = time.perf_counter(), time.process_time()
        learn.fit(setup['epochs'], 1e-3, cbs=cbs)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    del learn; gc.collect()  # a Learner sits in reference cycles: free each fit's model now, outside the timing
    return wall, cpu

def factories(setup, crit, with_fasterai=True):
    s, g, c = setup['args']
    out = {'fasterai_lite': lambda: lite.SparsifyCallback(s, g, c, crit, 'agp', layer_type=setup['layer_type'])}
    if not with_fasterai: return out
    try:
        fa = importlib.import_module('fasterai.sparse.all')
        out['fasterai'] = lambda: fa.SparsifyCallback(s, g, c, getattr(fa, crit), fa.agp, layer_type=setup['layer_type'])
    except Exception: pass
    return out

def handler_seconds(setup, cb_factory, repeats=3) -> tuple[float, dict]:
    "Median seconds spent inside the callbacks' own event handlers during one fit (robust to machine noise)"
    from fasterai_lite.callback import SparsifyCallback, _SparsifyEnd
    spent, originals = {}, []
    def wrap(cls, name):
        f = getattr(cls, name); originals.append((cls, name, f))
        def timed(self, *a, **k):
            t = time.perf_counter(); r = f(self, *a, **k); spent[name] = spent.get(name, 0.) + time.perf_counter() - t; return r
        setattr(cls, name, timed)
    for n in ('before_fit', 'before_epoch', 'before_batch', 'after_backward', 'after_step'): wrap(SparsifyCallback, n)
    wrap(_SparsifyEnd, 'after_fit')
    try:
        totals, last = [], {}
        for _ in range(repeats):
            spent.clear(); timed_fit(setup, cb_factory); totals.append(sum(spent.values())); last = dict(spent)
        return statistics.median(totals), last
    finally:
        for cls, name, f in originals: setattr(cls, name, f)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--repeats', type=int, default=5); ap.add_argument('--only')
    ap.add_argument('--without-fasterai', action='store_true', help="time fasterai_lite only, even if fasterai is installed")
    a = ap.parse_args()
    torch.set_num_threads(2)
    print(f"median of {a.repeats} paired ratios (fit with callback / plain fit), interleaved; torch threads: 2")
    for name, setup in SETUPS.items():
        if a.only and name != a.only: continue
        for crit in ('large_final', 'updating_movement'):
            facs = factories(setup, crit, not a.without_fasterai)
            timed_fit(setup); [timed_fit(setup, f) for f in facs.values()]  # warm-up
            wall, cpu, plain = {k: [] for k in facs}, {k: [] for k in facs}, []
            for r in range(a.repeats):
                for k, f in facs.items():
                    first, second = (None, f) if r % 2 == 0 else (f, None)
                    ta, tb = timed_fit(setup, first), timed_fit(setup, second)
                    (p, c) = (ta, tb) if r % 2 == 0 else (tb, ta)
                    wall[k].append(c[0] / p[0]); cpu[k].append(c[1] / p[1]); plain.append(p[0])
            for k in facs:
                print(f"{name:4} {crit:18} {k:14} wall ratio {statistics.median(wall[k]):.3f}  cpu ratio {statistics.median(cpu[k]):.3f}"
                      f"  (plain fit median {statistics.median(plain):.2f}s; wall ratios {' '.join(f'{x:.2f}' for x in wall[k])};"
                      f" cpu ratios {' '.join(f'{x:.2f}' for x in cpu[k])})", flush=True)
            secs, parts = handler_seconds(setup, facs['fasterai_lite'])
            print(f"{name:4} {crit:18} fasterai_lite time inside its handlers: {secs:.3f}s = {secs / statistics.median(plain):.1%} of the plain fit"
                  f"  ({' '.join(f'{k} {v * 1000:.0f}ms' for k, v in parts.items())})", flush=True)
