"""Scale: global weight sparsity 90% on a ~100M-parameter MLP (6 x Linear(4096, 4096)).

Wall time and peak RSS of one `Sparsifier.sparsify_model(90)` call, side by side with
`torch.nn.utils.prune.global_unstructured` on an identical model, each run in a fresh subprocess, alternating, with
the peak RSS reset after the model is built. Prints medians over the repeats.
Usage: python bench/scale.py [--repeats 3]"""
import argparse, statistics, subprocess, sys, json

def _rss_kb(field):
    for line in open('/proc/self/status'):
        if line.startswith(field): return int(line.split()[1])

def run(method:str) -> dict:
    import time, torch, torch.nn as nn
    import torch.nn.utils.prune as prune
    from fasterai_lite.sparsifier import Sparsifier  # imports (fastai's, mostly) are not part of the timing
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(4096, 4096) for _ in range(6)])
    n = sum(m.weight.numel() for m in model)
    open('/proc/self/clear_refs', 'w').write('5')  # reset the peak RSS to what is in use now
    base = _rss_kb('VmRSS:')
    t = time.perf_counter()
    if method == 'fasterai_lite':
        sp = Sparsifier(model, 'weight', 'global', 'large_final', layer_type=nn.Linear)
        sp.sparsify_model(90)
    else:
        prune.global_unstructured([(m, 'weight') for m in model], pruning_method=prune.L1Unstructured, amount=0.9)
    secs = time.perf_counter() - t
    peak = _rss_kb('VmHWM:')
    zeros = sum(int((m.weight == 0).sum()) for m in model)
    return dict(secs=secs, extra_gb=(peak - base) / 2**20, zeros=zeros, target=round(n * .9), params=n)

if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[1] == '--child': print(json.dumps(run(sys.argv[2]))); sys.exit()
    ap = argparse.ArgumentParser(); ap.add_argument('--repeats', type=int, default=3); a = ap.parse_args()
    res = {'fasterai_lite': [], 'torch.nn.utils.prune': []}
    for _ in range(a.repeats):
        for m in res:  # alternate, each in a fresh process
            out = subprocess.run([sys.executable, __file__, '--child', m], capture_output=True, text=True, check=True)
            res[m].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"6 x Linear(4096, 4096): {res['fasterai_lite'][0]['params']:,} weights, global weight sparsity 90%, "
          f"{a.repeats} runs each, medians")
    print(f"{'method':<22}{'wall time (s)':>15}{'extra peak RSS (GB)':>22}{'zeros':>14}{'target':>14}")
    for m, rs in res.items():
        print(f"{m:<22}{statistics.median(r['secs'] for r in rs):>15.3f}{statistics.median(r['extra_gb'] for r in rs):>22.2f}"
              f"{rs[0]['zeros']:>14,}{rs[0]['target']:>14,}")
    fl, tp = res['fasterai_lite'], res['torch.nn.utils.prune']
    print(f"time ratio torch/fasterai_lite: {statistics.median(t['secs'] / f['secs'] for f, t in zip(fl, tp)):.1f}x")
