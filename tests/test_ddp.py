"DDP: two processes on CPU (gloo) under fastai's distrib_ctx, launched with torchrun; see tests/ddp_run.py for the fits."
import subprocess, sys
from pathlib import Path
import torch

def test_every_rank_has_the_same_masks_sparsity_and_compact_model(tmp_path):
    script = Path(__file__).parent/'ddp_run.py'
    run = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', str(script), str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ranks = [torch.load(tmp_path/f'rank{r}.pt', weights_only=True) for r in (0, 1)]
    assert set(ranks[0]) == {'random', 'grad_crit', 'dict_prune'}
    for name, a in ranks[0].items():
        b = ranks[1][name]
        assert len(a['events']) == len(b['events']) >= 3, name
        for ea, eb in zip(a['events'], b['events']):  # every pruning event: the same masks on both ranks
            assert ea.keys() == eb.keys() and all(torch.equal(ea[k], eb[k]) for k in ea), name
        assert a['sparsity'] == b['sparsity'] and a['sparsity'][-1] > 0, name
        assert a['model'].keys() == b['model'].keys() and all(torch.equal(a['model'][k], b['model'][k]) for k in a['model']), name
    first = ranks[0]['dict_prune']['events'][0]
    assert sorted(first) == ['0', '3', '7']  # the user's layer names, not DDP's `module.` ones
    compact = ranks[0]['dict_prune']['model']
    assert [compact[f'{i}.weight'].shape[0] for i in ('0', '3', '7')] == [12, 16, 16]  # 16 -> 12, 32 -> 16 on every rank
