"Helpers shared by the tests."
import importlib.util
from pathlib import Path
import torch, torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent

def docs_script(name:str):
    "docs/<name>.py imported as a module (the docs scripts are not part of the package)"
    spec = importlib.util.spec_from_file_location(f'docs_{name}', ROOT/'docs'/f'{name}.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

@torch.no_grad()
def randomize_norms(model):
    "Random BatchNorm statistics and affine parameters, so a wrong removal shows in the outputs"
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * .1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + .5)
            m.weight.copy_(torch.rand(m.num_features, generator=g) + .5); m.bias.copy_(torch.randn(m.num_features, generator=g) * .1)

def digit_folder(root:Path, per_class:int) -> Path:
    "A folder of digit PNGs, one folder per class as a user's images sit: the first `per_class` of each class of `digits_images`"
    import shutil
    from fasterai_lite.data import digits_images
    full, small = digits_images(root/'digits'), root/'digits_small'
    for c in sorted(full.iterdir()):
        (small/c.name).mkdir(parents=True)
        for f in sorted(c.iterdir())[:per_class]: shutil.copy(f, small/c.name/f.name)
    return small

def snapshot(model:nn.Module) -> dict:
    "A copy of every tensor in the model's state, to check later that nothing changed"
    return {k: v.clone() for k, v in model.state_dict().items()}

def unchanged(model:nn.Module, before:dict) -> bool:
    "Whether the model's state has the same names and the same tensors as the `snapshot` `before`"
    after = model.state_dict()
    return list(after) == list(before) and all(torch.equal(after[k], v) for k, v in before.items())
