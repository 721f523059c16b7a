"Helpers shared by the tests."
import torch, torch.nn as nn

@torch.no_grad()
def randomize_norms(model):
    "Random BatchNorm statistics and affine parameters, so a wrong removal shows in the outputs"
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * .1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + .5)
            m.weight.copy_(torch.rand(m.num_features, generator=g) + .5); m.bias.copy_(torch.randn(m.num_features, generator=g) * .1)
