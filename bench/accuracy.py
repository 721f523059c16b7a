"""Accuracy of sparse models trained with fasterai_lite, next to the dense model and the MIT demo's recipe.

Tasks (real data from `shared_datasets()`, i.e. ../shared/datasets or $FASTERAI_LITE_DATA; nothing is downloaded):
- mnist: the MIT pruning demo's network (PyTorch's MNIST example `MnistNet`), full MNIST, 7 epochs of
  fit_one_cycle(lr 3e-3, fastai's default Adam), batch 64;
- cifar-vgg, cifar-resnet20: `vgg_cifar` and `resnet20` on the 10k/2k CIFAR-10 subset, with flips and shifts;
- digits-cnn, digits-resnet: the demo's small nets on scikit-learn's 8x8 digits, 10 epochs at lr 1e-2 (seconds a run).

A configuration is a short string:
- `dense`: the plain fit;
- `mit@S`: the MIT demo's recipe: the first E-2 epochs dense, then one-shot magnitude pruning of each layer to S%
  and 2 epochs of SGD fine-tuning (momentum 0.9, cosine from the demo's lr 0.1 at batch 256, scaled linearly to the
  task's batch size, wd 1e-4) with the masks held;
- `sens@S`: the same, with per-layer sparsities from a sensitivity scan of the dense model (each layer pruned alone to
  50-99%, scored on the validation set, as the MIT lab does) through `sensitivity_targets`, instead of S% everywhere;
- `cb@S,CONTEXT,CRITERIA,SCHEDULE[,START-END][,every=N]`: one SparsifyCallback on the whole fit, weight granularity
  over Conv and Linear layers; START-END overrides the schedule's window (fractions of training); order=N shuffles
  the data with seed N instead of the run's seed (the weights still start from the run's seed): the data order alone;
- `filter@S,CONTEXT,CRITERIA,SCHEDULE[,START-END]`: conv filters with coupled=True, prune=True; the compact model's
  parameter and MAC ratios are recorded too.

Each (task, configuration, seed) is one row of bench/results/accuracy_<task>.csv, appended as soon as it finishes:
an interrupted run resumes where it stopped (--fresh starts over). --report (also done after every run) writes
accuracy_<task>.md: mean and min-max over seeds per configuration. The seed sets the initial weights, the data order
and the dropout masks.

Usage: python bench/accuracy.py [--task mnist] [--set default|explore|more|grid] [--configs C [C ...]] [--seeds 0 1 2]
       [--epochs N] [--report] [--fresh]"""
import argparse, csv, gc, statistics, time
from functools import partial
from pathlib import Path
import torch, torch.nn as nn
from fastai.learner import Learner
from fastai.metrics import accuracy
from fastai.optimizer import SGD
from fastai.callback.progress import ProgressCallback
from fastai.torch_core import set_seed
from fasterai_lite.core.all import *
from fasterai_lite.callback import SparsifyCallback
from fasterai_lite.sensitivity import sensitivity_scan, sensitivity_targets
from fasterai_lite.data import mnist_dls, cifar_dls, digits_dls, MnistNet, vgg_cifar, resnet20, digits_cnn, tiny_resnet

RESULTS = Path(__file__).parent/'results'
TASKS = {
    'mnist': dict(dls=mnist_dls, model=MnistNet, epochs=7, lr=3e-3),
    'cifar-vgg': dict(dls=cifar_dls, model=vgg_cifar, epochs=20, lr=3e-3),
    'cifar-resnet20': dict(dls=cifar_dls, model=resnet20, epochs=20, lr=3e-3),
    'digits-cnn': dict(dls=digits_dls, model=digits_cnn, epochs=10, lr=1e-2),
    'digits-resnet': dict(dls=digits_dls, model=partial(tiny_resnet, 16), epochs=10, lr=1e-2),
}
SETS = {  # configurations run by --set, per task
    'mnist': {'default': ['dense', 'mit@90', 'mit@95', 'sens@90', 'cb@90,global,large_final,agp', 'cb@90,local,large_final,agp',
                          'cb@95,global,large_final,agp', 'cb@95,local,large_final,agp'],
              'explore': ['cb@90,global,large_final,agp,0.2-1', 'cb@90,global,large_final,agp,0.2-0.7',
                          'cb@90,global,large_final,agp,0.1-0.5', 'cb@90,global,large_final,agp,0.2-0.7,every=30']},
    'cifar': {'default': ['dense', 'cb@80,global,large_final,agp', 'filter@50,local,large_final,agp'],  # the goals' rows
              'more': ['cb@50,global,large_final,agp', 'cb@90,global,large_final,agp', 'filter@30,local,large_final,agp',
                       'filter@50,global,large_final,agp'],
              # the criteria x schedule grid, as a cross through the default (large_final, agp) rather than all 16
              # cells: each criteria with agp, each schedule with large_final (7 configurations, 3 seeds each)
              'grid': [f'cb@80,global,{c},agp' for c in ('large_final', 'movement', 'updating_movement', 'grad_crit')] +
                      [f'cb@80,global,large_final,{s}' for s in ('one_shot', 'iterative', 'one_cycle')]},
    'digits': {'default': ['dense'] + [f'filter@50,global,large_final,agp{w}' for w in (',0.2-1', '', ',0.2-0.5')]},
}
SCAN = (50, 70, 80, 90, 95, 98, 99)  # sparsities the sensitivity scan tries on each layer
FIELDS = ['task', 'config', 'seed', 'epochs', 'accuracy', 'sparsity', 'params_ratio', 'macs_ratio', 'seconds']

def parse(config:str) -> dict:
    "A configuration string as a dict: kind, sparsity, context, criteria, schedule, window, every"
    kind, _, rest = config.partition('@')
    if kind == 'dense' and not rest: return dict(kind='dense')
    parts = rest.split(',')
    if kind in ('mit', 'sens') and len(parts) == 1: return dict(kind=kind, sparsity=float(parts[0]))
    if kind not in ('cb', 'filter') or len(parts) < 4: raise ValueError(f"Unknown configuration {config!r}: see --help")
    out = dict(kind=kind, sparsity=float(parts[0]), context=parts[1], criteria=parts[2], schedule=parts[3], window=None, every=None, order=None)
    for p in parts[4:]:
        if p.startswith('every='): out['every'] = int(p[6:])
        elif p.startswith('order='): out['order'] = int(p[6:])
        else: out['window'] = tuple(float(v) for v in p.split('-'))
    return out

def schedule(c:dict) -> Schedule:
    "The named schedule, with its window moved if the configuration gives one"
    s = as_schedule(c['schedule'])
    if c['window'] is None: return s
    start, end = c['window']
    return Schedule(s.sched_func, start, end, s.start_val, s.end_val, name=f"{s.name} {start:g}-{end:g}")

def learner(task:str, seed:int, order:int|None=None) -> Learner:
    "The task's model initialised from `seed`, on its data shuffled by `order` (`seed` if None)"
    t = TASKS[task]
    set_seed(seed)
    model = t['model']().to(memory_format=torch.channels_last)  # about 1.7x faster convs on these CPUs
    return Learner(t['dls'](seed=seed if order is None else order), model, loss_func=nn.CrossEntropyLoss(), metrics=accuracy)

def sparsity(cb:SparsifyCallback) -> float:
    "Zero weights (%) over the layers the callback sparsified, from its final report"
    return float(cb.report.zeros.sum() / cb.report.params.sum() * 100)

def run(task:str, config:str, seed:int, epochs:int) -> dict:
    "Train one configuration with one seed; its measurements"
    c, lr = parse(config), TASKS[task]['lr']
    learn = learner(task, seed, c.get('order'))
    learn.remove_cb(ProgressCallback)  # no bars in a log; the Recorder still prints each epoch's line
    row = dict(task=task, config=config, seed=seed, epochs=epochs, sparsity=0., params_ratio=1., macs_ratio=1.)
    if c['kind'] == 'dense': learn.fit_one_cycle(epochs, lr)
    elif c['kind'] in ('mit', 'sens'):
        learn.fit_one_cycle(epochs - 2, lr)
        target = c['sparsity'] if c['kind'] == 'mit' else sensitivity_targets(sensitivity_scan(learn, SCAN), c['sparsity'], budget=1.)
        learn.opt_func = partial(SGD, mom=0.9)
        hold = SparsifyCallback(target, 'weight', 'local', 'large_final', Schedule(sched_oneshot, 0., name='one_shot at 0'),
                                layer_type=(nn.Conv2d, nn.Linear))
        learn.fit_flat_cos(2, 0.1 * learn.dls.bs / 256, pct_start=0., wd=1e-4, cbs=hold)  # the demo's lr 0.1 at batch 256, scaled
        row['sparsity'] = sparsity(hold)
    else:
        kw = (dict(granularity='filter', layer_type=nn.Conv2d, coupled=True, prune=True) if c['kind'] == 'filter' else
              dict(granularity='weight', layer_type=(nn.Conv2d, nn.Linear)))
        cb = SparsifyCallback(c['sparsity'], context=c['context'], criteria=c['criteria'], schedule=schedule(c),
                              update_every=c['every'], **kw)
        learn.fit_one_cycle(epochs, lr, cbs=cb)
        row['sparsity'] = sparsity(cb)
        if cb.prune_report is not None:
            row['params_ratio'], row['macs_ratio'] = (float(cb.prune_report.loc[k, 'ratio']) for k in ('params', 'macs'))
    row['accuracy'] = float(learn.validate()[1]) * 100
    return row

def done(path:Path) -> set:
    if not path.exists(): return set()
    with open(path) as f: return {(r['config'], int(r['seed']), int(r['epochs'])) for r in csv.DictReader(f)}

def append(path:Path, row:dict):
    new = not path.exists()
    with open(path, 'a', newline='') as f:
        w = csv.DictWriter(f, FIELDS)
        if new: w.writeheader()
        w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if k in FIELDS})

def report(task:str) -> str:
    "Markdown table of the task's results: mean and min-max over seeds per configuration; also written to disk"
    path = RESULTS/f'accuracy_{task}.csv'
    if not path.exists(): return f"no results for {task} yet"
    with open(path) as f: rows = list(csv.DictReader(f))
    groups = {}
    for r in rows: groups.setdefault((r['config'], r['epochs']), []).append(r)
    lines = [f"| configuration | epochs | seeds | accuracy % mean | min - max | spread | sparsity % | params ratio | MACs ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    summary = []
    for (config, epochs), rs in sorted(groups.items(), key=lambda kv: (kv[0][0] != 'dense', kv[0][0])):  # dense first
        acc = [float(r['accuracy']) for r in rs]
        mean = statistics.mean(acc)
        cols = dict(config=config, epochs=epochs, seeds=len(rs), mean=round(mean, 2), min=round(min(acc), 2),
                    max=round(max(acc), 2), spread=round(max(acc) - min(acc), 2),
                    sparsity=round(statistics.mean(float(r['sparsity']) for r in rs), 2),
                    params_ratio=round(statistics.mean(float(r['params_ratio']) for r in rs), 2),
                    macs_ratio=round(statistics.mean(float(r['macs_ratio']) for r in rs), 2))
        summary.append(cols)
        lines.append(f"| `{config}` | {epochs} | {len(rs)} | **{mean:.2f}** | {min(acc):.2f} - {max(acc):.2f} | {cols['spread']:.2f} | "
                     f"{cols['sparsity']:.2f} | {cols['params_ratio']:.2f} | {cols['macs_ratio']:.2f} |")
    md = f"Accuracy on {task} (`python bench/accuracy.py --task {task} --report`)\n\n" + '\n'.join(lines) + '\n'
    (RESULTS/f'accuracy_{task}.md').write_text(md)
    with open(RESULTS/f'accuracy_{task}_summary.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, list(summary[0])); w.writeheader(); w.writerows(summary)
    return md

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--task', default='mnist', choices=list(TASKS))
    p.add_argument('--set', default='default', help="a named list of configurations for the task (default: default)")
    p.add_argument('--configs', nargs='+', help='configurations to run instead of a --set')
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2], help='default: 0 1 2')
    p.add_argument('--epochs', type=int, help="epochs per run (default: the task's)")
    p.add_argument('--report', action='store_true', help='only write and print the tables of the results so far')
    p.add_argument('--fresh', action='store_true', help='drop the earlier results of this task first')
    a = p.parse_args()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS/f'accuracy_{a.task}.csv'
    if a.report: print(report(a.task)); return
    if a.fresh and path.exists(): path.unlink()
    sets = SETS[a.task.split('-')[0]]
    if a.configs is None and a.set not in sets: p.error(f"--set must be one of {list(sets)} for {a.task}, got {a.set!r}")
    configs, epochs = a.configs or sets[a.set], a.epochs or TASKS[a.task]['epochs']
    for c in configs: parse(c)  # refuse a bad configuration before anything trains
    todo = [(c, s) for c in configs for s in a.seeds if (c, s, epochs) not in done(path)]
    print(f"{a.task}: {len(todo)} runs to do ({len(configs) * len(a.seeds) - len(todo)} already in {path})", flush=True)
    for i, (c, s) in enumerate(todo):
        t = time.perf_counter()
        print(f"[{i + 1}/{len(todo)}] {c} seed {s} ...", flush=True)
        row = run(a.task, c, s, epochs)
        row['seconds'] = time.perf_counter() - t
        append(path, row)
        print(f"[{i + 1}/{len(todo)}] {c} seed {s}: accuracy {row['accuracy']:.2f}%, sparsity {row['sparsity']:.2f}%, "
              f"{row['seconds']:.0f} s", flush=True)
        gc.collect()
    print(report(a.task))

if __name__ == '__main__': main()
