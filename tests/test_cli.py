import subprocess
import sys

from tests.conftest import ROOT


def run(*args):
    return subprocess.run([sys.executable, str(ROOT / 'cli.py'), *args], capture_output=True, text=True, cwd=ROOT)


def test_help_lists_the_product_commands():
    r = run('--help')
    assert r.returncode == 0, r.stderr
    for cmd in ('dump-teachers', 'train-student', 'export-report', 'make-synthetic', 'demo'):
        assert cmd in r.stdout


def test_each_command_has_help():
    for cmd in ('dump-teachers', 'train-student', 'export-report', 'make-synthetic', 'cache-fidelity'):
        r = run(cmd, '--help')
        assert r.returncode == 0 and '--' in r.stdout, (cmd, r.stderr)


def test_bad_config_path_is_a_clear_error():
    r = run('dump-teachers', '--config', 'does/not/exist.py')
    assert r.returncode != 0 and 'does not exist' in r.stderr
