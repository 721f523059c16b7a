"""Speedup of the compact model against the physical limit. For each network: zero 50% of the channels with the
dependency-aware mode (`Sparsifier(..., coupled=True)`, local, large_final), compact it with `Pruner`, and report the
MAC ratio (dense / compact), the parameter ratio, and the CPU latency ratio at batch 1 and batch 32 (2 threads,
torch.inference_mode, interleaved rounds, medians). The goal is a latency ratio of at least 0.8x the MAC ratio.

The floor is the same network cut to one channel per prunable group (pruning can't go below its per-op cost);
net/MACx compares (dense - floor) / (compact - floor) with the MAC ratio. With --fused, the models are also timed with conv+BN folded (torch.fx) in channels_last, as they would be deployed. With --onnx, also in ONNX Runtime (2 threads), exported by
`export_onnx` (BatchNorms folded, dynamic batch, checked against PyTorch); needs the deploy extra.

With --profile, it prints the ops that take the most time at batch 32 and how much each shrank.

Usage: python bench/prune_speed.py [--size 112] [--repeats 10] [--only resnet18,vgg_cifar] [--fused] [--onnx] [--profile]"""
import argparse, copy, tempfile, warnings
from pathlib import Path
import torch, torch.nn as nn, torchvision.models as tvm
from torch.fx.experimental.optimization import fuse
from fasterai_lite.sparsifier import Sparsifier
from fasterai_lite.prune import Pruner
from fasterai_lite.stats import latency_ms
from fasterai_lite.data import vgg_cifar
from fasterai_lite.deploy import export_onnx, OnnxModel

NETS = {  # name -> (constructor, image side; 0 means --size)
    'resnet18': (lambda: tvm.resnet18(weights=None), 0),
    'vgg11_bn': (lambda: tvm.vgg11_bn(weights=None), 0),
    'mobilenet_v2': (lambda: tvm.mobilenet_v2(weights=None), 0),
    'vgg_cifar': (vgg_cifar, 32),
}

def run(name, size, repeats, fused=False, onnx=False, profile=False):
    make, side = NETS[name]
    side = side or size
    torch.manual_seed(0)
    dense = make().eval()
    x = torch.randn(32, 3, side, side)
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
    for v, (d, c, f) in variants.items():
        for bs, n in ((1, repeats * 5), (32, repeats)):
            xb = x[:bs].contiguous(memory_format=torch.channels_last) if v == 'fused' else x[:bs]
            ms = latency_ms({'dense': d, 'compact': c, 'floor': f}, xb, repeats=n)
            out[f'{v}_bs{bs}_ms'] = (ms['dense'], ms['compact'], ms['floor'])
            out[f'{v}_bs{bs}_ratio'] = ms['dense'] / ms['compact']
            out[f'{v}_bs{bs}_net_ratio'] = (ms['dense'] - ms['floor']) / (ms['compact'] - ms['floor'])
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
    ap.add_argument('--profile', action='store_true', help='print where the time goes, op by op, at batch 32')
    a = ap.parse_args()
    torch.set_num_threads(2)
    warnings.filterwarnings('ignore')
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; latency = median of interleaved rounds, inference_mode")
    print(f"{'net':13} {'variant':7} {'side':>4} {'MACs x':>7} {'params x':>8} {'removable':>9} | {'bs1 dense/compact/floor ms':>28} {'speedup':>7} {'/MACx':>6} {'net/MACx':>8} | {'bs32 dense/compact/floor ms':>28} {'speedup':>7} {'/MACx':>6} {'net/MACx':>8}")
    for name in (a.only.split(',') if a.only else NETS):
        o = run(name, a.size, a.repeats, a.fused, a.onnx, a.profile)
        for v in ('eager',) + (('fused',) if a.fused else ()) + (('onnx',) if a.onnx else ()):
            cols = []
            for bs in (1, 32):
                d, c, f = o[f'{v}_bs{bs}_ms']
                r, nr = o[f'{v}_bs{bs}_ratio'], o[f'{v}_bs{bs}_net_ratio']
                cols.append(f"{d:8.2f} /{c:8.2f} /{f:8.2f} {r:7.2f} {r / o['mac_ratio']:6.2f} {nr / o['mac_ratio']:8.2f}")
            print(f"{o['net']:13} {v:7} {o['side']:>4} {o['mac_ratio']:7.2f} {o['param_ratio']:8.2f} {o['removable']:9.3f} | " + ' | '.join(cols), flush=True)
