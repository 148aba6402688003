"""Speed of one bidirectional LSTM training step (forward + backward) on variable-length batches.

    python tools/bench_lstm_speed.py

Compares, on the same batches: nn.LSTM with pack_padded_sequence (correct, the usual way);
seqlab's LSTMEncoder (correct: padded batch, reverse direction run within each length);
nn.LSTM on the padded batch as is (fast but wrong: the reverse direction reads padding first);
seqlab with length-bucketed batches instead of random ones; and seqlab under bf16 autocast.
Results go to tools/results/lstm_speed.json.
"""

from __future__ import annotations

import time

import torch
from report import exit_on_help, write_result

from seqlab.nn import LSTMEncoder

E, H, B, MAX_T = 128, 64, 64, 500


def lengths_like_imdb(n: int, generator: torch.Generator) -> torch.Tensor:
    """Review lengths in tokens: log-normal around a median of ~230, capped at MAX_T."""
    return (torch.randn(n, generator=generator) * 0.6 + 5.45).exp().round().clamp(10, MAX_T).long()


def timed(step, repeats: int = 3) -> float:
    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def main() -> dict:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    pool = lengths_like_imdb(B * 20, g)
    random_batch = pool[:B]
    bucketed_batch = pool.sort(descending=True).values[B * 10 : B * 11]  # one batch of a length-sorted pool
    enc = LSTMEncoder(E, H, 1, True, pooling="max")
    lstm = torch.nn.LSTM(E, H, 1, batch_first=True, bidirectional=True)

    def batch(lengths):
        x = torch.randn(len(lengths), int(lengths.max()), E)
        return x, lengths

    def seqlab_step(lengths, bf16=False):
        x, ls = batch(lengths)

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = enc(x, ls)
            out.float().sum().backward()

        return step

    def packed_step(lengths):
        x, ls = batch(lengths)

        def step():
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, ls, batch_first=True, enforce_sorted=False)
            out, _ = lstm(packed)
            torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)[0].sum().backward()

        return step

    def padded_wrong_step(lengths):
        x, _ = batch(lengths)
        return lambda: lstm(x)[0].sum().backward()

    rows = {
        "nn.LSTM + pack_padded_sequence (random batch)": timed(packed_step(random_batch)),
        "seqlab LSTMEncoder, padded (random batch)": timed(seqlab_step(random_batch)),
        "nn.LSTM on padding, reverse direction wrong (random batch)": timed(padded_wrong_step(random_batch)),
        "seqlab LSTMEncoder, padded (length-bucketed batch)": timed(seqlab_step(bucketed_batch)),
        "seqlab LSTMEncoder, bf16 autocast (random batch)": timed(seqlab_step(random_batch, bf16=True), repeats=1),
    }
    tokens = {"random": int(random_batch.sum()), "bucketed": int(bucketed_batch.sum())}
    result = {
        "batch": f"{B} sequences, embedding {E}, hidden {H} per direction, lengths log-normal (median ~230, max {MAX_T})",
        "tokens_per_batch": tokens,
        "seconds_per_step": {k: round(v, 3) for k, v in rows.items()},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    write_result("lstm_speed", result)
    return result


if __name__ == "__main__":
    exit_on_help(__doc__)
    main()
