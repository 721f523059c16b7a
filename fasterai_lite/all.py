"Everything a user needs in one line, in the style of `fastai.vision.all`: `from fasterai_lite.all import *`"
from .core.all import *
from .select import *
from .masks import *
from .graph import *
from .units import *
from .sparsifier import *
from .checkpoint import *
from .callback import *
from .cost import *
from .distill import *
from .prune import *
from .compact import *
from .stats import *
from .plots import *
from .sensitivity import *
from .interop import *
from .deploy import *
