"""8-bit and low-rank on CPU: size, latency and accuracy of dense FP32, compact FP32, compact INT8 (and dense INT8,
low-rank FP32), side by side in one run.

Models: resnet18 and mobilenet_v2 (torchvision, weights=None: nothing is downloaded) at 112 px, and the CIFAR
`vgg_cifar` and `resnet20` at 32 px, the latter two from the trained dense models of `bench/accuracy.py --flow trained`
(bench/cache/, seeds found there) when present. The compact model is the dense one with 50% of the filters of every
coupled group removed (`Sparsifier(..., 'filter', 'local', 'large_final', coupled=True)` then `Pruner`): about 4x fewer
MACs, the shape a 4x pruning run ends with (its accuracy needs the recovery fit of `bench/accuracy.py`, so only the
dense model's accuracy is measured here). INT8 is `quantize_onnx` with its defaults (static, QDQ, weights per channel on
a 7-bit range, activations per tensor, MinMax calibration on 8 batches of 32 training images), and, for PyTorch on
x86, `quantize_inductor` on the same batches (torchao's PT2E flow with 7-bit activations, compiled by Inductor; a
program for batch 32 and one for batch 1, timed in the PyTorch loop beside the dense model; and, to tell what the 8 bits
bring from what compiling brings, the compact float model compiled the same way: exported, BatchNorms folded, run
by `InductorModel`). The low-rank row
replaces the Linears of the model by their SVD factors at 90% energy (`low_rank`), shown where that saves at least 10%
of the model's parameters (the VGG's classifier; not the small heads of the others), and then also the compact model
with its Linears low-rank, in INT8: the smallest file.

Latency: milliseconds of one forward pass at batch 1 and 32, medians of interleaved rounds (`latency_table`), PyTorch
eager and ONNX Runtime on --threads threads, the eager models interleaved with each other and the ONNX Runtime ones
with each other, one loop after the other (interleaved with PyTorch, whose OpenMP threads spin on for a while after
each call, ONNX Runtime's threads lose time: up to 1.6x on the CIFAR VGG's INT8 file). File size: the ONNX file. Accuracy (trained CIFAR models only): the
2,000 test images, FP32 in PyTorch, INT8 in ONNX Runtime and through Inductor, per seed. File size of the Inductor
path: the `.pt2` program that `InductorModel.save` writes.

Writes bench/results/quantize.md, quantize.csv (one row per model and seed) and quantize_profile.csv (time per operator type).

Usage: python bench/quantize.py [--models resnet18 mobilenet_v2 cifar-vgg cifar-resnet20] [--threads 2] [--repeats 20] [--md FILE]"""
import argparse, copy, tempfile, warnings
from pathlib import Path
import torch, torch.nn as nn, torch.nn.functional as F, torchvision
from fasterai_lite.sparsifier import Sparsifier
from fasterai_lite.prune import Pruner
from fasterai_lite.stats import latency_table, macs
from fasterai_lite.deploy import export_onnx, fold_batchnorms, OnnxModel
from fasterai_lite.quantize import quantize_onnx, quantize_inductor, InductorModel, calibration_batches, top1_accuracy
from fasterai_lite.lowrank import low_rank
from fasterai_lite.data import cifar_dls, vgg_cifar, resnet20

CACHE = Path(__file__).parent/'cache'
RESULTS = Path(__file__).parent/'results'
CIFAR = {'cifar-vgg': vgg_cifar, 'cifar-resnet20': resnet20}

def dense(name:str, seed:int|None) -> nn.Module:
    "The model: a torchvision architecture at random init, or a CIFAR net with the cached trained weights of `seed`"
    torch.manual_seed(0)
    if name not in CIFAR: return torchvision.models.get_model(name, weights=None).eval()
    m = CIFAR[name]()
    if seed is not None: m.load_state_dict(torch.load(CACHE/f"{name}_seed{seed}_20ep.pt", weights_only=True))
    return m.eval()

def cached_seeds(name:str) -> list[int]:
    "The seeds whose trained dense `name` model `bench/accuracy.py --flow trained` kept in bench/cache/"
    return sorted(int(f.stem.split('_seed')[1].split('_')[0]) for f in CACHE.glob(f"{name}_seed*_20ep.pt"))

def compact(model:nn.Module, x) -> nn.Module:
    "A copy of `model` without half the filters of every coupled group"
    model = copy.deepcopy(model)  # the Sparsifier zeroes in place
    sp = Sparsifier(model, 'filter', 'local', 'large_final', coupled=True, example_inputs=x)
    sp.sparsify_model(50); sp.remove()
    return Pruner(verbose=False).prune_model(model, x)

def calibration(name:str, dls, size:int) -> list:
    "8 batches of 32 training images of the CIFAR subset, at the model's input size"
    return [tuple(F.interpolate(x, size=size, mode='bilinear') if size != 32 else x for x in b) for b in calibration_batches(dls, 8)]

def measure(name:str, seed:int|None, threads:int, repeats:int, tmp:Path) -> dict:
    size = 32 if name in CIFAR else 112
    dls = cifar_dls(bs=32, augment=False)
    calib = calibration(name, dls, size)
    x1, x32 = calib[0][0][:1], calib[0][0]
    d = dense(name, seed); c = compact(d, x1)
    files = {'dense': export_onnx(d, tmp/'dense.onnx', x1), 'compact': export_onnx(c, tmp/'compact.onnx', x1),
             'dense_int8': quantize_onnx(d, tmp/'dense_int8.onnx', calib, min_agreement=0),
             'compact_int8': quantize_onnx(c, tmp/'compact_int8.onnx', calib, min_agreement=0)}
    lr, report = low_rank(d, energy=.9)
    if report.params.sum() - report.params_after.sum() >= .1 * sum(q.numel() for q in d.parameters()):  # only where Linears weigh
        files['lowrank'] = export_onnx(lr, tmp/'lowrank.onnx', x1)
        files['compact_lowrank_int8'] = quantize_onnx(low_rank(c, energy=.9)[0], tmp/'compact_lowrank_int8.onnx', calib, min_agreement=0)
    runtimes = {k: OnnxModel(tmp/f"{k}.onnx", threads) for k in files}
    inductor = {bs: quantize_inductor(c, calib, batch_size=bs, min_agreement=0) for bs in (1, 32)}
    compiled = InductorModel(torch.export.export(fold_batchnorms(c, x32)[0], (x32,), strict=True))  # the float model, compiled the same way
    row = dict(model=name, seed=seed, macs_ratio=macs(d, x1) / macs(c, x1),
               **{f"{k}_mb": float(r['size_mb']) for k, r in files.items()}, compact_inductor_mb=float(inductor[32].report.size_mb),
               compact_inductor_agreement=inductor[32].report.agreement, compact_inductor_s=float(inductor[32].report.seconds),
               dense_int8_agreement=files['dense_int8'].agreement, compact_int8_agreement=files['compact_int8'].agreement)
    for bs, x in ((1, x1), (32, x32)):  # PyTorch and ONNX Runtime in loops of their own: PyTorch's OpenMP threads spin on after
        compiled_float = {'compact_compiled': compiled} if bs == 32 else {}
        for models in ({'dense_eager': d, 'compact_eager': c, **compiled_float, 'compact_inductor': inductor[bs]}, {f"{k}_ort": m for k, m in runtimes.items()}):  # a call, and slow the next
            t = latency_table(models, x, repeats=repeats)
            row.update({f"{k}_bs{bs}_ms": float(v) for k, v in t['median'].items()})
    row['ops'] = (op_profile(tmp/'compact.onnx', x32, threads), op_profile(tmp/'compact_int8.onnx', x32, threads))
    row['profile'] = profile_table(name, *row['ops'])
    if seed is not None:
        row.update(dense_acc=100 * top1_accuracy(d, dls.valid), dense_int8_acc=100 * top1_accuracy(runtimes['dense_int8'], dls.valid),
                   dense_inductor_acc=100 * top1_accuracy(quantize_inductor(d, calib, min_agreement=0), dls.valid))
        if 'lowrank' in runtimes: row['lowrank_acc'] = 100 * top1_accuracy(runtimes['lowrank'], dls.valid)
    return row

def op_profile(path:Path, x:torch.Tensor, threads:int, runs:int=10) -> dict:
    "Milliseconds per run spent in each ONNX Runtime operator type (its profiler's node events), over `runs` runs after one warm-up"
    import json, onnxruntime as ort
    opts = ort.SessionOptions(); opts.enable_profiling = True
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.profile_file_prefix = str(path.with_suffix(''))
    sess = ort.InferenceSession(str(path), opts, providers=['CPUExecutionProvider'])
    feed = {sess.get_inputs()[0].name: x.numpy()}
    sess.run(None, feed)
    for _ in range(runs): sess.run(None, feed)
    events = json.loads(Path(sess.end_profiling()).read_text())
    out = {}
    for e in events[len(events) // (runs + 1):]:  # past the warm-up run's events
        if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time'):
            op = e['args'].get('op_name', '?'); out[op] = out.get(op, 0) + e['dur'] / 1e3 / runs
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))

def profile_table(name:str, fp32:dict, int8:dict) -> str:
    "Time per operator type, compact FP32 and INT8 side by side"
    lines = [f"{name}, compact model, batch 32: ms per run in each operator type (ONNX Runtime's profiler)", "",
             "| operator | FP32 ms | INT8 ms |", "|---|---|---|"]
    for op in sorted(set(fp32) | set(int8), key=lambda o: -(fp32.get(o, 0) + int8.get(o, 0))):
        lines.append(f"| {op} | {fp32.get(op, 0):.2f} | {int8.get(op, 0):.2f} |")
    lines.append(f"| total | {sum(fp32.values()):.2f} | {sum(int8.values()):.2f} |")
    return '\n'.join(lines)

def table(rows:list) -> str:
    out = ["| model | seed | MACs ratio | file MB: dense / compact / compact INT8 | smaller | bs 32 ms: dense eager / compact ORT / compact INT8 ORT | "
           "INT8 vs compact FP32 (ORT, bs 32) | compact INT8 vs dense eager (bs 32) | bs 1 ms: dense eager / compact INT8 ORT | "
           "Inductor INT8: MB, smaller, bs 32 ms, vs compact eager, vs compact float compiled, vs dense eager, bs 1 ms | dense acc: FP32 / INT8 ORT / INT8 Inductor | low-rank FP32: MB, acc (no fine-tuning) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = f"{r['dense_acc']:.2f} / {r['dense_int8_acc']:.2f} / {r['dense_inductor_acc']:.2f}" if 'dense_acc' in r else '-'
        ind = (f"{r['compact_inductor_mb']:.2f}, {r['dense_mb'] / r['compact_inductor_mb']:.1f}x, {r['compact_inductor_bs32_ms']:.1f}, "
               f"{r['compact_eager_bs32_ms'] / r['compact_inductor_bs32_ms']:.2f}x, {r['compact_compiled_bs32_ms'] / r['compact_inductor_bs32_ms']:.2f}x, **{r['dense_eager_bs32_ms'] / r['compact_inductor_bs32_ms']:.2f}x**, "
               f"{r['compact_inductor_bs1_ms']:.2f}")
        lowrank = (f"{r['lowrank_mb']:.2f}, {r.get('lowrank_acc', float('nan')):.2f}; compact + low-rank INT8: {r['compact_lowrank_int8_mb']:.2f} MB "
                   f"({r['dense_mb'] / r['compact_lowrank_int8_mb']:.1f}x smaller), {r['compact_lowrank_int8_ort_bs32_ms']:.1f} ms" if 'lowrank_mb' in r else '-')
        out.append(f"| {r['model']} | {r['seed'] if r['seed'] is not None else '-'} | {r['macs_ratio']:.2f} | "
                   f"{r['dense_mb']:.2f} / {r['compact_mb']:.2f} / {r['compact_int8_mb']:.2f} | {r['dense_mb'] / r['compact_int8_mb']:.1f}x | "
                   f"{r['dense_eager_bs32_ms']:.1f} / {r['compact_ort_bs32_ms']:.1f} / {r['compact_int8_ort_bs32_ms']:.1f} | "
                   f"{r['compact_ort_bs32_ms'] / r['compact_int8_ort_bs32_ms']:.2f}x | {r['dense_eager_bs32_ms'] / r['compact_int8_ort_bs32_ms']:.2f}x | "
                   f"{r['dense_eager_bs1_ms']:.2f} / {r['compact_int8_ort_bs1_ms']:.2f} | {ind} | {acc} | {lowrank} |")
    return '\n'.join(out)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', default=['resnet18', 'mobilenet_v2', 'cifar-vgg', 'cifar-resnet20'])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=20)
    p.add_argument('--md', default=str(RESULTS/'quantize.md'))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    warnings.filterwarnings('ignore')
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models:
            seeds = cached_seeds(name) if name in CIFAR else []
            for seed in seeds or [None]:
                rows.append(measure(name, seed, a.threads, a.repeats, Path(tmp)))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    md = (f"8-bit and low-rank on CPU (`python bench/quantize.py --threads {a.threads} --repeats {a.repeats}`): medians of interleaved "
          f"rounds, {a.threads} threads\n\n" + table(rows) + '\n\n' +
          '\n\n'.join(r['profile'] for r in rows if r['seed'] in (None, 0)) + '\n')
    Path(a.md).write_text(md); print(md)
    import pandas as pd
    md_path = Path(a.md)
    pd.DataFrame([{k: v for k, v in r.items() if k not in ('ops', 'profile')} for r in rows]).to_csv(md_path.with_suffix('.csv'), index=False)
    pd.DataFrame([dict(model=r['model'], op=op, fp32_ms=r['ops'][0].get(op, 0.), int8_ms=r['ops'][1].get(op, 0.))
                  for r in rows if r['seed'] in (None, 0) for op in sorted(set(r['ops'][0]) | set(r['ops'][1]))]
                 ).to_csv(md_path.with_name(md_path.stem + '_profile.csv'), index=False)
