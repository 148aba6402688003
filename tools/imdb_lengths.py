"""Token-length distribution of the IMDB archive under seqlab's tokenizer (to choose max_length).

python tools/imdb_lengths.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqlab.data.base import fetch_member
from seqlab.data.text import IMDB_ARCHIVE, tokenize

if __name__ == "__main__":
    texts = pd.read_csv(fetch_member(IMDB_ARCHIVE))["review"]
    lengths = np.array([len(tokenize(t)) for t in texts])
    p95 = int(np.percentile(lengths, 95))
    print(f"reviews: {len(lengths)}; tokens: median {int(np.median(lengths))}, mean {lengths.mean():.0f}, p95 {p95}, max {lengths.max()}")
    for cap in (256, 400, 500, 600, 800):
        kept = np.minimum(lengths, cap).sum() / lengths.sum()
        print(f"max_length {cap}: {np.mean(lengths <= cap):.1%} of reviews whole, {kept:.1%} of all tokens kept")
