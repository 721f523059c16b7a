"""Three INT8 toolkits on the same trained models, side by side: why `quantize_onnx` uses ONNX Runtime's quantizer.

For each trained dense CIFAR model of `bench/accuracy.py --flow trained` found in bench/cache/ (`vgg_cifar`,
`resnet20`, per seed), the same 8 calibration batches of 32 training images go to:
- `ort`: `quantize_onnx` with its defaults (ONNX Runtime's static QDQ quantizer: int8 weights per channel on a 7-bit
  range, uint8 activations per tensor, MinMax), the file run in ONNX Runtime;
- `nncf`: NNCF's post-training `nncf.quantize` on the same float ONNX file (its defaults: the performance preset,
  symmetric int8, per-channel weights, bias correction), the file run in ONNX Runtime;
- `torchao`: torchao's PT2E flow with its x86 Inductor quantizer (`X86InductorQuantizer`, its default static
  config), then `torch.compile` with Inductor's freezing, which lowers the quantized graph to its int8 kernels: the
  library's `quantize_inductor(..., reduce_range=False)`;
- `torchao_rr`: the same with the config's `reduce_range=True` (7-bit activations), the setting `quantize_onnx` uses by
  default for its weights because the 8-bit kernels of CPUs without VNNI can overflow: `quantize_inductor`'s default.

Reported per model and seed: test accuracy (the 2,000 test images) of the float model and of each INT8 model, and the
milliseconds of one forward pass at batch 32 on --threads threads, medians of interleaved rounds, ONNX Runtime's
files with each other and PyTorch's models (float eager, torchao compiled) with each other, one loop after the other
(as bench/quantize.py does). Also the time each toolkit takes to quantize (torchao: with its compilation).

Needs NNCF, which is not a dependency of the library: pip install nncf (torchao comes with the deploy extra)

With --compact, each toolkit quantizes the compact model of bench/quantize.py (half of every coupled group's filters
removed from the trained model, no fine-tuning: its accuracy is not the point) and the dense model's eager latency is
timed beside them: how much faster compact INT8 runs than the dense model in each runtime.

Writes bench/results/quantize_peers.md and quantize_peers.csv (with --compact: quantize_peers_compact.md/.csv).

Usage: python bench/quantize_peers.py [--models cifar-resnet20 cifar-vgg] [--threads 2] [--repeats 20] [--compact]"""
import argparse, tempfile, time, warnings
from pathlib import Path
import pandas as pd
import torch
from fasterai_lite.stats import latency_table
from fasterai_lite.deploy import export_onnx, OnnxModel
from fasterai_lite.quantize import quantize_onnx, quantize_inductor, top1_accuracy
from fasterai_lite.data import cifar_dls
from quantize import CACHE, RESULTS, CIFAR, dense, compact, calibration, cached_seeds

def nncf_int8(fp32:Path, out:Path, calib:list) -> Path:
    "NNCF's post-training quantization of the float ONNX file `fp32`, with its defaults, written to `out`"
    import nncf, onnx
    model = onnx.load(str(fp32))
    name = model.graph.input[0].name
    data = nncf.Dataset(calib, lambda b: {name: b[0].numpy()})
    onnx.save(nncf.quantize(model, data, subset_size=len(calib)), str(out))
    return out

def measure(name:str, seed:int, threads:int, repeats:int, tmp:Path, compacted:bool=False) -> dict:
    "One row: the trained model of `seed` (or its compact copy) in 8 bits by each toolkit, its test accuracy, file size, quantize time and batch-32 latency"
    torch.set_num_threads(threads)
    dls = cifar_dls(bs=32, augment=False)
    calib = calibration(name, dls, 32)
    x32 = calib[0][0]
    trained = dense(name, seed)
    d = compact(trained, x32[:1]) if compacted else trained  # the float model the toolkits quantize
    export_onnx(d, tmp/'fp32.onnx', x32[:1])
    seconds = {}
    t = time.perf_counter(); quantize_onnx(d, tmp/'ort.onnx', calib, min_agreement=0); seconds['ort'] = time.perf_counter() - t
    t = time.perf_counter(); nncf_int8(tmp/'fp32.onnx', tmp/'nncf.onnx', calib); seconds['nncf'] = time.perf_counter() - t
    t = time.perf_counter(); tao = quantize_inductor(d, calib, reduce_range=False, min_agreement=0); seconds['torchao'] = time.perf_counter() - t
    t = time.perf_counter(); tao_rr = quantize_inductor(d, calib, min_agreement=0); seconds['torchao_rr'] = time.perf_counter() - t
    ort = {k: OnnxModel(tmp/f"{k}.onnx", threads) for k in ('fp32', 'ort', 'nncf')}
    row = dict(model=name, seed=seed, float_acc=100 * top1_accuracy(d, dls.valid),
               **{f"{k}_acc": 100 * top1_accuracy(m, dls.valid) for k, m in ort.items() if k != 'fp32'},
               torchao_acc=100 * top1_accuracy(tao, dls.valid), torchao_rr_acc=100 * top1_accuracy(tao_rr, dls.valid),
               **{f"{k}_quantize_s": v for k, v in seconds.items()},
               **{f"{k}_mb": (tmp/f"{k}.onnx").stat().st_size / 2**20 for k in ('fp32', 'ort', 'nncf')})
    dense_eager = {'dense_eager': trained} if compacted else {}
    for models in ({f"{k}_onnxruntime": m for k, m in ort.items()}, {**dense_eager, 'float_eager': d, 'torchao_compiled': tao, 'torchao_rr_compiled': tao_rr}):
        row.update({f"{k}_bs32_ms": float(v) for k, v in latency_table(models, x32, repeats=repeats)['median'].items()})
    return row

def table(df:pd.DataFrame) -> str:
    "Markdown: per model, means over seeds (and the worst seed's INT8 - float), accuracy and batch-32 latency per toolkit"
    lines = ["| model | seeds | toolkit | runs in | accuracy % | INT8 - float (worst seed) | ms at batch 32 | vs float in the same runtime | quantize s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, g in df.groupby('model'):
        lines.append(f"| {name} | {len(g)} | float | PyTorch eager / ONNX Runtime | {g.float_acc.mean():.2f} | | "
                     f"{g.float_eager_bs32_ms.median():.2f} / {g.fp32_onnxruntime_bs32_ms.median():.2f} | | |")
        if 'dense_eager_bs32_ms' in g: lines.append(f"| | | dense float (not compact) | PyTorch eager | | | {g.dense_eager_bs32_ms.median():.2f} | | | |")
        for k, runtime, base in (('ort', 'ONNX Runtime', 'fp32_onnxruntime'), ('nncf', 'ONNX Runtime', 'fp32_onnxruntime'),
                                 ('torchao', 'PyTorch (Inductor)', 'float_eager'), ('torchao_rr', 'PyTorch (Inductor)', 'float_eager')):
            ms = g[f"{k}_onnxruntime_bs32_ms" if not k.startswith('torchao') else f'{k}_compiled_bs32_ms']
            diff = g[f"{k}_acc"] - g.float_acc
            lines.append(f"| | | {k} | {runtime} | {g[f'{k}_acc'].mean():.2f} | {diff.mean():+.2f} ({diff.min():+.2f}) | {ms.median():.2f} | "
                         f"{(g[f'{base}_bs32_ms'] / ms).median():.2f}x | {g[f'{k}_quantize_s'].median():.1f} |"
                         + (f" {(g.dense_eager_bs32_ms / ms).median():.2f}x |" if 'dense_eager_bs32_ms' in g else ''))
    if 'dense_eager_bs32_ms' in df:  # the compact models: one more column, against the dense model in eager PyTorch
        lines[0] += " vs the dense model in eager PyTorch |"; lines[1] += "---|"
    return '\n'.join(lines) + '\n'

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', default=list(CIFAR), choices=list(CIFAR))
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=20)
    p.add_argument('--compact', action='store_true', help="quantize the compact models (half of every group's filters removed)")
    a = p.parse_args()
    warnings.filterwarnings('ignore')
    rows = []
    for name in a.models:
        seeds = cached_seeds(name)
        if not seeds: raise SystemExit(f"No trained {name} in {CACHE}: run bench/accuracy.py --task {name} --flow trained --configs dense first")
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp: rows.append(measure(name, seed, a.threads, a.repeats, Path(tmp), a.compact))
            print({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
    df = pd.DataFrame(rows)
    out = 'quantize_peers_compact' if a.compact else 'quantize_peers'
    df.to_csv(RESULTS/f'{out}.csv', index=False)
    md = table(df); (RESULTS/f'{out}.md').write_text(md); print(md)
