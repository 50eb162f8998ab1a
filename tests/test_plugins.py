"""Plug-ins: --import of a file or module (once per process), the arforge.plugins entry points, and
one-line errors for plug-ins that cannot be imported."""

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from arforge.cli import main, split_plugin_args
from arforge.config import ConfigError
from arforge.plugins import import_plugin, load_entry_point_plugins


def test_import_args_are_taken_out_anywhere_on_the_command_line():
    plugins, rest = split_plugin_args(["--import", "a.py", "sample", "--checkpoint", "x", "--import=b", "--cfg", "2"])
    assert plugins == ["a.py", "b"] and rest == ["sample", "--checkpoint", "x", "--cfg", "2"]


def test_a_file_plugin_is_imported_once_and_registers_its_pieces(tmp_path):
    from arforge.samplers import SAMPLERS

    path = tmp_path / "my_plugin.py"
    path.write_text(textwrap.dedent("""
        from arforge.samplers import ARSampler, register_sampler
        LOADS = []
        LOADS.append(1)

        @register_sampler("test_plugin_ar")
        class PluginAR(ARSampler):
            pass
    """))
    first = import_plugin(str(path))
    assert import_plugin(str(path)) is first and first.LOADS == [1]  # a second import does not re-register
    assert "test_plugin_ar" in SAMPLERS
    assert import_plugin("json").__name__ == "json"


def test_unimportable_plugins_give_one_line_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="cannot import 'nowhere.py': no such file"):
        import_plugin("nowhere.py")
    with pytest.raises(ConfigError, match="cannot import 'no_such_module_xyz'"):
        import_plugin("no_such_module_xyz")
    assert main(["--import", "no_such_module_xyz", "sample", "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--import: cannot import 'no_such_module_xyz'" in err


def test_entry_point_plugins_are_loaded(monkeypatch):
    loaded = []
    fake = SimpleNamespace(name="demo", load=lambda: loaded.append("demo"))
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [fake] if group == "arforge.plugins" else [])
    assert load_entry_point_plugins() == ["demo"] and loaded == ["demo"]


def test_every_command_documents_import_and_plugin_benchmarks_get_a_subcommand(tmp_path):
    path = tmp_path / "bench_plugin.py"
    path.write_text(textwrap.dedent("""
        from arforge.eval.bench.registry import register_benchmark

        def add(p):
            p.add_argument("--n", type=int, default=1)

        def run(args):
            print("plugin bench ran", args.n)
            return 0

        register_benchmark("test_plugin_bench", "a benchmark from a plug-in", add, run)
    """))
    out = subprocess.run([sys.executable, "-m", "arforge.cli", "--import", str(path), "bench", "test_plugin_bench", "--n", "3"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "plugin bench ran 3" in out.stdout, out.stderr
    for command in (["train"], ["sample"], ["bench", "samplers"]):
        helped = subprocess.run([sys.executable, "-m", "arforge.cli", *command, "--help"], capture_output=True, text=True)
        assert "--import MODULE_OR_FILE" in helped.stdout, command
