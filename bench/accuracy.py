"""Accuracy of sparse models trained with fasterai_lite, next to the dense model and the MIT demo's recipe.

Tasks (real data from `shared_datasets()`, i.e. ../shared/datasets or $FASTERAI_LITE_DATA; nothing is downloaded):
- mnist: the MIT pruning demo's network (PyTorch's MNIST example `MnistNet`), full MNIST, 7 epochs of
  fit_one_cycle(lr 3e-3, fastai's default Adam), batch 64;
- cifar-vgg, cifar-resnet20: `vgg_cifar` and `resnet20` on the 10k/2k CIFAR-10 subset, with flips and shifts;
- digits-cnn, digits-resnet: the demo's small nets on scikit-learn's 8x8 digits, 10 epochs at lr 1e-2 (seconds a run).

A configuration is a short string:
- `dense`: the plain fit; in the scratch flow it also keeps its model in bench/cache as the seed's trained dense model if
  none is kept yet (the same training), for the runs that start or distil from it;
- `mit@S`: the MIT demo's recipe: the first E-2 epochs dense, then one-shot magnitude pruning of each layer to S%
  and 2 epochs of SGD fine-tuning (momentum 0.9, cosine from the demo's lr 0.1 at batch 256, scaled linearly to the
  task's batch size, wd 1e-4) with the masks held;
- `sens@S`: the same, with per-layer sparsities from a sensitivity scan of the dense model (each layer pruned alone to
  50-99%, scored on the validation set, as the MIT lab does) through `sensitivity_targets`, instead of S% everywhere;
- `cb@S,CONTEXT,CRITERIA,SCHEDULE[,START-END][,every=N]`: one SparsifyCallback on the whole fit, weight granularity
  over Conv and Linear layers; START-END overrides the schedule's window (fractions of training); every=N re-masks at
  most every N batches (SparsifyCallback's update_every; default at most 16 cuts per fit); order=N shuffles
  the data with seed N instead of the run's seed (the weights still start from the run's seed): the data order alone;
- `filter@S,CONTEXT,CRITERIA,SCHEDULE[,START-END][,every=N][,kd[,at|,ens|,ens=both]][,reg=D][,round=R][,qat][,split=F]`: conv filters with coupled=True, prune=True; the
  compact model's parameter and MAC ratios are recorded too, and each cut's accuracy on a fixed validation batch just
  before and after it (CutMonitor), in cuts_<task>[_trained].csv. S may be a speedup, `2x`: SparsifyCallback(speedup=2.),
  which allocates the channels over the groups to reach 2x fewer MACs; round=R keeps a multiple of R channels per group;
  reg=D adds GroupPenaltyCallback(strength=D), the growing push of the units to remove before they go; split=F trains
  the dense model for the first F of the epochs (a fit_one_cycle of its own, with the teacher if kd), then the rest with
  the callbacks: the budget split of Torch-Pruning's pipeline and of the trained flow;
- in cb and filter configurations, qat adds a QuantizeCallback (quantization-aware training from the sparsity schedule's last
  cut); in the trained flow every run's final model is also quantized to INT8 (`quantize_onnx`, its defaults) and its
  test accuracy logged in int8_<task>_trained.csv, next to the FP32 accuracy;
- in cb, filter and tp configurations, kd adds a DistillCallback (weight 0.5, temperature 4; kd=W sets the weight): in the
  trained flow its teacher is the model as the fit starts (its default; for tp, the model before its first fit), in the
  scratch flow the seed's trained dense model (see --flow), whose accuracy is logged in teacher_<task>.csv beside the
  student's; in tp configurations it is on every fit of the pipeline; at (with kd) also matches the attention maps
  of both models at the end of each stage (DistillCallback(features='stages'): Zagoruyko and Komodakis' attention
  transfer, its weight 1000), which a student with fewer channels can match because the maps average over the channels;
  ens (with kd, without at) distils from the Ensemble of the dense models of seeds 0, 1 and 2 (the mean of their
  logits) instead of the seed's own (scratch flow) or of the model as the fit starts (trained flow); ens=both from
  the six of both CIFAR nets (vgg_cifar's and resnet20's); each member's own accuracy is logged in members_<task>.csv
  (the seed's own is its dense model, in the run's batch);
- `tp@Sx,IMPORTANCE[,reg=R][,sl=F][,round=R][,kd[,at|,ens|,ens=both]]`: Torch-Pruning's own pipeline on the same data, optimizer and budget, to S
  times fewer MACs over the convs (its global pruning, stepped until the target is reached, as its benchmark scripts
  do). IMPORTANCE: l1 or l2 (MetaPruner with GroupMagnitudeImportance, one-shot at the start, then fine-tuning),
  groupnorm (GroupNormPruner: F of the epochs (default 0.5) of sparse learning with its regularizer of strength R
  (default its 1e-4), then the cut, then fine-tuning), slim (BNScalePruner, network slimming, the same split);

Two flows (--flow):
- scratch: each configuration trains from the seed's initial weights for the task's epochs (20 on CIFAR);
- trained: each configuration starts from the seed's dense model trained for the task's epochs (trained once and kept
  in bench/cache/), then runs --recover N epochs (default 10) of fit_one_cycle at the task's lr with its callbacks: the
  flow of a fastai user who makes a trained model smaller. Its `dense` row is those N epochs without pruning, so the
  reference has the same 20 + N epochs and extra epochs do not count as recovery. Results go to
  accuracy_<task>_trained.csv/.md, whose epochs column is N.

Each (task, configuration, seed) is one row of bench/results/accuracy_<task>.csv, appended as soon as it finishes:
an interrupted run resumes where it stopped (--fresh starts over). --report (also done after every run) writes
accuracy_<task>.md: mean and min-max over seeds per configuration, the mean difference to the dense model of the same
seed, and the median wall time of a run (without the training of the dense models kept in bench/cache, done before
its clock starts). The seed sets the initial weights, the data order and the dropout masks.
--results DIR writes (and reads) the tables in DIR instead of bench/results: a second run of the same configurations,
kept apart from the first (bench/results/rerun holds the scratch flow's dense models trained again on 2026-11-30;
bench/results/xeon the runs of 2026-11-30 and 2026-12-01 on an Intel Xeon, whose dense models differ from the AMD
EPYC's of the others).

Usage: python bench/accuracy.py [--task mnist] [--flow scratch|trained] [--recover N] [--set default|explore|more|grid] [--configs C [C ...]] [--seeds 0 1 2]
       [--epochs N] [--report] [--fresh] [--results DIR]"""
import argparse, copy, csv, gc, statistics, tempfile, time
import pandas as pd
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
from fasterai_lite.distill import DistillCallback, Ensemble
from fasterai_lite.regularize import GroupPenaltyCallback, CutMonitor
from fasterai_lite.quantize import quantize_onnx, QuantizeCallback, top1_accuracy
from fasterai_lite.deploy import OnnxModel
from fasterai_lite.stats import macs, param_count
from fastai.callback.core import Callback
from fasterai_lite.sensitivity import sensitivity_scan, sensitivity_targets
from fasterai_lite.data import mnist_dls, cifar_dls, digits_dls, MnistNet, vgg_cifar, resnet20, digits_cnn, tiny_resnet

RESULTS = Path(__file__).parent/'results'
CACHE = Path(__file__).parent/'cache'  # the trained dense models of the trained flow (not in git)
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
    if kind == 'tp':
        if len(parts) < 2 or not parts[0].endswith('x') or parts[1] not in ('l1', 'l2', 'groupnorm', 'slim'):
            raise ValueError(f"Unknown configuration {config!r}: see --help")
        out = dict(kind='tp', speedup=float(parts[0][:-1]), importance=parts[1], reg=None, sl=.5, round=None, kd=None, at=False, ens=False)
        for p in parts[2:]:
            k, _, v = p.partition('=')
            if k not in out or k in ('speedup', 'importance'): raise ValueError(f"Unknown option {p!r} in {config!r}: see --help")
            out[k] = (distill_options(v) if k == 'kd' else True if k in ('at', 'ens') and not v else ensemble_option(v, config) if k == 'ens'
                      else int(v) if k == 'round' else float(v))
        return out
    if kind in ('mit', 'sens') and len(parts) == 1: return dict(kind=kind, sparsity=float(parts[0]))
    if kind not in ('cb', 'filter') or len(parts) < 4: raise ValueError(f"Unknown configuration {config!r}: see --help")
    speedup = float(parts[0][:-1]) if parts[0].endswith('x') else None
    out = dict(kind=kind, sparsity=None if speedup else float(parts[0]), speedup=speedup, context=parts[1], criteria=parts[2],
               schedule=parts[3], window=None, every=None, order=None, kd=None, at=False, ens=False, round=None, reg=None, qat=False, split=None)
    for p in parts[4:]:
        if p == 'kd' or p.startswith('kd='): out['kd'] = distill_options(p[3:])
        elif p in ('qat', 'at', 'ens'): out[p] = True
        elif p.startswith('ens='): out['ens'] = ensemble_option(p[4:], config)
        elif p.startswith('reg='): out['reg'] = float(p[4:])
        elif p.startswith('split='): out['split'] = float(p[6:])
        elif p.startswith('round='): out['round'] = int(p[6:])
        elif p.startswith('every='): out['every'] = int(p[6:])
        elif p.startswith('order='): out['order'] = int(p[6:])
        else: out['window'] = tuple(float(v) for v in p.split('-'))
    return out

def ensemble_option(value:str, config:str) -> str:
    "The value of an `ens=` option: `both`, the ensemble of both CIFAR nets' dense models"
    if value != 'both': raise ValueError(f"Unknown ensemble {value!r} in {config!r}: ens alone, or ens=both")
    return value

def distill_options(weight:str) -> dict:
    "DistillCallback's arguments for a `kd` or `kd=W` option: its defaults, or the weight W"
    return {} if weight == '' else dict(weight=float(weight))

def distill_arguments(c:dict, config:str, flow:str) -> dict|None:
    "DistillCallback's arguments of `c`, with attention maps matched at the end of each stage if `at`"
    for o in ('at', 'ens'):
        if c.get(o) and c['kd'] is None: raise ValueError(f"{o} is an option of the teacher, so it needs kd too: {config!r}")
    if c.get('ens') and c.get('at'): raise ValueError(f"an Ensemble's members' layers can't be paired by name, so ens goes without at: {config!r}")
    return {**c['kd'], 'features': 'stages'} if c.get('at') else c.get('kd')

def schedule(c:dict) -> Schedule:
    "The named schedule, with its window moved if the configuration gives one"
    s = as_schedule(c['schedule'])
    return s if c['window'] is None else s.window(*c['window'])

def learner(task:str, seed:int, order:int|None=None) -> Learner:
    "The task's model initialised from `seed`, on its data shuffled by `order` (`seed` if None)"
    t = TASKS[task]
    set_seed(seed)
    model = t['model']().to(memory_format=torch.channels_last)  # about 1.7x faster convs on these CPUs
    return Learner(t['dls'](seed=seed if order is None else order), model, loss_func=nn.CrossEntropyLoss(), metrics=accuracy)

def sparsity(cb:SparsifyCallback) -> float:
    "Zero weights (%) over the layers the callback sparsified, from its final report"
    return float(cb.report.zeros.sum() / cb.report.params.sum() * 100)

def trained(task:str, seed:int, order:int|None=None) -> Learner:
    "The task's learner with the seed's dense model trained for the task's epochs: trained once, then read from bench/cache"
    path = kept_dense(task, seed)
    learn = learner(task, seed, order)  # a new one even after training: the trained one's data loaders have moved on
    learn.remove_cb(ProgressCallback)
    learn.model.load_state_dict(torch.load(path, weights_only=True))
    set_seed(seed)  # every configuration of this seed sees the same data order and dropout in its recovery epochs
    return learn

def kept_dense(task:str, seed:int) -> Path:
    "The file of the seed's dense model trained for the task's epochs, trained and kept in bench/cache the first time"
    path = dense_file(task, seed)
    if not path.exists(): train_dense(task, seed, path)
    return path

def dense_file(task:str, seed:int) -> Path:
    "Where bench/cache keeps the seed's dense model trained for the task's epochs"
    return CACHE/f"{task}_seed{seed}_{TASKS[task]['epochs']}ep.pt"

def train_dense(task:str, seed:int, path:Path):
    "Train the seed's dense model for the task's epochs and keep its weights in `path`"
    learn, t, start = learner(task, seed), TASKS[task], time.perf_counter()
    learn.remove_cb(ProgressCallback)
    learn.fit_one_cycle(t['epochs'], t['lr'])
    keep(learn, path)
    print(f"trained the dense {task} model of seed {seed} in {time.perf_counter() - start:.0f} s: "
          f"accuracy {float(learn.validate()[1]) * 100:.2f}%, kept in {path}", flush=True)

def keep(learn:Learner, path:Path):
    "Write the learner's weights to `path` in bench/cache, whole or not at all"
    CACHE.mkdir(exist_ok=True)
    tmp = path.with_suffix('.tmp'); torch.save(learn.model.state_dict(), tmp); tmp.replace(path)

def run(task:str, config:str, seed:int, epochs:int, flow:str='scratch') -> dict:
    "Train one configuration with one seed (`epochs` of training, or of recovery in the trained flow); its measurements"
    c, lr = parse(config), TASKS[task]['lr']
    c['kd'] = distill_arguments(c, config, flow)
    given = c.get('kd') is not None and (flow == 'scratch' or c.get('ens'))
    teacher = trained_teacher(task, seed, c['ens']) if given else None  # the trained flow without ens: DistillCallback's default copy
    teacher_model = None if teacher is None else teacher.model
    members = None if teacher is None or not c.get('ens') else member_accuracies(teacher, ensemble_members(task, c['ens']))
    learn = trained(task, seed, c.get('order')) if flow == 'trained' else learner(task, seed, c.get('order'))
    learn.remove_cb(ProgressCallback)  # no bars in a log; the Recorder still prints each epoch's line
    row = dict(task=task, config=config, seed=seed, epochs=epochs, sparsity=0., params_ratio=1., macs_ratio=1.)
    if c['kind'] == 'dense':
        learn.fit_one_cycle(epochs, lr)
        kept = dense_file(task, seed)
        if flow == 'scratch' and epochs == TASKS[task]['epochs'] and not kept.exists():
            keep(learn, kept)  # the training of `train_dense`: kept for the runs that start or distil from it
    elif c['kind'] in ('mit', 'sens'):
        learn.fit_one_cycle(epochs - 2, lr)
        target = c['sparsity'] if c['kind'] == 'mit' else sensitivity_targets(sensitivity_scan(learn, SCAN), c['sparsity'], budget=1.)
        learn.opt_func = partial(SGD, mom=0.9)
        hold = SparsifyCallback(target, 'weight', 'local', 'large_final', Schedule(sched_oneshot, 0., name='one_shot at 0'),
                                layer_type=(nn.Conv2d, nn.Linear))
        learn.fit_flat_cos(2, 0.1 * learn.dls.bs / 256, pct_start=0., wd=1e-4, cbs=hold)  # the demo's lr 0.1 at batch 256, scaled
        row['sparsity'] = sparsity(hold)
    elif c['kind'] == 'tp': row.update(torch_pruning(learn, c, epochs, lr, teacher_model))
    else:
        kw = (dict(granularity='filter', layer_type=nn.Conv2d, coupled=True, prune=True, speedup=c['speedup'], round_to=c['round'])
              if c['kind'] == 'filter' else dict(granularity='weight', layer_type=(nn.Conv2d, nn.Linear)))
        cb = SparsifyCallback(c['sparsity'], context=c['context'], criteria=c['criteria'], schedule=schedule(c),
                              update_every=c['every'], **kw)
        monitor = CutMonitor() if c['kind'] == 'filter' else None
        dense_epochs = round(epochs * c['split']) if c['split'] else 0
        if dense_epochs: learn.fit_one_cycle(dense_epochs, lr, cbs=distillation(teacher_model, c['kd']))
        cbs = ([cb] + distillation(teacher_model, c['kd']) + ([GroupPenaltyCallback(c['reg'])] if c['reg'] else []) +
               ([monitor] if monitor else []) + ([QuantizeCallback()] if c['qat'] else []))
        learn.fit_one_cycle(epochs - dense_epochs, lr, cbs=cbs)
        if monitor: row['cuts'] = monitor.cuts
        if cb.allocation is not None: row['allocation'] = cb.allocation.table().reset_index()
        row['sparsity'] = sparsity(cb)
        if cb.prune_report is not None:
            row['params_ratio'], row['macs_ratio'] = (float(cb.prune_report.loc[k, 'ratio']) for k in ('params', 'macs'))
    row['accuracy'] = float(learn.validate()[1]) * 100
    if flow == 'trained': row['int8'] = int8(learn).assign(accuracy=row['accuracy'])
    if teacher is not None: row['teacher'] = teacher_accuracy(teacher).assign(accuracy=row['accuracy'])
    if members is not None: row['members'] = members
    return row

ENSEMBLE = (0, 1, 2)  # the seeds whose dense models `ens` averages
CIFAR_NETS = ('cifar-vgg', 'cifar-resnet20')  # the nets whose dense models `ens=both` averages: the same data

def ensemble_members(task:str, ensemble:bool|str) -> list[tuple[str, int]]:
    "The (task, seed) of each dense model in the teacher of `ens` (the task's own net) or `ens=both` (both CIFAR nets)"
    if not ensemble: return []
    if ensemble == 'both' and task not in CIFAR_NETS: raise ValueError(f"ens=both averages the CIFAR nets {CIFAR_NETS}, not {task!r}'s")
    return [(t, s) for t in (CIFAR_NETS if ensemble == 'both' else (task,)) for s in ENSEMBLE]

def dense_models(config:str, task:str, seed:int, flow:str) -> list[tuple[str, int]]:
    "The (task, seed) of the trained dense models a run of `config` starts from (trained flow) or distils from"
    c = parse(config)
    teachers = [] if c.get('kd') is None else ensemble_members(task, c.get('ens'))
    own = flow == 'trained' or c.get('kd') is not None  # the trained flow's start, or the scratch flow's teacher
    return [*teachers, (task, seed)] if own else []

def trained_teacher(task:str, seed:int, ensemble:bool|str=False) -> Learner:
    "A teacher of trained dense models: the seed's own (the scratch flow's), or the Ensemble of those `ensemble_members` names"
    members = [trained(t, s).model for t, s in ensemble_members(task, ensemble)] or None
    teacher = trained(task, seed)  # last, so that its seed is the one set
    if members: teacher.model = Ensemble(members)
    return teacher

def member_accuracies(teacher:Learner, members:list[tuple[str, int]]) -> pd.DataFrame:
    "Each member of an Ensemble teacher, as `ensemble_members` lists them: its task, seed and test accuracy (%), one row each"
    return pd.DataFrame([dict(member=t, member_seed=s, member_accuracy=top1_accuracy(m, teacher.dls.valid) * 100)
                         for (t, s), m in zip(members, teacher.model.models)])

def distillation(teacher:nn.Module|None, options:dict|None) -> list:
    "A new DistillCallback from `teacher` (None: its default, the model as the fit starts) with `options`; none if `options` is None"
    return [] if options is None else [DistillCallback(teacher, **options)]

def teacher_accuracy(teacher:Learner) -> pd.DataFrame:
    "The teacher's test accuracy (%), one row: a dense model of the same seed, trained again, is a second reference beside the `dense` row"
    return pd.DataFrame([dict(teacher_accuracy=float(teacher.validate()[1]) * 100)])

def int8(learn:Learner) -> pd.DataFrame:
    "The trained model in 8 bits (`quantize_onnx` with its defaults, calibrated on 8 training batches): its test accuracy (%), one row"
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp)/'int8.onnx'
        r = quantize_onnx(learn.model, file, learn.dls, min_agreement=0)
        acc = top1_accuracy(OnnxModel(file), learn.dls.valid)
    return pd.DataFrame([dict(int8_accuracy=100 * acc, agreement=r.agreement, int8_mb=r.size_mb, float_mb=r.float_size_mb)])

class _Regularize(Callback):
    "Torch-Pruning's sparse learning: its pruner adds the regularizer's gradient after each backward pass"
    def __init__(self, pruner): self.pruner = pruner
    def after_backward(self): self.pruner.regularize(self.learn.model)

def torch_pruning(learn:Learner, c:dict, epochs:int, lr:float, teacher:nn.Module|None=None) -> dict:
    "Torch-Pruning's pipeline on `learn`: sparse learning (groupnorm, slim), the cut to the MACs target, fine-tuning"
    import torch_pruning as tp
    model = learn.model
    if c['kd'] is not None and teacher is None: teacher = copy.deepcopy(model)  # not the default copy, which would be the pruned model in the last fit
    x = learn.dls.one_batch()[0][:1]
    dense_macs, dense_params = macs(model, x), param_count(model)
    imp = {'l1': lambda: tp.importance.GroupMagnitudeImportance(p=1), 'l2': lambda: tp.importance.GroupMagnitudeImportance(p=2),
           'groupnorm': lambda: tp.importance.GroupMagnitudeImportance(p=2), 'slim': lambda: tp.importance.BNScaleImportance()}[c['importance']]()
    kind = {'groupnorm': tp.pruner.GroupNormPruner, 'slim': tp.pruner.BNScalePruner}.get(c['importance'], tp.pruner.MetaPruner)
    kw = {} if c['reg'] is None or kind is tp.pruner.MetaPruner else dict(reg=c['reg'])
    pruner = kind(model, x, imp, global_pruning=True, pruning_ratio=1., iterative_steps=400, round_to=c['round'],
                  ignored_layers=[m for m in model.modules() if isinstance(m, nn.Linear)], **kw)  # convs only, as the filter rows
    learning = 0 if kind is tp.pruner.MetaPruner else round(epochs * c['sl'])
    if learning: learn.fit_one_cycle(learning, lr, cbs=[_Regularize(pruner)] + distillation(teacher, c['kd']))
    model.eval()
    for _ in range(400):  # its benchmark scripts' progressive pruning: a step at a time until the target is reached
        if dense_macs / macs(model, x) >= c['speedup']: break
        pruner.step()
    learn.create_opt()  # the pruned parameters are new tensors
    learn.fit_one_cycle(epochs - learning, lr, cbs=distillation(teacher, c['kd']))
    return dict(params_ratio=dense_params / param_count(model), macs_ratio=dense_macs / macs(model, x))

def done(path:Path) -> set:
    if not path.exists(): return set()
    with open(path) as f: return {(r['config'], int(r['seed']), int(r['epochs'])) for r in csv.DictReader(f)}

def append(path:Path, row:dict):
    new = not path.exists()
    with open(path, 'a', newline='') as f:
        w = csv.DictWriter(f, FIELDS)
        if new: w.writeheader()
        w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if k in FIELDS})

def results(task:str, flow:str, folder:Path=RESULTS) -> Path:
    "The CSV of a task's results in a flow, in `folder`"
    return folder/f"accuracy_{task}{'' if flow == 'scratch' else '_' + flow}.csv"

def int8_table(path:Path) -> str:
    "Markdown table of the INT8 log: per configuration, the FP32 and INT8 test accuracy (means over seeds) and their mean difference"
    if not path.exists(): return ''
    df = pd.read_csv(path)
    g = df.assign(diff=df.int8_accuracy - df.accuracy).groupby('config')
    t = pd.DataFrame(dict(seeds=g.size(), fp32=g.accuracy.mean(), int8=g.int8_accuracy.mean(), int8_minus_fp32=g['diff'].mean(),
                          worst=g['diff'].min(), agreement=g.agreement.mean(), int8_mb=g.int8_mb.mean(), float_mb=g.float_mb.mean()))
    lines = ["| configuration | seeds | FP32 % | INT8 % | INT8 - FP32 | worst seed | class agreement | file MB: FP32 / INT8 |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| `{c}` | {int(r.seeds)} | {r.fp32:.2f} | {r.int8:.2f} | {r.int8_minus_fp32:+.2f} | {r.worst:+.2f} | {r.agreement:.3f} | {r.float_mb:.3f} / {r.int8_mb:.3f} |"
              for c, r in t.iterrows()]
    return ("\nThe same models in 8 bits after training (`quantize_onnx` with its defaults, calibrated on 8 training batches; "
            "ONNX Runtime on the test set; `,qat` rows trained with `QuantizeCallback` from the last cut):\n\n" + '\n'.join(lines) + '\n')

def report(task:str, flow:str='scratch', folder:Path=RESULTS) -> str:
    "Markdown table of the task's results in `folder`: mean and min-max over seeds per configuration; also written to disk"
    path = results(task, flow, folder)
    if not path.exists(): return f"no results for {task} ({flow}) yet"
    with open(path) as f: rows = list(csv.DictReader(f))
    groups = {}
    for r in rows: groups.setdefault((r['config'], r['epochs']), []).append(r)
    lines = [f"| configuration | epochs | seeds | accuracy % mean | min - max | spread | vs dense | sparsity % | params ratio | MACs ratio | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    summary, dense = [], {(r['seed'], r['epochs']): float(r['accuracy']) for r in rows if r['config'] == 'dense'}
    for (config, epochs), rs in sorted(groups.items(), key=lambda kv: (kv[0][0] != 'dense', kv[0][0])):  # dense first
        acc = [float(r['accuracy']) for r in rs]
        mean = statistics.mean(acc)
        cols = dict(config=config, epochs=epochs, seeds=len(rs), mean=round(mean, 2), min=round(min(acc), 2),
                    max=round(max(acc), 2), spread=round(max(acc) - min(acc), 2),
                    sparsity=round(statistics.mean(float(r['sparsity']) for r in rs), 2),
                    params_ratio=round(statistics.mean(float(r['params_ratio']) for r in rs), 2),
                    macs_ratio=round(statistics.mean(float(r['macs_ratio']) for r in rs), 2))
        # against the dense model of the same seed: the mean of the per-seed differences, over the seeds that have one
        deltas = [float(r['accuracy']) - dense[r['seed'], r['epochs']] for r in rs if (r['seed'], r['epochs']) in dense]
        cols.update(vs_dense=round(statistics.mean(deltas), 2) if deltas else float('nan'), dense_seeds=len(deltas),
                    seconds=round(statistics.median(float(r['seconds']) for r in rs)))
        summary.append(cols)
        vs = f"{cols['vs_dense']:+.2f}" + ('' if len(deltas) == len(rs) else f" ({len(deltas)} seeds)") if deltas else '-'
        lines.append(f"| `{config}` | {epochs} | {len(rs)} | **{mean:.2f}** | {min(acc):.2f} - {max(acc):.2f} | {cols['spread']:.2f} | {vs} | "
                     f"{cols['sparsity']:.2f} | {cols['params_ratio']:.2f} | {cols['macs_ratio']:.2f} | {cols['seconds']} |")
    how = ('' if flow == 'scratch' else f"; from the dense model trained {TASKS[task]['epochs']} epochs, the epochs "
           f"column is the recovery epochs")
    where = '' if folder == RESULTS else f' --results {folder}'
    md = (f"Accuracy on {task}, {flow} flow (`python bench/accuracy.py --task {task} --flow {flow} --report{where}`{how})\n\n" +
          '\n'.join(lines) + '\n' + int8_table(path.with_name(path.name.replace('accuracy_', 'int8_'))))
    path.with_suffix('.md').write_text(md)
    with open(path.with_name(path.stem + '_summary.csv'), 'w', newline='') as f:
        w = csv.DictWriter(f, list(summary[0])); w.writeheader(); w.writerows(summary)
    return md

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--task', default='mnist', choices=list(TASKS))
    p.add_argument('--set', default='default', help="a named list of configurations for the task (default: default)")
    p.add_argument('--configs', nargs='+', help='configurations to run instead of a --set')
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2], help='default: 0 1 2')
    p.add_argument('--epochs', type=int, help="epochs per run (default: the task's) in the scratch flow")
    p.add_argument('--flow', default='scratch', choices=['scratch', 'trained'], help='from the initial weights, or from the trained dense model')
    p.add_argument('--recover', type=int, default=10, help='epochs of pruning and recovery in the trained flow (default: 10)')
    p.add_argument('--report', action='store_true', help='only write and print the tables of the results so far')
    p.add_argument('--fresh', action='store_true', help='drop the earlier results of this task first')
    p.add_argument('--results', type=Path, default=RESULTS, help='the folder of the result tables (default: bench/results)')
    a = p.parse_args()
    a.results.mkdir(parents=True, exist_ok=True)
    path = results(a.task, a.flow, a.results)
    if a.report: print(report(a.task, a.flow, a.results)); return
    if a.fresh and path.exists(): path.unlink()
    sets = SETS[a.task.split('-')[0]]
    if a.configs is None and a.set not in sets: p.error(f"--set must be one of {list(sets)} for {a.task}, got {a.set!r}")
    configs = a.configs or sets[a.set]
    epochs = a.recover if a.flow == 'trained' else a.epochs or TASKS[a.task]['epochs']
    for c in configs: distill_arguments(parse(c), c, a.flow); dense_models(c, a.task, a.seeds[0], a.flow)  # refuse a bad configuration before anything trains
    todo = [(c, s) for c in configs for s in a.seeds if (c, s, epochs) not in done(path)]
    print(f"{a.task}: {len(todo)} runs to do ({len(configs) * len(a.seeds) - len(todo)} already in {path})", flush=True)
    for i, (c, s) in enumerate(todo):
        for net, net_seed in dense_models(c, a.task, s, a.flow): kept_dense(net, net_seed)  # before the clock starts: a run's seconds are its own
        t = time.perf_counter()
        print(f"[{i + 1}/{len(todo)}] {c} seed {s} ...", flush=True)
        row = run(a.task, c, s, epochs, a.flow)
        row['seconds'] = time.perf_counter() - t
        for log in ('cuts', 'allocation', 'int8', 'teacher', 'members'):  # per-run tables beside the results: each cut's accuracy, the channels kept per group, INT8, the teacher and an ensemble's members
            df, log_path = row.pop(log, None), path.with_name(path.name.replace('accuracy_', log + '_'))
            if df is not None: df.assign(config=c, seed=s).to_csv(log_path, mode='a', index=False, header=not log_path.exists())
        append(path, row)
        print(f"[{i + 1}/{len(todo)}] {c} seed {s}: accuracy {row['accuracy']:.2f}%, sparsity {row['sparsity']:.2f}%, "
              f"{row['seconds']:.0f} s", flush=True)
        gc.collect()
    print(report(a.task, a.flow, a.results))

if __name__ == '__main__': main()
