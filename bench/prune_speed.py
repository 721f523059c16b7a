"""Speedup of the compact model against the physical limit. For each network (resnet18 and mobilenet_v2 at --size,
vgg11_bn at 224x224, the VGG-style CIFAR net at 32x32, and the demo's CNN at 8x8): zero 50% of the channels with the
dependency-aware mode (`Sparsifier(..., coupled=True)`, local, large_final), compact it with `Pruner`, and report the
MAC ratio (dense / compact), the parameter ratio, and the CPU latency ratio at batch 1 and batch 32 (2 threads,
torch.inference_mode, interleaved rounds, medians). The goal, in the best runtime: a latency ratio of at least 0.8x
the MAC ratio at batch 32 and 0.6x at batch 1. --md writes the table (and a CSV beside it) for the deploy notebook.

The floor is the same network cut to one channel per prunable group (pruning can't go below its per-op cost);
net/MACx compares (dense - floor) / (compact - floor) with the MAC ratio. With --fused, the models are also timed with conv+BN folded (torch.fx) in channels_last, as they would be deployed. With --onnx, also in ONNX Runtime (2 threads), exported by
`export_onnx` (BatchNorms folded, dynamic batch, checked against PyTorch); needs the deploy extra. With --export,
also as `torch.export` programs (`ExportedProgram.module()`, what `torch.export.load` gives back) and compiled ahead
of time by AOTInductor (`torch._inductor.aoti_compile_and_package`, needs a C++ compiler; dense and compact only, no
floor), with the seconds each takes to build.

With --profile, it prints the ops that take the most time at batch 32 and how much each shrank.

Usage: python bench/prune_speed.py [--size 112] [--repeats 10] [--only resnet18,vgg_cifar] [--fused] [--onnx] [--export] [--md FILE] [--profile]"""
import argparse, copy, math, tempfile, time, warnings
from pathlib import Path
import pandas as pd
import torch, torch.nn as nn, torchvision.models as tvm
from torch.fx.experimental.optimization import fuse
from fasterai_lite.sparsifier import Sparsifier
from fasterai_lite.prune import Pruner
from fasterai_lite.stats import latency_ms
from fasterai_lite.data import vgg_cifar, digits_cnn
from fasterai_lite.deploy import export_onnx, OnnxModel

NETS = {  # name -> (constructor, image side (0 means --size), image channels)
    'resnet18': (lambda: tvm.resnet18(weights=None), 0, 3),
    'vgg11_bn': (lambda: tvm.vgg11_bn(weights=None), 224, 3),  # ONNX exports its adaptive pool only where 7 divides the map
    'mobilenet_v2': (lambda: tvm.mobilenet_v2(weights=None), 0, 3),
    'vgg_cifar': (vgg_cifar, 32, 3),
    'demo_cnn': (digits_cnn, 8, 1),  # the demo's CNN, on scikit-learn's 8x8 digits
}
BUILD_SECONDS = {}  # (net, runtime, model) -> seconds to build the deployable form

class Deployed(nn.Module):
    "A deployed callable (an exported program's module, an AOTInductor package), called like a model"
    def __init__(self, run):
        super().__init__()
        object.__setattr__(self, 'run', run)  # not a submodule: an exported module refuses eval(), which latency_ms calls
    def forward(self, *xs): return self.run(*xs)

def program(model, x):
    "`model` as a torch.export program with a dynamic batch"
    return torch.export.export(model, (x[:2],), dynamic_shapes=({0: torch.export.Dim('batch', min=1, max=1024)},))

def exported(model, x):
    "`model`'s program run as a module, as `torch.export.load` gives it back"
    return Deployed(program(model, x).module())

def aoti(model, x, path):
    "`model`'s program compiled ahead of time by AOTInductor into the package `path`"
    return Deployed(torch._inductor.aoti_load_package(torch._inductor.aoti_compile_and_package(program(model, x), package_path=str(path))))

def timed_build(key, build, *args):
    t = time.perf_counter(); out = build(*args); BUILD_SECONDS[key] = time.perf_counter() - t
    return out

def run(name, size, repeats, fused=False, onnx=False, export=False, profile=False):
    make, side, channels = NETS[name]
    side = side or size
    torch.manual_seed(0)
    dense = make().eval()
    x = torch.randn(32, channels, side, side)
    compact, r = zero_and_prune(dense, x, 50)
    mac_ratio, param_ratio = r['macs'] / r['macs_compact'], r['params'] / r['params_compact']
    out = dict(net=name, side=side, mac_ratio=mac_ratio, param_ratio=param_ratio, removable=r['removable_fraction'])
    if profile: print_profile(name, dense, compact, x)
    floor, _ = zero_and_prune(copy.deepcopy(dense), x, 100)  # one channel left per group: the per-op cost no pruning removes
    variants = {'eager': (dense, compact, floor)}
    if fused:  # conv+BN folded by torch.fx, channels_last: the usual CPU deployment, for all models alike
        variants['fused'] = tuple(fuse(m).to(memory_format=torch.channels_last) for m in (dense, compact, floor))
    if onnx:  # the same three in ONNX Runtime, from files checked against PyTorch
        d = Path(tempfile.mkdtemp())
        for k, m in zip(('dense', 'compact', 'floor'), (dense, compact, floor)): export_onnx(m, d/f'{k}.onnx', x[:1])
        variants['onnx'] = tuple(OnnxModel(d/f'{k}.onnx', threads=2) for k in ('dense', 'compact', 'floor'))
    if export:
        variants['export'] = tuple(timed_build((name, 'export', k), exported, m, x) for k, m in zip(('dense', 'compact', 'floor'), (dense, compact, floor)))
        d = Path(tempfile.mkdtemp())
        variants['aoti'] = tuple(timed_build((name, 'aoti', k), aoti, m, x, d/f'{k}.pt2') for k, m in (('dense', dense), ('compact', compact))) + (None,)
        for v in ('export', 'aoti'):
            for m, ref in zip(variants[v], (dense, compact)):
                with torch.inference_mode(): assert torch.allclose(m(x), ref(x), rtol=1e-4, atol=1e-5), f"{name} {v} differs"
    for v, (d, c, f) in variants.items():
        for bs, n in ((1, repeats * 5), (32, repeats)):
            xb = x[:bs].contiguous(memory_format=torch.channels_last) if v == 'fused' else x[:bs]
            ms = latency_ms({k: m for k, m in (('dense', d), ('compact', c), ('floor', f)) if m is not None}, xb, repeats=n)
            floor_ms = ms.get('floor', math.nan)
            out[f'{v}_bs{bs}_ms'] = (ms['dense'], ms['compact'], floor_ms)
            out[f'{v}_bs{bs}_ratio'] = ms['dense'] / ms['compact']
            out[f'{v}_bs{bs}_net_ratio'] = (ms['dense'] - floor_ms) / (ms['compact'] - floor_ms)
    return out

def op_times(model, x, rounds=5) -> dict:
    "Self CPU milliseconds per forward pass of each aten op, from torch.profiler"
    from torch.profiler import profile, ProfilerActivity
    with torch.inference_mode():
        for _ in range(2): model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(rounds): model(x)
    return {e.key: e.self_cpu_time_total / rounds / 1e3 for e in prof.key_averages() if e.key.startswith('aten::')}

def print_profile(name, dense, compact, x, top=6):
    "Where the time goes at batch 32, op by op: the ops whose time shrinks less than the MACs explain the gap"
    d, c = op_times(dense, x), op_times(compact, x)
    total = sum(d.values())
    print(f"  {name}: the {top} ops with most self time in the dense model (batch {len(x)})")
    for k in sorted(d, key=d.get, reverse=True)[:top]:
        print(f"    {k:32} dense {d[k]:8.2f} ms ({d[k] / total:4.0%})  compact {c.get(k, 0):8.2f} ms  ratio {d[k] / max(c.get(k, 0), 1e-9):5.2f}")

def zero_and_prune(model, x, pct):
    "Zero `pct`% of each channel group of `model` in place (coupled, local, large_final); its compact copy and the report"
    sp = Sparsifier(model, 'filter', 'local', 'large_final', coupled=True, example_inputs=x[:1])
    sp.sparsify_model(pct); sp.remove()
    pruner = Pruner(verbose=False)
    return pruner.prune_model(model, x[:2]), pruner.report  # at 100% the Pruner keeps one (zero) channel per group

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--size', type=int, default=112, help='image side for the ImageNet networks (default 112)')
    ap.add_argument('--repeats', type=int, default=10, help='rounds at batch 32; batch 1 runs 5x as many')
    ap.add_argument('--only', help='comma-separated network names')
    ap.add_argument('--fused', action='store_true', help='also time both models with conv+BN folded (torch.fx) and channels_last')
    ap.add_argument('--onnx', action='store_true', help='also time both models in ONNX Runtime (needs the deploy extra)')
    ap.add_argument('--export', action='store_true', help='also time torch.export programs and AOTInductor packages (slow to build)')
    ap.add_argument('--md', help='also write the latency table to this markdown file, and to a CSV beside it')
    ap.add_argument('--profile', action='store_true', help='print where the time goes, op by op, at batch 32')
    a = ap.parse_args()
    torch.set_num_threads(2)
    warnings.filterwarnings('ignore')
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; latency = median of interleaved rounds, inference_mode")
    print(f"{'net':13} {'variant':7} {'side':>4} {'MACs x':>7} {'params x':>8} {'removable':>9} | {'bs1 dense/compact/floor ms':>28} {'speedup':>7} {'/MACx':>6} {'net/MACx':>8} | {'bs32 dense/compact/floor ms':>28} {'speedup':>7} {'/MACx':>6} {'net/MACx':>8}")
    records = []  # one per net and runtime: the --md table and its CSV
    for name in (a.only.split(',') if a.only else NETS):
        o = run(name, a.size, a.repeats, a.fused, a.onnx, a.export, a.profile)
        for v in ('eager',) + (('fused',) if a.fused else ()) + (('onnx',) if a.onnx else ()) + (('export', 'aoti') if a.export else ()):
            cols = []
            for bs in (1, 32):
                d, c, f = o[f'{v}_bs{bs}_ms']
                r, nr = o[f'{v}_bs{bs}_ratio'], o[f'{v}_bs{bs}_net_ratio']
                cols.append(f"{d:8.2f} /{c:8.2f} /{f:8.2f} {r:7.2f} {r / o['mac_ratio']:6.2f} {nr / o['mac_ratio']:8.2f}")
            print(f"{o['net']:13} {v:7} {o['side']:>4} {o['mac_ratio']:7.2f} {o['param_ratio']:8.2f} {o['removable']:9.3f} | " + ' | '.join(cols), flush=True)
            rec = dict(net=name, runtime=v, macs_ratio=round(o['mac_ratio'], 2))
            for bs in (1, 32):
                d, c, _ = o[f'{v}_bs{bs}_ms']
                rec.update({f'bs{bs}_dense_ms': round(d, 3), f'bs{bs}_compact_ms': round(c, 3), f'bs{bs}_speedup': round(d / c, 2),
                            f'bs{bs}_speedup_per_macs_ratio': round(d / c / o['mac_ratio'], 2),
                            f'bs{bs}_vs_dense_eager': round(o[f'eager_bs{bs}_ms'][0] / c, 2)})
            records.append(rec)
    built = ', '.join(f"{n} {v} {k} {s:.1f}" for (n, v, k), s in BUILD_SECONDS.items())
    if built: print(f"seconds to build each deployable form: {built}")
    if a.md:  # and a CSV beside it, for notebooks to read
        table = pd.DataFrame(records)
        table.to_csv(Path(a.md).with_suffix('.csv'), index=False)
        md = ['| ' + ' | '.join(table.columns) + ' |', '|' + '---|' * len(table.columns)]
        md += ['| ' + ' | '.join(map(str, r)) + ' |' for r in table.itertuples(index=False)]
        md += ['', f"{torch.get_num_threads()} threads, torch {torch.__version__}, latency = median of interleaved rounds "
               f"({a.repeats} at batch 32, {5 * a.repeats} at batch 1)"] + (['', f"seconds to build: {built}"] if built else [])
        Path(a.md).write_text('\n'.join(md) + '\n')
