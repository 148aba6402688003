"""Raw audio -> log-mel or MFCC frames, in torch and numpy only (no Lightning, no audio libraries).

The pipeline, for a mono float signal in [-1, 1]:

1. resample to ``sample_rate`` if the clip has another rate (windowed-sinc, Hann-squared window);
2. frame into ``win_length``-sample windows every ``hop_length`` samples (no centring), giving
   ``1 + (N - win_length) // hop_length`` frames; a clip shorter than one window is zero-padded to
   exactly one frame (an empty clip is an error);
3. Hann window, ``|rfft(n_fft)|**2`` power spectrum;
4. triangular mel filterbank (HTK or Slaney mel scale, peaks of 1), ``log(mel + 1e-6)``: log-mel;
5. MFCC: the first ``n_mfcc`` coefficients of the orthonormal DCT-II of the log-mel frame;
6. optional deltas (``deltas=1``) and delta-deltas (``deltas=2``), appended as extra columns.

WAV files are read with the stdlib ``wave`` module: integer PCM of 8, 16, 24 or 32 bits, any
number of channels (mixed down by averaging). Anything else stops with an error naming the file.
"""

from __future__ import annotations

import io
import math
import wave
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from seqlab.errors import SeqlabError

LOG_FLOOR = 1e-6  # added to mel energies before the log, so silence gives log(1e-6), not -inf


@dataclass(frozen=True)
class AudioFeatures:
    """Feature settings; ``asdict`` of it is what checkpoints and cache keys store."""

    kind: Literal["mfcc", "logmel"] = "mfcc"
    sample_rate: int = 16000
    win_length: int = 400  # 25 ms at 16 kHz
    hop_length: int = 160  # 10 ms at 16 kHz
    n_fft: int = 512
    n_mels: int = 40
    n_mfcc: int = 13
    f_min: float = 0.0
    f_max: float | None = None  # None: sample_rate / 2
    mel_scale: Literal["htk", "slaney"] = "htk"
    deltas: int = 0  # 0, 1 (add deltas) or 2 (add deltas and delta-deltas)
    delta_width: int = 2

    def __post_init__(self) -> None:
        if self.kind not in ("mfcc", "logmel"):
            raise SeqlabError(f"Unknown audio feature kind {self.kind!r}; choose mfcc or logmel.")
        if self.mel_scale not in ("htk", "slaney"):
            raise SeqlabError(f"Unknown mel scale {self.mel_scale!r}; choose htk or slaney.")
        if not 0 < self.win_length <= self.n_fft:
            raise SeqlabError(f"The window ({self.win_length} samples) must be positive and at most n_fft ({self.n_fft}). Raise n_fft.")
        if self.hop_length < 1 or self.n_mels < 1 or self.deltas not in (0, 1, 2) or self.delta_width < 1:
            raise SeqlabError("hop_length, n_mels and delta_width must be at least 1, and deltas 0, 1 or 2.")
        if self.kind == "mfcc" and not 1 <= self.n_mfcc <= self.n_mels:
            raise SeqlabError(f"n_mfcc ({self.n_mfcc}) must be between 1 and n_mels ({self.n_mels}).")
        if not 0 <= self.f_min < (self.f_max or self.sample_rate / 2) <= self.sample_rate / 2:
            raise SeqlabError(f"Need 0 <= f_min < f_max <= sample_rate/2 (got {self.f_min}, {self.f_max}, {self.sample_rate / 2}).")

    @property
    def dim(self) -> int:
        """Width of one output frame."""
        return (self.n_mfcc if self.kind == "mfcc" else self.n_mels) * (1 + self.deltas)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- mel scale, filterbank, DCT ------------------------------------------------------------------
def hz_to_mel(f: Tensor, scale: str = "htk") -> Tensor:
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    # Slaney (Auditory Toolbox): linear below 1 kHz (3 mel per 200/3 Hz), logarithmic above.
    linear = f / (200.0 / 3)
    log = 15.0 + torch.log(f.clamp(min=1e-10) / 1000.0) / (math.log(6.4) / 27.0)
    return torch.where(f >= 1000.0, log, linear)


def mel_to_hz(m: Tensor, scale: str = "htk") -> Tensor:
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    linear = m * (200.0 / 3)
    log = 1000.0 * torch.exp((math.log(6.4) / 27.0) * (m - 15.0))
    return torch.where(m >= 15.0, log, linear)


def mel_filterbank(n_fft: int, sample_rate: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None, scale: str = "htk") -> Tensor:
    """(n_fft // 2 + 1, n_mels) triangular filters, equally spaced on the mel scale, peak 1."""
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # (K,) Hz of each FFT bin
    edges = mel_edges(sample_rate, n_mels, f_min, f_max, scale)  # (M + 2,) Hz
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]  # (M,) each
    rising = (bins[:, None] - lower) / (centre - lower)  # (K, M)
    falling = (upper - bins[:, None]) / (upper - centre)  # (K, M)
    return rising.minimum(falling).clamp(min=0).float()


def mel_edges(sample_rate: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None, scale: str = "htk") -> Tensor:
    """(n_mels + 2,) Hz: f_min, the n_mels filter centres, f_max, equally spaced on the mel scale."""
    f_max = sample_rate / 2 if f_max is None else f_max
    lo, hi = (float(hz_to_mel(torch.tensor(f, dtype=torch.float64), scale)) for f in (f_min, f_max))
    return mel_to_hz(torch.linspace(lo, hi, n_mels + 2, dtype=torch.float64), scale)


def mel_centres(sample_rate: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None, scale: str = "htk") -> Tensor:
    """(n_mels,) centre frequency in Hz of each mel filter."""
    return mel_edges(sample_rate, n_mels, f_min, f_max, scale)[1:-1]


def dct_matrix(n: int, k: int) -> Tensor:
    """(n, k) orthonormal DCT-II: ``x @ D`` gives the first k coefficients of x (length n)."""
    i = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(k, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi / n * (i + 0.5) * j) * math.sqrt(2.0 / n)  # (n, k)
    d[:, 0] = 1.0 / math.sqrt(n)
    return d.float()


# -- framing, spectra, features ------------------------------------------------------------------
def frame_signal(signal: Tensor, win_length: int, hop_length: int) -> Tensor:
    """(N,) -> (1 + (N - win) // hop, win) frames; a signal shorter than one window is zero-padded to one frame."""
    if signal.numel() == 0:
        raise SeqlabError("An audio clip holds no samples. Remove it or replace it with a real recording.")
    if signal.numel() < win_length:
        signal = torch.nn.functional.pad(signal, (0, win_length - signal.numel()))
    return signal.unfold(0, win_length, hop_length)  # (T, win)


def power_spectrum(frames: Tensor, n_fft: int) -> Tensor:
    """(T, win) -> (T, n_fft // 2 + 1) power of the Hann-windowed frames."""
    window = torch.hann_window(frames.shape[-1], periodic=True, dtype=frames.dtype)
    return torch.fft.rfft(frames * window, n=n_fft).abs() ** 2


def add_deltas(features: Tensor, order: int, width: int = 2) -> Tensor:
    """(T, F) -> (T, F * (1 + order)): regression deltas ``sum_n n (c[t+n] - c[t-n]) / (2 sum_n n^2)``,
    n = 1..width, with the first and last frame repeated at the edges."""
    out, current = [features], features
    n = torch.arange(1, width + 1, dtype=features.dtype)
    for _ in range(order):
        padded = torch.cat([current[:1].expand(width, -1), current, current[-1:].expand(width, -1)])  # (T + 2w, F)
        windows = padded.unfold(0, 2 * width + 1, 1)  # (T, F, 2w + 1)
        current = ((windows[..., width + 1 :] - windows[..., :width].flip(-1)) * n).sum(-1) / (2 * (n**2).sum())  # (T, F)
        out.append(current)
    return torch.cat(out, dim=1)


class FeatureExtractor:
    """Turns a signal into (T, dim) float32 frames for one AudioFeatures setting (matrices built once)."""

    def __init__(self, settings: AudioFeatures) -> None:
        s = self.settings = settings
        self.mel = mel_filterbank(s.n_fft, s.sample_rate, s.n_mels, s.f_min, s.f_max, s.mel_scale)  # (K, M)
        self.dct = dct_matrix(s.n_mels, s.n_mfcc) if s.kind == "mfcc" else None  # (M, n_mfcc)

    def __call__(self, signal: np.ndarray | Tensor, sample_rate: int) -> Tensor:
        s = self.settings
        x = torch.as_tensor(np.asarray(signal, dtype=np.float32))
        if sample_rate != s.sample_rate:
            x = resample(x, sample_rate, s.sample_rate)
        frames = frame_signal(x, s.win_length, s.hop_length)  # (T, win)
        feats = torch.log(power_spectrum(frames, s.n_fft) @ self.mel + LOG_FLOOR)  # (T, M)
        if self.dct is not None:
            feats = feats @ self.dct  # (T, n_mfcc)
        if s.deltas:
            feats = add_deltas(feats, s.deltas, s.delta_width)
        return feats.float()


# -- resampling ----------------------------------------------------------------------------------
def resample(signal: Tensor, orig_sr: int, new_sr: int, taps: int = 6, rolloff: float = 0.99) -> Tensor:
    """(N,) at orig_sr -> (ceil(N * new / orig),) at new_sr by windowed-sinc interpolation: a
    lowpass at ``rolloff`` times the lower Nyquist frequency, ``taps`` zero crossings each side."""
    if orig_sr <= 0 or new_sr <= 0:
        raise SeqlabError(f"Sample rates must be positive (got {orig_sr} -> {new_sr}).")
    if orig_sr == new_sr:
        return signal
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = orig_sr // g, new_sr // g
    base = min(orig, new) * rolloff
    width = math.ceil(taps * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64) / orig  # (K,)
    t = (-torch.arange(new, dtype=torch.float64)[:, None] / new + idx[None, :]) * base  # (new, K)
    t = t.clamp(-taps, taps)
    window = torch.cos(t * math.pi / taps / 2) ** 2
    t = t * math.pi
    kernels = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / torch.where(t == 0, torch.ones_like(t), t)) * window * (base / orig)
    x = torch.nn.functional.pad(signal.double()[None, None], (width, width + orig))  # (1, 1, N + pad)
    out = torch.nn.functional.conv1d(x, kernels[:, None, :], stride=orig)  # (1, new, L)
    out = out[0].t().reshape(-1)  # (L * new,) interleave the phases
    return out[: math.ceil(new * signal.numel() / orig)].to(signal.dtype)


# -- WAV reading ---------------------------------------------------------------------------------
PCM_SUBFORMAT = bytes.fromhex("0100000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_PCM as stored in the file


def plain_pcm_header(data: bytes) -> bytes:
    """A WAV whose fmt chunk says WAVE_FORMAT_EXTENSIBLE (0xFFFE, what ffmpeg and libsndfile write
    for 24-bit or multichannel audio) with the integer-PCM sub-format, relabelled as plain PCM
    (format 1) so Python's ``wave`` reads it (before 3.12 it refuses the tag); other bytes unchanged."""
    offset = 12
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    while offset + 8 <= len(data):
        chunk, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        if chunk == b"fmt ":
            body = offset + 8
            extensible = size >= 40 and data[body : body + 2] == b"\xfe\xff"
            if extensible and data[body + 24 : body + 40] == PCM_SUBFORMAT:
                return data[:body] + b"\x01\x00" + data[body + 2 :]
            return data
        offset += 8 + size + (size & 1)
    return data


def read_wav(source: str | Path | bytes, name: str | None = None) -> tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], sample rate) of an integer-PCM WAV file (or its bytes)."""
    where = name or str(source if not isinstance(source, bytes) else "<bytes>")
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        with wave.open(io.BytesIO(plain_pcm_header(data)), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except FileNotFoundError:
        raise SeqlabError(f"Audio file {where} does not exist.") from None
    except (wave.Error, EOFError, OSError, ValueError) as err:
        cause = str(err) or f"{type(err).__name__}: cut short"  # an EOFError inside the header has no text
        raise SeqlabError(
            f"Audio file {where} is not a readable WAV file ({cause}). seqlab reads integer-PCM WAV (8/16/24/32-bit); "
            "re-export it, e.g. `ffmpeg -i in -acodec pcm_s16le out.wav`, or remove it."
        ) from None
    if width not in (1, 2, 3, 4):
        raise SeqlabError(f"Audio file {where} has {8 * width}-bit samples; seqlab reads 8, 16, 24 or 32-bit PCM. Re-export it as 16-bit PCM.")
    usable = len(raw) // (width * channels) * width * channels
    if usable < len(raw) or len(raw) < n * width * channels:
        raise SeqlabError(f"Audio file {where} is truncated: its header promises {n} frames, the data holds {len(raw) // (width * channels)}.")
    data = np.frombuffer(raw, dtype=np.uint8)
    if width == 1:
        samples = (data.astype(np.float32) - 128.0) / 128.0  # 8-bit WAV is unsigned
    elif width == 3:
        b = data.reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        samples = (np.where(value >= 1 << 23, value - (1 << 24), value) / float(1 << 23)).astype(np.float32)
    else:
        dtype = {2: "<i2", 4: "<i4"}[width]
        samples = (np.frombuffer(raw, dtype=dtype) / float(1 << (8 * width - 1))).astype(np.float32)
    if samples.size == 0:
        raise SeqlabError(f"Audio file {where} holds no samples. Remove it or replace it with a real recording.")
    return samples.reshape(-1, channels).mean(axis=1), rate
