"""Run by tests/test_ddp.py as `torchrun --nproc_per_node 2 tests/ddp_run.py OUT`: sparse fits under fastai's DDP on CPU.
Each rank saves the masks of every pruning event, its sparsity column and its compact model to OUT/rank<r>.pt."""
import sys, warnings
from pathlib import Path
import torch, torch.nn as nn
from fastai.learner import Learner
from fastai.callback.core import Callback
from fastai.distributed import *
from fastai.torch_core import set_seed, rank_distrib
from fasterai_lite.all import *
from fasterai_lite.data import digits_dls, digits_cnn

def _broadcast_on_cpu(self, t, rank):
    "fastai's DistributedDL broadcasts its shuffled order as a CUDA tensor (for nccl); on CPU, gloo takes a CPU one"
    t = torch.tensor(t, dtype=torch.long)
    torch.distributed.broadcast(t, rank)
    return t.tolist()
if not torch.cuda.is_available(): DistributedDL._broadcast = _broadcast_on_cpu

class RecordEvents(Callback):
    "Keeps the masks after every pruning event of the running SparsifyCallback"
    order = 41  # after SparsifyCallback's before_fit has built the Sparsifier
    def before_fit(self):
        sp = self.learn.sparsify.sparsifier
        run, self.events = sp.sparsify_model, []
        def recorded(*args, **kwargs):
            run(*args, **kwargs)
            self.events.append({n: sp.masks.mask(n).clone() for n in sp.layers if sp.masks.mask(n) is not None})
        sp.sparsify_model = recorded

RUNS = {  # name: SparsifyCallback arguments
    'random': dict(sparsity=50, granularity='filter', context='global', criteria='random', schedule='agp'),
    'grad_crit': dict(sparsity=70, granularity='weight', context='global', criteria='grad_crit', schedule='agp',
                      layer_type=(nn.Conv2d, nn.Linear)),
    'dict_prune': dict(sparsity={'0': 25, '3': 50, '7': 50}, granularity='filter', context='local', criteria='large_final',
                       schedule='agp', coupled=True, prune=True),
}

def main(out:Path):
    rank, results = rank_distrib(), {}
    warnings.simplefilter('ignore')
    for name, kw in RUNS.items():
        set_seed(rank)  # other weights, data order and random numbers on each rank: DDP and the library must make them agree
        learn = Learner(digits_dls(), digits_cnn(), loss_func=nn.CrossEntropyLoss())
        rec = RecordEvents()
        with learn.distrib_ctx(sync_bn=False, cpu=True): learn.fit_one_cycle(3, 1e-2, cbs=[SparsifyCallback(**kw), rec])
        results[name] = dict(events=rec.events, sparsity=[v[-1] for v in learn.recorder.values],
                             model={k: v.clone() for k, v in learn.model.state_dict().items()})
    torch.save(results, out/f'rank{rank}.pt')

if __name__ == '__main__': main(Path(sys.argv[1]))
