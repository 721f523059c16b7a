"The package's public surface."
import importlib

def test_core_all_exports_every_public_name():
    ns = {}
    exec('from fasterai_lite.core.all import *', ns)
    for mod in ('granularity', 'criteria', 'schedule'):
        m = importlib.import_module(f'fasterai_lite.core.{mod}')
        missing = [n for n in m.__all__ if n not in ns]
        assert not missing, (mod, missing)
    for name in ('Granularities', 'get_dim', 'allowed_granularities', 'available_modules', 'add_granularity',
                 'Criteria', 'Reducer', 'Normalizer', 'available_criterias', 'grad_crit', 'movmag',
                 'Schedule', 'sched_oneshot', 'sched_iterative', 'sched_agp', 'sched_onecycle', 'sched_cos',
                 'sched_lin', 'sched_dsd', 'one_shot', 'iterative', 'agp', 'one_cycle', 'cosine', 'linear', 'dsd', 'random_scores',
                 'available_schedules'):
        assert name in ns, name

def test_version():
    import fasterai_lite
    assert fasterai_lite.__version__
