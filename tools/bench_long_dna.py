"""Long DNA sequences: peak memory and speed from 1k to 50k bases, and a motif-at-the-start task.

    python tools/bench_long_dna.py            # both parts
    python tools/bench_long_dna.py --memory   # part 1 only
    python tools/bench_long_dna.py --motif    # part 2 only

Part 1 trains (forward + backward + step) and predicts on batches of 4 random sequences of
1k, 10k and 50k bases, each in a fresh process so the peak RSS is that length's own, with
``chunk_size=1000`` (4 chunks at a time) and without chunking. Part 2 generates a task whose label is whether a
24-base poly-A tract occurs in the first 500 bases of 20,000-base records, trains through the seqlab CLI with
chunking, and compares with a model that only sees the last 1,000 bases.
Results go to tools/results/long_dna.json.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from report import RESULTS, exit_on_help, write_result

MOTIF = "A" * 24  # a poly-A tract; random 20k-base records hold runs of at most ~10


def measure(length: int, chunk: int | None) -> dict:
    """One child process: a few training steps and one prediction pass at one length."""
    from seqlab.nn import LSTMEncoder, SequenceClassificationHead

    torch.manual_seed(0)
    enc = LSTMEncoder(16, 64, 1, True, pooling="max", vocab_size=6, chunk_size=chunk, chunk_batch=4)
    head = SequenceClassificationHead(enc.output_size, 2)
    opt = torch.optim.AdamW([*enc.parameters(), *head.parameters()], lr=1e-3)
    B = 4
    x = torch.randint(1, 5, (B, length))
    lengths = torch.full((B,), length)
    y = torch.tensor([0, 1, 0, 1])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def step():
        loss = torch.nn.functional.cross_entropy(head(enc(x, lengths)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    start = time.perf_counter()
    step()
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        head(enc(x, lengths))
    predict_s = time.perf_counter() - start
    kb = B * length / 1000
    return {
        "length": length,
        "chunk_size": chunk,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_mib": round(before, 1),
        "train_seconds_per_kb": round(train_s / kb, 4),
        "predict_seconds_per_kb": round(predict_s / kb, 4),
    }


def memory_part() -> list[dict]:
    """Each configuration twice: with glibc's default malloc (timings, everyday RSS), and with
    large blocks mmapped (MALLOC_MMAP_THRESHOLD_=65536) so freed memory leaves the process and
    the peak RSS tracks the memory actually in use rather than heap left over from earlier steps."""
    rows = []
    for chunk in (1000, None):
        for length in (1_000, 10_000, 50_000):
            cmd = [sys.executable, __file__, "--measure", str(length), str(chunk)]
            row = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
            tuned = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout.strip().splitlines()[-1])
            row["peak_rss_mib_mmap_malloc"] = tuned["peak_rss_mib"]
            rows.append(row)
            print(row, flush=True)
    return rows


def write_motif_fasta(path: Path, n: int, length: int, seed: int = 0) -> None:
    """Label pos: MOTIF somewhere in the first 500 bases; neg: random bases only."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for i in range(n):
            seq = rng.choice(list("ACGT"), length)
            label = "pos" if i % 2 else "neg"
            if label == "pos":
                at = int(rng.integers(0, 500 - len(MOTIF)))
                seq[at : at + len(MOTIF)] = list(MOTIF)
            f.write(f">r{i} label={label}\n{''.join(seq)}\n")


def motif_part(workdir: Path) -> dict:
    from seqlab.cli import main

    fasta = workdir / "motif.fa"
    write_motif_fasta(fasta, n=240, length=20_000)
    common = [
        "--config=configs/splice.yaml", "--data.source=fasta", f"--data.path={fasta}", "--data.task_name=motif",
        "--data.encoding=base", "--data.batch_size=8", "--data.test_size=0.25", "--model.embed_dim=16",
        "--model.hidden_size=32", "--model.pooling=max", "--model.position_embedding=0", "--trainer.logger=false", "--trainer.max_epochs=10",
        "--model.optimizer.init_args.lr=0.01", f"--trainer.default_root_dir={workdir}",
        "--trainer.callbacks=[]", "--trainer.enable_checkpointing=false",
    ]  # fmt: skip
    results = {}
    for name, extra in {
        "chunked, whole 20k-base records": ["--model.chunk_size=1000"],
        "last 1,000 bases only": ["--data.max_length=1000", "--data.truncation=tail"],
    }.items():
        start = time.perf_counter()
        cli = main(["fit", *common, *extra])
        test = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
        results[name] = {"test_acc": round(test["test/motif/acc"], 4), "fit_seconds": round(time.perf_counter() - start, 1)}
        print(name, results[name], flush=True)
    return results


if __name__ == "__main__":
    exit_on_help(__doc__)
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(measure(int(sys.argv[2]), None if sys.argv[3] == "None" else int(sys.argv[3]))))
        raise SystemExit
    import tempfile

    out = RESULTS / "long_dna.json"
    summary = json.loads(out.read_text()) if out.exists() else {}
    if "--motif" not in sys.argv:
        summary["memory_and_speed"] = memory_part()
    if "--memory" not in sys.argv:
        with tempfile.TemporaryDirectory() as tmp:
            summary["motif_at_start"] = motif_part(Path(tmp))
    write_result("long_dna", summary)
