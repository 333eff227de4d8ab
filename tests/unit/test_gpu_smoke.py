"""bench/gpu_smoke.py's report of the GPU generation: nvidia-smi's compute capability and how MXNet runs on it."""
from bench import gpu_smoke

QUERY = """0, NVIDIA A10G, 8.6, 535.104.05
1, NVIDIA H200, 9.0, 550.54.15
2, NVIDIA L4, 8.9, 550.54.15
3, Tesla V100-SXM2-16GB, 7.0, 535.104.05
4, Some Old GPU, [N/A], 470.1
"""


def test_the_query_is_parsed_per_gpu():
    gpus = gpu_smoke.parse_gpu_query(QUERY)
    assert [g["name"] for g in gpus] == ["NVIDIA A10G", "NVIDIA H200", "NVIDIA L4", "Tesla V100-SXM2-16GB",
                                         "Some Old GPU"]
    assert [g["compute_capability"] for g in gpus] == ["8.6", "9.0", "8.9", "7.0", None]
    assert gpus[1]["driver"] == "550.54.15" and gpus[1]["index"] == "1"


def test_architectures_newer_than_cuda_11_7_need_ptx_jit():
    assert [gpu_smoke.kernel_support(c) for c in ("7.0", "7.5", "8.0", "8.6", "8.7")] == ["native"] * 5
    assert [gpu_smoke.kernel_support(c) for c in ("8.9", "9.0", "10.0")] == ["ptx-jit"] * 3
    assert gpu_smoke.kernel_support(None) == "unknown"
