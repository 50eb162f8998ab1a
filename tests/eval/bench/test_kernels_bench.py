"""``arforge bench kernels`` writes one record per op, shape and implementation (bench.json + bench.md)."""

import json

from arforge.cli import main


def test_kernel_bench_records(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", "kernels", "--sizes", "tiny", "--repeats", "1", "--threads", "1", "--out", str(out)]) == 0
    result = json.loads((out / "bench.json").read_text())
    records = result["records"]
    assert {(r["op"], r["impl"]) for r in records} == {("sampling", "sort_multinomial"), ("sampling", "reference"),
                                                         ("vq_nearest", "full_matrix"), ("vq_nearest", "reference")}
    for r in records:
        assert set(r) >= {"op", "shape", "impl", "ms", "peak_mb", "speedup"} and r["ms"] > 0
        assert r["peak_mb"] is not None and r["peak_mb"] >= 0
    assert "not run (no CUDA device" in result["triton"]
    assert "| vq_nearest | tiny (4096, 512, 8) | `reference` |" in (out / "bench.md").read_text()
