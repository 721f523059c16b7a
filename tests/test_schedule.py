"Schedules: shape of every ready-made curve, no state between uses, bad parameters."
import math, pickle, pytest, numpy as np
from functools import partial
from fasterai_lite.core.all import *

PCTS = [i / 200 for i in range(201)]

@pytest.mark.parametrize('name', available_schedules())
def test_ready_made_curves(name):
    s = as_schedule(name)
    v = [s.progress(p) for p in PCTS]
    assert all(-1e-9 <= x <= 1 + 1e-9 for x in v)
    assert v[0] == pytest.approx(0, abs=3e-3)
    if name == 'dsd':
        assert max(v) == pytest.approx(1) and v[-1] == pytest.approx(0)
    else:
        assert v[-1] == pytest.approx(1)
        assert all(b >= a - 1e-12 for a, b in zip(v, v[1:])), "sparsity must never go down"

def test_start_and_end_pct_bound_the_window():
    s = Schedule(sched_lin, start_pct=.25, end_pct=.75)
    assert [s(p) for p in (0, .25, .5, .75, 1)] == [0, 0, .5, 1, 1]

def test_no_state_between_fits_or_users():
    "Two users interleaving calls on one instance see what each would see alone"
    alone = [agp.progress(p) for p in PCTS]
    a, b = [], []
    for p, q in zip(PCTS, reversed(PCTS)):
        a.append(agp.progress(p)); b.append(agp.progress(q))
    assert a == alone and b == alone[::-1]
    assert [agp.progress(p) for p in PCTS] == alone

def test_iterative_steps_and_custom_n_steps():
    s = Schedule(partial(sched_iterative, n_steps=4))
    assert sorted({round(s(p), 6) for p in PCTS}) == [0, .25, .5, .75, 1]

def test_schedules_pickle():
    for name in available_schedules():
        s = pickle.loads(pickle.dumps(as_schedule(name)))
        assert [s(p) for p in PCTS] == [as_schedule(name)(p) for p in PCTS]

@pytest.mark.parametrize('kw, msg', [
    (dict(start_pct=.6, end_pct=.4), r"start_pct \(0.6\) must not be after end_pct \(0.4\)"),
    (dict(start_pct=-.01), r"start_pct must be a number in \[0, 1\], got -0.01"),
    (dict(end_pct=2), r"end_pct must be a number in \[0, 1\], got 2"),
    (dict(end_pct=math.nan), "got nan"),
    (dict(start_pct='0.2'), "got '0.2'"),
    (dict(start_pct=True), "got True"),
    (dict(start_val=math.nan), "start_val must be a finite number"),
])
def test_bad_parameters(kw, msg):
    with pytest.raises(ValueError, match=msg): Schedule(sched_lin, **kw)

def test_non_callable_function():
    with pytest.raises(ValueError, match="sched_func must be callable, got 'agp'"): Schedule('agp')

@pytest.mark.parametrize('pct', [-0.1, 1.01, math.nan, None])
def test_bad_progress_input(pct):
    with pytest.raises(ValueError, match="pct_train must be a number in"): agp.progress(pct)

def test_numpy_numbers_are_accepted():
    assert agp.progress(np.float32(1.0)) == 1.0 and Schedule(sched_lin, end_pct=np.float64(.5))(0.25) == .5

def test_unknown_schedule_name():
    with pytest.raises(ValueError, match=r"Unknown schedule 'cosine': allowed are \['one_shot', 'iterative', 'agp', 'one_cycle', 'cos', 'lin', 'dsd'\]"):
        as_schedule('cosine')
