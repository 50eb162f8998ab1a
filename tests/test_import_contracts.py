"""The dependency rules of the design hold: import-linter contracts (pyproject.toml) and light leaves."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept():
    """``lint-imports`` on this checkout (a fresh process: the graph is built from the source files)."""
    script = ("import sys\nfrom importlinter import configuration\nfrom importlinter.application.use_cases import lint_imports\n"
              "configuration.configure()\n"
              f"sys.exit(0 if lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, cache_dir=None, no_logo=True) else 1)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout and "no import cycles" in out.stdout


def test_pretrained_and_kernels_import_no_model_family():
    script = ("import sys, arforge.pretrained, arforge.kernels, arforge.utils.io\n"
              "print(sorted(m for m in sys.modules if m.startswith(('arforge.generators', 'arforge.tokenizers', "
              "'arforge.samplers', 'arforge.auto', 'arforge.train'))))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
