"All public names of fasterai_lite's core modules: `from fasterai_lite.core.all import *`"
from .checks import *
from .granularity import *
from .criteria import *
from .schedule import *
