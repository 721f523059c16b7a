"""Zoo: every torchvision classification model, coupled 50% channel sparsification, then lossless compaction.

Per model (random init, no downloads, eval mode, 1 image at a small size the model accepts): `Sparsifier(model,
'out_channel', 'local', 'large_final', coupled=True, layer_type=(nn.Conv2d, nn.Linear)).sparsify_model(50)` (conv
filters and Linear output units together), masks removed, then `Pruner().prune_model`.
Recorded: whether it ran (or the error), the compact model's output difference (lossless: <= the Pruner's rtol, 1e-5),
removable fraction (zero weights removed / zero weights the sparsification made), parameter and MAC ratios, zero channels kept and why, and
the wall time. Prints a table as it goes, then a summary line against the goals (lossless on every model, >= 95%
of models with fewer MACs, no crash).

Each model runs in its own process with its address space capped (--max-gb), so that a model whose graph tracing
runs out of memory is reported as a failure instead of taking the machine down.

Usage: python bench/zoo.py [--models resnet18 vit_b_16 ...] [--max-params 150] [--size 64] [--max-gb 12] [--md FILE [--update]]"""
import argparse, json, re, resource, subprocess, sys, time, warnings
import torch, torch.nn as nn, torchvision
from fasterai_lite.sparsifier import Sparsifier
from fasterai_lite.prune import Pruner
from fasterai_lite.stats import zero_weights

SIZES = {'inception_v3': 96, 'maxvit_t': 224}  # models whose smallest input is larger than --size
EXTRA = {'vit_b_16': dict(image_size=64), 'vit_b_32': dict(image_size=64), 'vit_l_16': dict(image_size=64),
         'vit_l_32': dict(image_size=64), 'vit_h_14': dict(image_size=56)}  # ViTs take their image size as an argument
LOSSLESS = 1e-5

def build(name:str) -> nn.Module:
    kw = dict(EXTRA.get(name, {}))
    if name in ('inception_v3', 'googlenet'): kw.update(aux_logits=False, init_weights=False)
    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None, **kw).eval()

def n_params(name:str) -> float:
    "Millions of parameters, built on the meta device (no memory, no time) where the model's code allows it"
    try:
        with torch.device('meta'): model = build(name)
    except Exception: model = build(name)  # a builder that computes with tensors (RegNet's widths)
    return sum(p.numel() for p in model.parameters()) / 1e6

def run(name:str, size:int) -> dict:
    t = time.perf_counter()
    model = build(name)
    x = torch.randn(1, 3, SIZES.get(name, size), SIZES.get(name, size))
    row = dict(model=name, params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 1))
    try:
        zeros_before = zero_weights(model)  # some models start with zeros (ViT's head): not ours to remove
        sp = Sparsifier(model, 'out_channel', 'local', 'large_final', coupled=True, layer_type=(nn.Conv2d, nn.Linear), example_inputs=x)
        sp.sparsify_model(50); sp.remove()
        pruner = Pruner(verbose=False)
        compact = pruner.prune_model(model, x)
        r = pruner.report
        made = r['zero_weights'] - zeros_before
        row.update(status='ok', diff=r['output_difference'], removable=min(1., (r['zero_weights'] - r['zero_weights_compact']) / made) if made else 1.,
                   params_ratio=r['params'] / r['params_compact'], macs_ratio=r['macs'] / r['macs_compact'],
                   kept=r['channels_kept'], why='; '.join(sorted({k['reason'][:70] for k in r['kept'] if 'output' not in k['reason']})))
    except Exception as e:
        row.update(status=f"{type(e).__name__}: {str(e)[:150]}")
    row['seconds'] = time.perf_counter() - t
    return row

def line(r:dict) -> str:
    if r['status'] != 'ok': return f"| {r['model']} | {r['params_m']} | **{r['status']}** | | | | | | {r['seconds']:.1f} |"
    return (f"| {r['model']} | {r['params_m']} | {'lossless' if r['diff'] <= LOSSLESS else 'DIFFERS'} ({r['diff']:.0e}) | "
            f"{r['removable']:.3f} | {r['params_ratio']:.2f} | {r['macs_ratio']:.2f} | {r['kept']} | {r['why']} | {r['seconds']:.1f} |")

def parse(text:str) -> dict:
    "A row of the markdown table written by `line`, back as the dict it came from (values as printed)"
    c = [s.strip() for s in text.strip().strip('|').split('|')]
    r = dict(model=c[0], params_m=float(c[1]), seconds=float(c[8]))
    if c[2].startswith('**'): return dict(r, status=c[2].strip('*'))
    return dict(r, status='ok', diff=float(c[2].split('(')[1].rstrip(')')), removable=float(c[3]), params_ratio=float(c[4]),
                macs_ratio=float(c[5]), kept=int(c[6]), why=c[7])

def isolated(name:str, size:int, max_gb:float) -> dict:
    "`run` in a fresh process whose address space is capped at `max_gb`"
    def cap(): resource.setrlimit(resource.RLIMIT_AS, (int(max_gb * 2**30),) * 2)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, '--child', name, str(size)], capture_output=True, text=True, preexec_fn=cap)
    if out.returncode == 0: return json.loads(out.stdout.strip().splitlines()[-1])
    last = (out.stderr.strip().splitlines() or [f'exit status {out.returncode}'])[-1]
    return dict(model=name, params_m=round(n_params(name), 1), status=f"process failed: {last[:150]}", seconds=time.perf_counter() - t)

def main():
    if len(sys.argv) == 4 and sys.argv[1] == '--child':
        warnings.filterwarnings('ignore'); print(json.dumps(run(sys.argv[2], int(sys.argv[3])))); return
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', help='model names (default: every classification model of torchvision)')
    p.add_argument('--max-params', type=float, default=150., help='skip models with more parameters, in millions (default 150)')
    p.add_argument('--size', type=int, default=64, help='image side in pixels (default 64)')
    p.add_argument('--max-gb', type=float, default=12., help='address space cap per model process, in GB (default 12)')
    p.add_argument('--md', help='also write the table to this markdown file')
    p.add_argument('--update', action='store_true', help="replace the rows of the models run in --md's table, keep its "
                   "other rows, and recompute the summary over all of them")
    a = p.parse_args()
    if a.update and not a.md: p.error("--update needs --md FILE: the table whose rows to replace")
    every = torchvision.models.list_models(module=torchvision.models)
    names = a.models or every
    unknown = [n for n in names if n not in every]
    if unknown: p.error(f"unknown models {unknown}: choose from {every}")
    warnings.filterwarnings('ignore')
    head = ["| model | params (M) | outputs | removable fraction | params ratio | MACs ratio | zero channels kept | why kept | seconds |",
            "|---|---|---|---|---|---|---|---|---|"]
    print('\n'.join(head), flush=True)
    rows, skipped = [], []
    for n in names:
        size = n_params(n)
        if size > a.max_params: skipped.append(f"{n} ({size:.0f}M)"); continue
        rows.append(isolated(n, a.size, a.max_gb))
        print(line(rows[-1]), flush=True)
    if a.update:  # the models run now replace their rows; the others, and the earlier run's skip list, stay
        lines = open(a.md).read().splitlines()
        earlier = [parse(l) for l in lines if l.startswith('| ') and not l.startswith('| model')]
        rows = [r for r in earlier if r['model'] not in {r['model'] for r in rows}] + rows
        rows.sort(key=lambda r: r['model'])
        earlier_skips = re.search(r"skipped over [\d.]+M params: (.*)\): \d+ crashed", lines[-1])
        if earlier_skips and earlier_skips[1] != 'none': skipped = earlier_skips[1].split(', ')
    ok = [r for r in rows if r['status'] == 'ok']
    lossless = sum(r['diff'] <= LOSSLESS for r in ok)
    compacted = sum(r['macs_ratio'] > 1 for r in ok)
    high = sum(r['removable'] >= 0.95 for r in ok)
    refused = sum('GraphError' in r['status'] for r in rows)  # a clear error naming the tracer's failure
    summary = (f"{len(rows)} models run ({len(skipped)} skipped over {a.max_params:g}M params: {', '.join(skipped) or 'none'}): "
               f"{len(rows) - len(ok) - refused} crashed, {refused} refused (GraphError: graph not traced); "
               f"lossless {lossless}/{len(ok)}; fewer MACs {compacted}/{len(rows)} "
               f"({100 * compacted / max(1, len(rows)):.1f}%); removable fraction >= 0.95 on {high}/{len(ok)}")
    print(summary)
    if a.md:
        with open(a.md, 'w') as f: f.write('\n'.join(head + [line(r) for r in rows]) + f"\n\n{summary}\n")

if __name__ == '__main__': main()
