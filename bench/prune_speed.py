"""Speedup of the compact model against the physical limit. For each network: zero 50% of the channels with the
dependency-aware mode (`Sparsifier(..., coupled=True)`, local, large_final), compact it with `Pruner`, and report the
MAC ratio (dense / compact), the parameter ratio, and the CPU latency ratio at batch 1 and batch 32 (2 threads,
torch.inference_mode, interleaved rounds, medians). The goal is a latency ratio of at least 0.8x the MAC ratio.

Usage: python bench/prune_speed.py [--size 112] [--repeats 10] [--only resnet18,vgg_cifar]"""
import argparse, warnings
import torch, torch.nn as nn, torchvision.models as tvm
from fasterai_lite.sparse import Sparsifier
from fasterai_lite.prune import Pruner, latency_ms
from fasterai_lite.data import vgg_cifar

NETS = {  # name -> (constructor, image side; 0 means --size)
    'resnet18': (lambda: tvm.resnet18(weights=None), 0),
    'vgg11_bn': (lambda: tvm.vgg11_bn(weights=None), 0),
    'mobilenet_v2': (lambda: tvm.mobilenet_v2(weights=None), 0),
    'vgg_cifar': (vgg_cifar, 32),
}

def run(name, size, repeats):
    make, side = NETS[name]
    side = side or size
    torch.manual_seed(0)
    dense = make().eval()
    x = torch.randn(32, 3, side, side)
    sp = Sparsifier(dense, 'filter', 'local', 'large_final', coupled=True, example_inputs=x[:1])
    sp.sparsify_model(50); sp.remove()
    pruner = Pruner(verbose=False)
    compact = pruner.prune_model(dense, x[:2])
    r = pruner.report
    mac_ratio, param_ratio = r['macs'] / r['macs_compact'], r['params'] / r['params_compact']
    out = dict(net=name, side=side, mac_ratio=mac_ratio, param_ratio=param_ratio, removable=r['removable_fraction'])
    for bs, n in ((1, repeats * 5), (32, repeats)):
        ms = latency_ms({'dense': dense, 'compact': compact}, x[:bs], repeats=n)
        out[f'bs{bs}_ms'] = (ms['dense'], ms['compact'])
        out[f'bs{bs}_ratio'] = ms['dense'] / ms['compact']
    return out

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--size', type=int, default=112, help='image side for the ImageNet networks (default 112)')
    ap.add_argument('--repeats', type=int, default=10, help='rounds at batch 32; batch 1 runs 5x as many')
    ap.add_argument('--only', help='comma-separated network names')
    a = ap.parse_args()
    torch.set_num_threads(2)
    warnings.filterwarnings('ignore')
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; latency = median of interleaved rounds, inference_mode")
    print(f"{'net':13} {'side':>4} {'MACs x':>7} {'params x':>8} {'removable':>9} | {'bs1 dense/compact ms':>21} {'speedup':>7} {'/MACx':>6} | {'bs32 dense/compact ms':>22} {'speedup':>7} {'/MACx':>6}")
    for name in (a.only.split(',') if a.only else NETS):
        o = run(name, a.size, a.repeats)
        print(f"{o['net']:13} {o['side']:>4} {o['mac_ratio']:7.2f} {o['param_ratio']:8.2f} {o['removable']:9.3f} | "
              f"{o['bs1_ms'][0]:9.2f} / {o['bs1_ms'][1]:9.2f} {o['bs1_ratio']:7.2f} {o['bs1_ratio'] / o['mac_ratio']:6.2f} | "
              f"{o['bs32_ms'][0]:10.1f} / {o['bs32_ms'][1]:9.1f} {o['bs32_ratio']:7.2f} {o['bs32_ratio'] / o['mac_ratio']:6.2f}", flush=True)
