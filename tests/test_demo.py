"The demo command: runs end to end as a module, and refuses bad options with argparse's usage message."
import subprocess, sys

def run(*args):
    return subprocess.run([sys.executable, '-m', 'fasterai_lite.demo', *args], capture_output=True, text=True, timeout=600)

def test_demo_runs_and_compares():
    r = run('--epochs', '2', '--arch', 'resnet')
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    assert 'dense' in out and 'compact' in out and 'latency bs=1 (ms)' in out and 'fewer MACs' in out
    assert 'deploy: the compact model in ONNX Runtime' in out and 'faster than dense' in out
    assert 'epoch' in out and 'sparsity' in out  # fastai's training table, with the sparsity column

def test_demo_help_and_bad_option():
    h = run('--help')
    assert h.returncode == 0 and '--sparsity' in h.stdout and '--criteria' in h.stdout and '--schedule' in h.stdout
    bad = run('--schedule', 'fastest')
    assert bad.returncode == 2 and "invalid choice: 'fastest'" in bad.stderr

def test_demo_checks_every_option_before_training():
    for args, named in ((('--sparsity', '150'), '150'), (('--granularity', 'nope'), "'nope'"), (('--epochs', '0'), 'got 0'),
                        (('--epochs', '-1'), 'got -1'), (('--lr', '-1'), 'got -1')):
        r = run(*args)
        assert r.returncode == 2, (args, r.stderr[-500:])
        assert named in r.stderr and 'Traceback' not in r.stderr, (args, r.stderr[-500:])
        assert 'dense baseline' not in r.stdout  # nothing trained
