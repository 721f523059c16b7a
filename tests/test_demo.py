"""The demo command: runs as a module, and refuses bad options with argparse's usage message before any training.
The demo's whole run is in the `07_demo` notebook, which `nbdev_test` runs."""
import contextlib, io, subprocess, sys, pytest
from fasterai_lite.demo import run_demo

def test_demo_runs_as_a_module():
    h = subprocess.run([sys.executable, '-m', 'fasterai_lite.demo', '--help'], capture_output=True, text=True, timeout=300)
    assert h.returncode == 0 and '--sparsity' in h.stdout and '--criteria' in h.stdout and '--schedule' in h.stdout
    assert 'vision_learner' in h.stdout and '--size' in h.stdout and '--repeats' in h.stdout

@pytest.mark.parametrize('args, named', [(('--schedule', 'fastest'), "invalid choice: 'fastest'"), (('--sparsity', '150'), '150'),
    (('--granularity', 'nope'), "'nope'"), (('--epochs', '0'), 'got 0'), (('--epochs', '-1'), 'got -1'), (('--lr', '-1'), 'got -1'),
    (('--lr', 'inf'), 'got inf'), (('--lr', 'nan'), 'got nan'), (('--size', '4'), 'got 4'), (('--arch', 'vgg'), "invalid choice: 'vgg'"),
    (('--repeats', '0'), 'got 0')])
def test_demo_checks_every_option_before_training(args, named):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e: run_demo(list(args))
    assert e.value.code == 2 and named in err.getvalue() and 'usage: python -m fasterai_lite.demo' in err.getvalue()
    assert out.getvalue() == ''  # nothing trained
