"""Token-length distribution of the IMDB archive under seqlab's tokenizer (to choose max_length).

    python tools/imdb_lengths.py

Writes tools/results/imdb_lengths.json.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from report import exit_on_help, write_result

from seqlab.data.base import fetch_member
from seqlab.data.text import IMDB_ARCHIVE, tokenize

if __name__ == "__main__":
    exit_on_help(__doc__)
    texts = pd.read_csv(fetch_member(IMDB_ARCHIVE))["review"]
    lengths = np.array([len(tokenize(t)) for t in texts])
    caps = {}
    for cap in (256, 400, 500, 600, 800):
        caps[str(cap)] = {
            "reviews_whole": round(float(np.mean(lengths <= cap)), 4),
            "tokens_kept": round(float(np.minimum(lengths, cap).sum() / lengths.sum()), 4),
        }
    summary = {
        "reviews": len(lengths),
        "tokens_median": int(np.median(lengths)),
        "tokens_mean": round(float(lengths.mean()), 1),
        "tokens_p95": int(np.percentile(lengths, 95)),
        "tokens_max": int(lengths.max()),
        "max_length": caps,
    }
    write_result("imdb_lengths", summary)
