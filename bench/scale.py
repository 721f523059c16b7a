"""Scale: global weight sparsity (90% by default) on a ~100M-parameter MLP (6 x Linear(4096, 4096)).

Wall time and peak RSS of one global selection, three ways, each on an identical model in a fresh subprocess,
alternating, with the peak RSS reset after the model is built:
- fasterai_lite: `Sparsifier(...).sparsify_model(S)`;
- CriteriaPruning via torch: `prune.global_unstructured(..., pruning_method=CriteriaPruning, amount=S/100)`, this
  library's exact selection inside torch's API (which flattens the tensors and writes `_orig`/`_mask` per layer);
- torch.nn.utils.prune: the same call with `prune.L1Unstructured`.
Prints medians over the repeats, and the ratios of the repeats side by side.
Usage: python bench/scale.py [--repeats 3] [--sparsity 90]"""
import argparse, statistics, subprocess, sys, json

def _rss_kb(field):
    for line in open('/proc/self/status'):
        if line.startswith(field): return int(line.split()[1])

def run(method:str, pct:float) -> dict:
    import time, torch, torch.nn as nn
    import torch.nn.utils.prune as prune
    from fasterai_lite.sparsifier import Sparsifier  # imports (fastai's, mostly) are not part of the timing
    from fasterai_lite.interop import CriteriaPruning
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(4096, 4096) for _ in range(6)])
    n = sum(m.weight.numel() for m in model)
    open('/proc/self/clear_refs', 'w').write('5')  # reset the peak RSS to what is in use now
    base = _rss_kb('VmRSS:')
    t = time.perf_counter()
    if method == 'fasterai_lite':
        sp = Sparsifier(model, 'weight', 'global', 'large_final', layer_type=nn.Linear)
        sp.sparsify_model(pct)
    else:
        method = CriteriaPruning if method == 'CriteriaPruning via torch' else prune.L1Unstructured
        prune.global_unstructured([(m, 'weight') for m in model], pruning_method=method, amount=pct / 100)
    secs = time.perf_counter() - t
    peak = _rss_kb('VmHWM:')
    zeros = sum(int((m.weight == 0).sum()) for m in model)
    return dict(secs=secs, extra_gb=(peak - base) / 2**20, zeros=zeros, target=round(n * pct / 100), params=n)

if __name__ == '__main__':
    if len(sys.argv) > 3 and sys.argv[1] == '--child': print(json.dumps(run(sys.argv[2], float(sys.argv[3])))); sys.exit()
    ap = argparse.ArgumentParser(); ap.add_argument('--repeats', type=int, default=3); ap.add_argument('--sparsity', type=float, default=90.)
    a = ap.parse_args()
    if not 0 < a.sparsity < 100: ap.error(f"--sparsity must be a percentage in (0, 100), got {a.sparsity}")
    res = {'fasterai_lite': [], 'CriteriaPruning via torch': [], 'torch.nn.utils.prune': []}
    for _ in range(a.repeats):
        for m in res:  # alternate, each in a fresh process
            out = subprocess.run([sys.executable, __file__, '--child', m, str(a.sparsity)], capture_output=True, text=True, check=True)
            res[m].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"6 x Linear(4096, 4096): {res['fasterai_lite'][0]['params']:,} weights, global weight sparsity {a.sparsity:g}%, "
          f"{a.repeats} runs each, medians")
    print(f"{'method':<28}{'wall time (s)':>15}{'extra peak RSS (GB)':>22}{'zeros':>14}{'target':>14}")
    for m, rs in res.items():
        print(f"{m:<28}{statistics.median(r['secs'] for r in rs):>15.3f}{statistics.median(r['extra_gb'] for r in rs):>22.2f}"
              f"{rs[0]['zeros']:>14,}{rs[0]['target']:>14,}")
    tp = res['torch.nn.utils.prune']
    for m in ('fasterai_lite', 'CriteriaPruning via torch'):
        print(f"time ratio torch.nn.utils.prune / {m}: {statistics.median(t['secs'] / f['secs'] for f, t in zip(res[m], tp)):.1f}x")
