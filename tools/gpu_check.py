"""Checks that need a CUDA GPU: the cuDNN LSTM path, mixed precision, speed and memory.

    python tools/gpu_check.py

1. LSTMEncoder on CUDA (cuDNN kernels, padded batch, reverse direction within each length)
   against the reference cell from the gate equations, and against the CPU: outputs and
   gradients, float32 and float64.
2. Padding invariance on CUDA: a sequence alone and inside a longer padded batch.
3. Autocast float16 and bfloat16: the LSTM's dtype with and without ``float32_lstm``, and the
   distance of the pooled output from float32.
4. Speed and peak memory of one training step (forward + backward) at IMDB-like shapes,
   float32 / 16-mixed / bf16-mixed.

Results go to tools/results/gpu_check.json. End-to-end fits on the GPU use tools/bench_fit.py
with ``--trainer.accelerator=gpu --trainer.precision=16-mixed`` and so on.
"""

from __future__ import annotations

import time

import torch
from report import exit_on_help, write_result

from seqlab.nn import LSTMEncoder


def encoder(dtype: torch.dtype, device: str, **kw) -> LSTMEncoder:
    torch.manual_seed(0)
    kw = {"pooling": "max", "conv_kernel": 3, **kw}
    return LSTMEncoder(24, 32, 2, True, feature_dim=5, **kw).to(device=device, dtype=dtype).train()  # no dropout; cuDNN's backward needs train mode


def batch(dtype: torch.dtype, device: str, B: int = 6, T: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, 5, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    lengths = torch.tensor([T, 3, T - 7, 1, 17, T - 1][:B])
    return x, lengths


def outputs_and_grads(enc: LSTMEncoder, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    enc.zero_grad()
    out = enc(x, lengths)
    (out * torch.linspace(-1, 1, out.numel(), device=out.device, dtype=out.dtype).view_as(out)).sum().backward()
    return out.detach().cpu().double(), [p.grad.detach().cpu().double() for p in enc.parameters()]


def max_diff(a, b) -> float:
    if isinstance(a, list):
        return max(max_diff(x, y) for x, y in zip(a, b))
    return float((a - b).abs().max())


def equality() -> dict:
    result = {}
    for dtype in (torch.float32, torch.float64):
        x, lengths = batch(dtype, "cuda")
        fast = outputs_and_grads(encoder(dtype, "cuda", impl="fast"), x, lengths)
        ref = outputs_and_grads(encoder(dtype, "cuda", impl="reference"), x, lengths)
        cpu = outputs_and_grads(encoder(dtype, "cpu", impl="fast"), x.cpu(), lengths)
        name = str(dtype).split(".")[1]
        result[name] = {
            "cuda_fast_vs_reference_output": max_diff(fast[0], ref[0]),
            "cuda_fast_vs_reference_grads": max_diff(fast[1], ref[1]),
            "cuda_vs_cpu_output": max_diff(fast[0], cpu[0]),
            "cuda_vs_cpu_grads": max_diff(fast[1], cpu[1]),
        }
    return result


def padding_invariance() -> dict:
    enc = encoder(torch.float32, "cuda")
    x, lengths = batch(torch.float32, "cuda")
    with torch.no_grad():
        together = enc(x, lengths)
        alone = torch.cat([enc(x[i : i + 1, : int(n)], lengths[i : i + 1]) for i, n in enumerate(lengths)])
    return {"alone_vs_in_padded_batch": max_diff(together.cpu(), alone.cpu())}


def mixed_precision() -> dict:
    result = {}
    x, lengths = batch(torch.float32, "cuda", B=6, T=40)
    with torch.no_grad():
        reference = encoder(torch.float32, "cuda")(x, lengths).double()
    for name, dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        for keep in (False, True):
            enc = encoder(torch.float32, "cuda", float32_lstm=keep)
            seen: list[str] = []
            hook = enc.forward_layers[0].register_forward_hook(lambda m, i, o, seen=seen: seen.append(str(o[0].dtype).split(".")[1]))
            with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
                out = enc(x, lengths)
            hook.remove()
            result[f"{name}{'_float32_lstm' if keep else ''}"] = {
                "lstm_output_dtype": seen[0],
                "max_diff_vs_float32": max_diff(out.double(), reference),
            }
    return result


def speed() -> dict:
    E, H, B, T = 128, 128, 64, 400
    result = {"shape": f"batch {B}, length {T}, embed {E}, hidden {H}, bidirectional, 1 layer, forward + backward"}
    x = torch.randn(B, T, E, device="cuda")
    lengths = torch.randint(T // 4, T + 1, (B,))
    lengths[0] = T
    for name, dtype in (("float32", None), ("16-mixed", torch.float16), ("bf16-mixed", torch.bfloat16)):
        enc = LSTMEncoder(E, H, 1, True, pooling="max").cuda().train()

        def step(enc=enc, dtype=dtype):
            with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                out = enc(x, lengths)
            out.float().sum().backward()

        for _ in range(3):
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(20):
            step()
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / 20
        result[name] = {
            "ms_per_step": round(seconds * 1000, 2),
            "sequences_per_second": round(B / seconds),
            "peak_mib": round(torch.cuda.max_memory_allocated() / 2**20),
        }
    return result


def main() -> dict:
    if not torch.cuda.is_available():
        raise SystemExit("No CUDA GPU here: tools/gpu_check.py checks the GPU path only.")
    summary = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version(),
    }
    for name, check in (("equality", equality), ("padding", padding_invariance), ("mixed_precision", mixed_precision), ("speed", speed)):
        try:
            summary[name] = check()
        except Exception as e:  # report every check, even after one fails
            summary[name] = {"error": f"{type(e).__name__}: {e}"}
    write_result("gpu_check", summary)
    return summary


if __name__ == "__main__":
    exit_on_help(__doc__)
    main()
