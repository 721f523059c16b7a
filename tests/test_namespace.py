"The public namespace: `from fasterai_lite.all import *` shadows nothing of fastai's, torch's or Python's, and is shadowed by nothing."
import subprocess, sys, pytest

def star_names(module) -> dict:
    "What `from module import *` binds"
    names = getattr(module, '__all__', None) or [n for n in dir(module) if not n.startswith('_')]
    return {n: getattr(module, n) for n in names}

def test_no_name_is_bound_to_two_things():
    import math, torch, fastai.vision.all, fastai.tabular.all, fastai.text.all, fastai.collab
    import fasterai_lite.all
    ours = star_names(fasterai_lite.all)
    for module in (fastai.vision.all, fastai.tabular.all, fastai.text.all, fastai.collab, torch, math):
        theirs = star_names(module)
        assert not [n for n in ours.keys() & theirs.keys() if ours[n] is not theirs[n]], module.__name__

def test_star_imports_in_either_order_keep_the_policy_objects():
    "The issue's case: fastai's star import after ours rebound `random` to Python's module"
    code = ("from fasterai_lite.all import *\nfrom fastai.vision.all import *\n"
            "assert random_scores.name == 'random' and cosine.name == 'cos' and linear.name == 'lin'\n"
            "assert as_criteria('random') is random_scores and as_schedule('cos') is cosine and as_schedule('lin') is linear\n"
            "import random as py_random; assert random is py_random\n")
    subprocess.run([sys.executable, '-c', code], check=True)

def test_old_names_still_work_with_a_deprecation_warning():
    import fasterai_lite.core.criteria as criteria, fasterai_lite.core.schedule as schedule
    with pytest.warns(DeprecationWarning, match=r"fasterai_lite.core.criteria.random is now random_scores"): assert criteria.random is criteria.random_scores
    with pytest.warns(DeprecationWarning, match=r"schedule.cos is now cosine"): assert schedule.cos is schedule.cosine
    with pytest.warns(DeprecationWarning, match=r"schedule.lin is now linear"): assert schedule.lin is schedule.linear
    with pytest.raises(AttributeError, match="has no attribute 'cosh'"): schedule.cosh

def test_data_and_example_nets_are_not_in_all():
    "As fastai keeps synth_dbunch in test_utils: the datasets and the example networks are imported from fasterai_lite.data"
    import fasterai_lite.all, fasterai_lite.data
    assert not set(fasterai_lite.data.__all__) & set(star_names(fasterai_lite.all))
