"""Speech: audio features against independent derivations, WAV reading, frame files, the real
archives, normalisation, SpecAugment, prediction inputs and the errors for bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import seqlab
from seqlab.data.audio import (
    AudioFeatures,
    FeatureExtractor,
    add_deltas,
    dct_matrix,
    frame_signal,
    mel_centres,
    mel_filterbank,
    read_wav,
    resample,
)
from seqlab.data.base import encode_labels, fetch_member, train_val_test
from seqlab.data.speech import (
    FSDD_ARCHIVE,
    SpeechCollate,
    SpeechDataModule,
    labelled_wavs,
    load_frames,
    random_crop,
    spec_augment,
    time_stretch,
    with_deltas,
)
from seqlab.data.ts import channel_stats
from seqlab.errors import SeqlabError

from .helpers import write_wav

ROOT = Path(__file__).resolve().parents[1]


def tone(freq: float, seconds: float = 0.25, sr: int = 16000, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sr / len(x))


# -- numpy references, written from the textbook formulas ------------------------------------------
def np_hz_to_mel(f, scale):
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 2595 * np.log10(1 + f / 700)
    return np.where(f < 1000, 3 * f / 200, 15 + 27 * np.log(np.maximum(f, 1e-10) / 1000) / np.log(6.4))


def np_mel_to_hz(m, scale):
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700 * (10 ** (m / 2595) - 1)
    return np.where(m < 15, 200 * m / 3, 1000 * 6.4 ** ((m - 15) / 27))


def np_filterbank(n_fft, sr, n_mels, f_min, f_max, scale):
    points = np_mel_to_hz(np.linspace(np_hz_to_mel(f_min, scale), np_hz_to_mel(f_max, scale), n_mels + 2), scale)
    fb = np.zeros((n_fft // 2 + 1, n_mels))
    for m in range(n_mels):
        lo, c, hi = points[m], points[m + 1], points[m + 2]
        for k in range(n_fft // 2 + 1):
            f = k * sr / n_fft
            if lo <= f <= c:
                fb[k, m] = (f - lo) / (c - lo)
            elif c < f <= hi:
                fb[k, m] = (hi - f) / (hi - c)
    return fb


# -- audio features --------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [400, 401, 559, 560, 16000, 16123])
def test_frame_count_is_one_plus_floor_of_rest_over_hop(n):
    frames = frame_signal(torch.arange(n, dtype=torch.float32), 400, 160)
    assert frames.shape == (1 + (n - 400) // 160, 400)
    assert frames[-1, 0] == 160 * (len(frames) - 1)  # frame t starts at sample t * hop


def test_clip_shorter_than_one_window_is_zero_padded_to_one_frame_and_empty_clip_is_an_error():
    frames = frame_signal(torch.ones(150), 400, 160)
    assert frames.shape == (1, 400) and frames[0, :150].sum() == 150 and frames[0, 150:].abs().sum() == 0
    assert FeatureExtractor(AudioFeatures())(np.full(100, 0.1), 16000).shape == (1, 13)
    with pytest.raises(SeqlabError, match="no samples"):
        frame_signal(torch.zeros(0), 400, 160)


@pytest.mark.parametrize("scale", ["htk", "slaney"])
def test_mel_filterbank_matches_the_formula_in_numpy(scale):
    ours = mel_filterbank(512, 16000, 40, 20.0, 7600.0, scale).numpy()
    np.testing.assert_allclose(ours, np_filterbank(512, 16000, 40, 20.0, 7600.0, scale), atol=1e-6)
    assert ours.shape == (257, 40) and ours.max() <= 1.0 and (ours.sum(0) > 0).all()  # no empty filter


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2500.0, 5000.0])
def test_a_pure_tone_lands_in_the_mel_bin_whose_centre_is_nearest(freq):
    settings = AudioFeatures(kind="logmel", n_mels=40, n_fft=1024)
    logmel = FeatureExtractor(settings)(tone(freq), 16000)  # (T, 40)
    centres = mel_centres(16000, 40).numpy()
    assert int(logmel.mean(0).argmax()) == int(np.abs(centres - freq).argmin())


def test_dct_is_orthonormal_and_mfcc_is_the_dct_of_log_mel():
    d = dct_matrix(40, 40).double()
    torch.testing.assert_close(d.T @ d, torch.eye(40, dtype=torch.float64), atol=1e-6, rtol=0)
    n, i = 40, np.arange(40)
    for k in (0, 1, 7):  # DCT-II, orthonormal scaling, from the definition
        ref = np.cos(np.pi * k * (2 * i + 1) / (2 * n)) * (np.sqrt(1 / n) if k == 0 else np.sqrt(2 / n))
        np.testing.assert_allclose(d[:, k].numpy(), ref, atol=1e-6)
    x = tone(700) + 0.05 * np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    logmel = FeatureExtractor(AudioFeatures(kind="logmel"))(x, 16000)
    mfcc = FeatureExtractor(AudioFeatures(kind="mfcc", n_mfcc=13))(x, 16000)
    ref = np.array([[np.sum(row * np.cos(np.pi * k * (2 * i + 1) / 80)) for k in range(13)] for row in logmel.double().numpy()])
    ref *= np.r_[np.sqrt(1 / 40), np.full(12, np.sqrt(2 / 40))]
    np.testing.assert_allclose(mfcc.numpy(), ref, atol=1e-3)


def test_deltas_of_a_linear_ramp_are_its_slope_and_delta_deltas_zero():
    ramp = torch.arange(20, dtype=torch.float32)[:, None] * torch.tensor([3.0, -0.5])  # (20, 2)
    out = add_deltas(ramp, order=2, width=2)
    assert out.shape == (20, 6)
    torch.testing.assert_close(out[2:-2, 2:4], torch.tensor([3.0, -0.5]).expand(16, 2))
    assert out[4:-4, 4:].abs().max() < 1e-5
    # Edges repeat the first frame: d[0] = (1 * (c1 - c0) + 2 * (c2 - c0)) / 10 = half the slope.
    torch.testing.assert_close(out[0, 2:4], torch.tensor([1.5, -0.25]))
    assert AudioFeatures(deltas=2).dim == 39 and FeatureExtractor(AudioFeatures(deltas=1))(tone(500), 16000).shape[1] == 26


@pytest.mark.parametrize("orig", [8000, 22050, 44100])
def test_resampling_keeps_a_tones_frequency_and_the_duration(orig):
    x = torch.from_numpy(tone(1234.0, 0.5, orig))
    y = resample(x, orig, 16000)
    assert len(y) == math.ceil(len(x) * 16000 / orig)
    assert peak_hz(y.numpy(), 16000) == pytest.approx(1234.0, abs=2.5)
    assert float(y[200:-200].abs().max()) == pytest.approx(0.5, abs=0.02)  # amplitude kept


def test_resampling_removes_content_above_the_new_nyquist():
    x = torch.from_numpy(tone(6000.0, 0.5, 16000))
    y = resample(x, 16000, 8000)  # 6 kHz is above the 4 kHz Nyquist of 8 kHz: must not alias to 2 kHz
    assert float(y[100:-100].abs().max()) < 0.02


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_wav_round_trip_at_every_bit_depth_and_stereo_mixdown(tmp_path, width):
    left = tone(440.0, 0.1, 8000)
    write_wav(tmp_path / "s.wav", np.stack([left, 0.5 * left], axis=1), 8000, width=width)
    samples, rate = read_wav(tmp_path / "s.wav")
    assert rate == 8000 and samples.dtype == np.float32
    np.testing.assert_allclose(samples, 0.75 * left, atol=2.0 / 2 ** (8 * width - 1) + 1e-6)


def test_wave_format_extensible_pcm_is_read_like_plain_pcm(tmp_path):
    """ffmpeg/libsndfile write 24-bit and multichannel PCM with the extensible header (format 0xFFFE)."""
    left = tone(440.0, 0.1, 8000)
    write_wav(tmp_path / "plain.wav", np.stack([left, 0.5 * left], axis=1), 8000, width=3)
    plain = (tmp_path / "plain.wav").read_bytes()
    assert plain[12:16] == b"fmt " and int.from_bytes(plain[16:20], "little") == 16
    guid_tail = bytes.fromhex("000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_PCM after its first 2 bytes
    fmt = b"\xfe\xff" + plain[22:36] + (22).to_bytes(2, "little") + (24).to_bytes(2, "little") + (3).to_bytes(4, "little")
    data = plain[36:]  # the data chunk, as it was
    chunks = b"fmt " + (40).to_bytes(4, "little") + fmt + b"\x01\x00" + guid_tail + data
    (tmp_path / "ext.wav").write_bytes(b"RIFF" + (4 + len(chunks)).to_bytes(4, "little") + b"WAVE" + chunks)
    samples, rate = read_wav(tmp_path / "ext.wav")
    np.testing.assert_array_equal(samples, read_wav(tmp_path / "plain.wav")[0])
    assert rate == 8000
    float_ext = (tmp_path / "ext.wav").read_bytes().replace(b"\x01\x00" + guid_tail, b"\x03\x00" + guid_tail)  # IEEE float
    with pytest.raises(SeqlabError, match="not a readable WAV file"):
        read_wav(float_ext, name="float.wav")


def test_corrupt_truncated_and_empty_wavs_are_errors_naming_the_file(tmp_path):
    (tmp_path / "noise.wav").write_bytes(b"this is not a RIFF file at all" * 10)
    with pytest.raises(SeqlabError, match=r"noise\.wav is not a readable WAV"):
        read_wav(tmp_path / "noise.wav")
    write_wav(tmp_path / "header.wav", tone(440.0, 0.1, 8000), 8000)
    (tmp_path / "header.wav").write_bytes((tmp_path / "header.wav").read_bytes()[:30])  # cut inside its header
    with pytest.raises(SeqlabError, match=r"header\.wav is not a readable WAV file \(\w+: cut short\)"):
        read_wav(tmp_path / "header.wav")
    write_wav(tmp_path / "cut.wav", tone(440.0, 0.1, 8000), 8000)
    data = (tmp_path / "cut.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(SeqlabError, match=r"cut\.wav is truncated"):
        read_wav(tmp_path / "cut.wav")
    write_wav(tmp_path / "empty.wav", np.zeros(0), 8000)
    with pytest.raises(SeqlabError, match=r"empty\.wav holds no samples"):
        read_wav(tmp_path / "empty.wav")


# -- a generated corpus of WAV files ---------------------------------------------------------------
CLASSES = {"low": 300.0, "high": 2000.0}


def make_wav_folder(root: Path, per_class: int = 12) -> Path:
    """low/ and high/ tones with noise; every 4th clip at 8 kHz (resampled on reading), one clip shorter than a window."""
    rng = np.random.default_rng(0)
    for label, freq in CLASSES.items():
        (root / label / "sub").mkdir(parents=True)
        for i in range(per_class):
            sr = 8000 if i % 4 == 0 else 16000
            seconds = 0.015 if (label == "low" and i == 1) else rng.uniform(0.15, 0.4)
            f = freq * rng.uniform(0.9, 1.1)
            x = tone(f, seconds, sr) + 0.05 * rng.standard_normal(int(seconds * sr)).astype(np.float32)
            write_wav(root / label / ("sub" if i % 3 == 0 else "") / f"{label}{i}.wav", x, sr)
    return root


def test_wav_folder_labels_from_folders_features_resampled_and_cached(tmp_path, monkeypatch):
    root = make_wav_folder(tmp_path / "wavs")
    cache = tmp_path / "cache"
    dm = SpeechDataModule(source="wav_folder", path=str(root), cache_dir=str(cache), task_name="tones", test_size=0.25, val_size=0.2)
    spec = dm.spec
    assert spec.labels == ["high", "low"] and spec.feature_dim == 13 and spec.input == "features"
    assert dm.preprocessing["audio"]["sample_rate"] == 16000 and dm.preprocessing["audio"]["win_length"] == 400
    dm.setup("fit")
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 14, "val": 4, "test": 6}
    # The 15 ms clip (240 samples < 400) became exactly one frame; 0.15-0.4 s clips 1 + (N - 400) // 160 frames.
    lengths = sorted(n for s in dm.splits.values() for n in s.lengths())
    assert lengths[0] == 1 and lengths[1] >= 1 + (2400 - 400) // 160
    assert len(list(cache.glob("speech/*/features.npz"))) == 1

    def boom(*args):
        raise AssertionError("features were recomputed instead of read from the cache")

    monkeypatch.setattr(FeatureExtractor, "__call__", boom)
    again = SpeechDataModule(source="wav_folder", path=str(root), cache_dir=str(cache), task_name="tones", test_size=0.25, val_size=0.2)
    assert again.spec.labels == ["high", "low"] and again.preprocessing["stats"] == dm.preprocessing["stats"]
    changed = SpeechDataModule(source="wav_folder", path=str(root), cache_dir=str(cache), n_mfcc=20, test_size=0.25, val_size=0.2)
    with pytest.raises(AssertionError, match="recomputed"):  # other settings, other cache entry
        changed.ensure_preprocessing()


def test_wav_folder_bad_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SeqlabError, match="no class folders holding .wav files"):
        SpeechDataModule(source="wav_folder", path=str(tmp_path / "empty"), cache_dir=str(tmp_path / "c")).ensure_preprocessing()
    write_wav(tmp_path / "empty" / "a.wav", tone(300.0, 0.1), 16000)
    with pytest.raises(SeqlabError, match=r"1 \.wav files lie directly in it.*<path>/<label>/"):
        SpeechDataModule(source="wav_folder", path=str(tmp_path / "empty"), cache_dir=str(tmp_path / "c")).ensure_preprocessing()
    root = make_wav_folder(tmp_path / "wavs", per_class=4)
    (root / "low" / "broken.wav").write_bytes(b"RIFF\x00\x00")
    with pytest.raises(SeqlabError, match=r"low/broken\.wav is not a readable WAV"):
        SpeechDataModule(source="wav_folder", path=str(root), cache_dir=str(tmp_path / "c")).ensure_preprocessing()
    hidden = root / ".ipynb_checkpoints"  # a notebook's copies are not a class
    hidden.mkdir()
    write_wav(hidden / "low0-checkpoint.wav", tone(300.0, 0.1), 16000)
    write_wav(root / "high" / ".copy.wav", tone(300.0, 0.1), 16000)
    (root / "low" / "broken.wav").unlink()
    paths, labels = labelled_wavs(root)
    assert sorted(set(labels)) == ["high", "low"] and len(paths) == 8 and not any(".ipynb" in str(p) or ".copy" in str(p) for p in paths)
    with pytest.raises(SeqlabError, match="needs data.path"):
        SpeechDataModule(source="wav_folder").ensure_preprocessing()
    with pytest.raises(SeqlabError, match="Unknown speech source 'mp3'"):
        SpeechDataModule(source="mp3")


def test_hub_source_offline_fails_fast_naming_an_offline_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(SeqlabError, match="google/speech_commands.*data.source=fsdd_archive"):
        SpeechDataModule(source="hub", cache_dir=str(tmp_path / "c")).ensure_preprocessing()


def test_hub_source_without_a_test_split_holds_out_a_test_size_share(tmp_path, monkeypatch):
    import pandas as pd

    import seqlab.data.speech as speech

    rows = [{"audio": {"array": tone(300.0 if i % 2 else 2000.0, 0.1), "sampling_rate": 16000}, "label": i % 2} for i in range(40)]

    def table(rows, version):
        df = pd.DataFrame(rows)
        df.attrs["fingerprint"] = [version]  # as load_hub_table sets it
        return df

    monkeypatch.setattr(speech, "load_hub_table", lambda *args: table(rows, "v1"))  # a hub dataset with one (train) split
    dm = SpeechDataModule(source="hub", hub_id="someone/tones", test_size=0.25, val_size=0.2, cache_dir=str(tmp_path / "c"))
    dm.setup("fit")
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 24, "val": 6, "test": 10}  # stratified: 5 and 3 of each class
    first = dm._hub_records()[0][0]
    louder = [{**row, "audio": {**row["audio"], "array": row["audio"]["array"] * 4}} for row in rows]  # new content, as many rows
    monkeypatch.setattr(speech, "load_hub_table", lambda *args: table(louder, "v2"))
    fresh = SpeechDataModule(source="hub", hub_id="someone/tones", cache_dir=str(tmp_path / "c"))._hub_records()[0]
    assert fresh[0].shape == first.shape and not np.allclose(fresh[0], first)  # computed afresh, not the cached features of v1
    shorter = [{**row, "clip": {**row["audio"], "array": row["audio"]["array"][:800]}} for row in louder]  # a second audio column
    monkeypatch.setattr(speech, "load_hub_table", lambda *args: table(shorter, "v2"))
    clip = SpeechDataModule(source="hub", hub_id="someone/tones", audio_column="clip", cache_dir=str(tmp_path / "c"))._hub_records()[0]
    assert len(clip[0]) < len(fresh[0])  # that column's features, not those cached for column 'audio'


# -- frame files -----------------------------------------------------------------------------------
def ragged(n: int = 40, f: int = 3, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Sequences whose class sets the sign of their mean."""
    rng = np.random.default_rng(seed)
    y = np.array(["no", "yes"] * (n // 2))
    arrays = [(rng.standard_normal((rng.integers(3, 15), f)) + (2.0 if label == "yes" else -2.0)).astype(np.float32) for label in y]
    return arrays, y


def test_npz_stacked_and_padded_layouts_read_the_same(tmp_path):
    arrays, y = ragged()
    lengths = np.array([len(a) for a in arrays])
    np.savez(tmp_path / "stacked.npz", X=np.concatenate(arrays), lengths=lengths, y=y)
    padded = np.zeros((len(arrays), lengths.max(), 3), np.float32)
    for i, a in enumerate(arrays):
        padded[i, : len(a)] = a
    np.savez(tmp_path / "padded.npz", X=padded, lengths=lengths, y=y, split=np.where(np.arange(40) < 30, "train", "test"))
    a1, y1, s1 = load_frames(tmp_path / "stacked.npz")
    a2, y2, s2 = load_frames(tmp_path / "padded.npz")
    assert s1 is None and list(s2).count("test") == 10
    assert all(np.array_equal(p, q) for p, q in zip(a1, a2)) and list(y1) == list(y2) == list(y)
    dm = SpeechDataModule(source="file", path=str(tmp_path / "padded.npz"), task_name="toy", val_size=0.2)
    dm.setup("fit")
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 24, "val": 6, "test": 10}  # official split kept
    np.save(tmp_path / "one.npy", arrays[0])
    assert [a.shape for a in load_frames(tmp_path / "one.npy")[0]] == [arrays[0].shape]


def test_frame_file_bad_inputs(tmp_path):
    arrays, y = ragged()
    np.savez(tmp_path / "rank1.npz", X=np.zeros(50, np.float32), y=y)
    with pytest.raises(SeqlabError, match=r"X has shape \(50,\) \(rank 1\)"):
        load_frames(tmp_path / "rank1.npz")
    np.savez(tmp_path / "rank4.npz", X=np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(SeqlabError, match="rank 4"):
        load_frames(tmp_path / "rank4.npz")
    bad = [a.copy() for a in arrays]
    bad[7][2, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X=np.concatenate(bad), lengths=[len(a) for a in bad], y=y)
    with pytest.raises(SeqlabError, match=r"Sequence 7 in .*nan\.npz holds nan at frame 2, coefficient 1"):
        SpeechDataModule(source="file", path=str(tmp_path / "nan.npz")).ensure_preprocessing()
    np.savez(tmp_path / "sum.npz", X=np.concatenate(arrays), lengths=[3] * 40, y=y)
    with pytest.raises(SeqlabError, match="sum to the"):
        load_frames(tmp_path / "sum.npz")
    np.savez(tmp_path / "zero.npz", X=np.ones((40, 3)), lengths=[20, 0, 20])  # sums right, but one sequence is empty
    with pytest.raises(SeqlabError, match=r"every sequence needs at least one frame; 'lengths' is below 1 at index \[1\]"):
        load_frames(tmp_path / "zero.npz")
    np.savez(tmp_path / "half.npz", X=np.ones((40, 3)), lengths=[20.5, 19.5])  # not cut silently to 20 and 19
    with pytest.raises(SeqlabError, match=r"'lengths' must be whole numbers of frames; it has dtype float64: \[20.5, 19.5\]"):
        load_frames(tmp_path / "half.npz")
    np.savez(tmp_path / "scalar.npz", X=np.ones((40, 3)), lengths=np.float64(20.5))  # 0-d: the rank is the error
    with pytest.raises(SeqlabError, match=r"'lengths' must be 1-D"):
        load_frames(tmp_path / "scalar.npz")
    np.savez(tmp_path / "whole.npz", X=np.ones((40, 3)), lengths=[20.0, 20.0])  # whole floats (a pandas column with gaps) are fine
    assert [a.shape for a in load_frames(tmp_path / "whole.npz")[0]] == [(20, 3), (20, 3)]
    np.savez(tmp_path / "empty.npz", X=np.zeros((0, 3)), lengths=np.zeros(0, np.int64))
    with pytest.raises(SeqlabError, match=r"empty\.npz: X \(0, 3\) holds no frames"):
        load_frames(tmp_path / "empty.npz")
    (tmp_path / "table.npz").write_text("a,b\n1,2\n")  # a CSV under another name
    with pytest.raises(SeqlabError, match=r"table\.npz is not a \.npy/\.npz file"):
        load_frames(tmp_path / "table.npz")
    np.savez(tmp_path / "obj.npz", X=np.array([a for a in arrays[:3]], dtype=object))
    with pytest.raises(SeqlabError, match="without unpickling"):
        load_frames(tmp_path / "obj.npz")
    np.savez(tmp_path / "nolabels.npz", X=np.concatenate(arrays), lengths=[len(a) for a in arrays])
    with pytest.raises(SeqlabError, match="no 'y' array"):
        SpeechDataModule(source="file", path=str(tmp_path / "nolabels.npz")).ensure_preprocessing()
    np.savez(tmp_path / "nanlabel.npz", X=np.concatenate(arrays), lengths=[len(a) for a in arrays], y=np.where(np.arange(40) == 3, np.nan, 1.0))
    with pytest.raises(SeqlabError, match=r"has 1 entries without a label \(first: \[3\]\)"):
        SpeechDataModule(source="file", path=str(tmp_path / "nanlabel.npz")).ensure_preprocessing()
    np.savez(tmp_path / "ok.npz", X=np.concatenate(arrays), lengths=[len(a) for a in arrays], y=y)
    with pytest.raises(SeqlabError, match=r"outside the label set \['no', 'maybe'\]: \['yes'\]"):
        SpeechDataModule(source="file", path=str(tmp_path / "ok.npz"), labels=["no", "maybe"]).ensure_preprocessing()


# -- normalisation ---------------------------------------------------------------------------------
def test_statistics_come_from_train_only_and_apply_to_every_split(tmp_path):
    arrays, y = ragged(60)
    arrays = [a * np.array([1.0, 10.0, 100.0], np.float32) + 5 for a in arrays]
    np.savez(tmp_path / "d.npz", X=np.concatenate(arrays), lengths=[len(a) for a in arrays], y=y)
    dm = SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), test_size=0.25)
    dm.setup("fit")
    parts = train_val_test(encode_labels(y, None, "y")[0], None, 0.25, 0.1, 0)  # the same seeded split, recomputed
    stats = dm.preprocessing["stats"]
    expected = channel_stats([arrays[i] for i in parts["train"]])
    np.testing.assert_allclose(stats["mean"], expected["mean"], rtol=1e-6)
    np.testing.assert_allclose(stats["std"], expected["std"], rtol=1e-6)
    assert not np.allclose(stats["mean"], channel_stats(arrays)["mean"], rtol=1e-6)  # not the whole file's
    assert isinstance(stats["mean"], list) and isinstance(stats["mean"][0], float)  # plain data for weights_only checkpoints
    train_frames = torch.cat(dm.splits["train"].items)  # (sum T, 3)
    torch.testing.assert_close(train_frames.mean(0), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(train_frames.std(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    for name in ("val", "test"):  # the other splits use the train statistics, not their own
        for item, i in zip(dm.splits[name].items, parts[name]):
            np.testing.assert_allclose(item.numpy(), (arrays[i] - np.array(stats["mean"])) / np.array(stats["std"]), atol=1e-5)
    off = SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), normalize=False)
    off.setup("fit")
    assert off.preprocessing["stats"] is None and float(torch.cat(off.splits["train"].items).mean()) > 3


def test_deltas_of_precomputed_frames_are_appended_before_standardising_and_at_predict_time(tmp_path):
    arrays, y = ragged(60)
    np.savez(tmp_path / "d.npz", X=np.concatenate(arrays), lengths=[len(a) for a in arrays], y=y)
    dm = SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), deltas=2, test_size=0.25)
    dm.setup("fit")
    assert dm.spec.feature_dim == 9 and dm.preprocessing["frame_deltas"] == 2
    parts = train_val_test(encode_labels(y, None, "y")[0], None, 0.25, 0.1, 0)
    framed = [add_deltas(torch.from_numpy(a), 2).numpy() for a in arrays]  # the audio path's delta function
    expected = channel_stats([framed[i] for i in parts["train"]])
    np.testing.assert_allclose(dm.preprocessing["stats"]["mean"], expected["mean"], rtol=1e-5, atol=1e-7)
    i = parts["test"][0]
    want = (framed[i] - np.array(expected["mean"])) / np.array(expected["std"])
    np.testing.assert_allclose(dm.splits["test"].items[0].numpy(), want, atol=1e-5)
    np.save(tmp_path / "one.npy", arrays[i])  # predict input: raw frames, deltas added as in training
    dm.predict_input = str(tmp_path / "one.npy")
    np.testing.assert_allclose(dm.predict_dataset().items[0].numpy(), want, atol=1e-5)
    np.save(tmp_path / "wide.npy", framed[i])  # frames that already carry deltas are refused
    dm.predict_input = str(tmp_path / "wide.npy")
    with pytest.raises(SeqlabError, match=r"frames of shape \(\d+, 9\), but the model reads \(time, 3\)"):
        dm.predict_dataset()
    plain = SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), test_size=0.25)
    assert "frame_deltas" not in plain.ensure_preprocessing() and plain.spec.feature_dim == 3
    narrow = SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), deltas=1, delta_width=1, test_size=0.25)
    narrow.setup("fit")
    mean = np.array(narrow.preprocessing["stats"]["mean"])
    std = np.array(narrow.preprocessing["stats"]["std"])
    want = (add_deltas(torch.from_numpy(arrays[i]), 1, width=1).numpy() - mean) / std
    np.testing.assert_allclose(narrow.splits["test"].items[0].numpy(), want, atol=1e-5)
    stored = dict(narrow.preprocessing)
    old = SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), deltas=1, delta_width=1)
    old.preprocessing = {k: v for k, v in stored.items() if k != "frame_delta_width"}  # a checkpoint from before the key
    assert with_deltas(arrays[i], old.preprocessing).tolist() == add_deltas(torch.from_numpy(arrays[i]), 1, width=2).numpy().tolist()
    plain.preprocessing = stored
    np.testing.assert_allclose(with_deltas(arrays[i], plain.preprocessing), add_deltas(torch.from_numpy(arrays[i]), 1, width=1).numpy())


# -- SpecAugment -----------------------------------------------------------------------------------
def test_spec_augment_masks_only_inside_each_sequence():
    torch.manual_seed(0)
    lengths = torch.tensor([30, 12, 5, 1])
    x = torch.ones(4, 30, 8)  # padding is ones here too, so a mask there would show
    out = spec_augment(x, lengths, time_masks=2, time_width=6, time_fraction=0.5, freq_masks=2, freq_width=3)
    for b, n in enumerate(lengths.tolist()):
        assert (out[b, n:] == 1).all()  # padding untouched
    assert (out[0] == 0).any() and (out[1] == 0).any()
    zero_rows = (out[0] == 0).all(1).sum()
    assert 0 < zero_rows <= 12  # two time masks of at most 6 frames
    for _ in range(50):  # widths respect the caps: time <= min(6, 0.5 * length), frequency <= 3
        out = spec_augment(x, lengths, time_masks=1, time_width=6, time_fraction=0.5, freq_masks=0, freq_width=3)
        assert (out[0] == 0).all(1).sum() <= 6 and (out[2] == 0).all(1).sum() <= 2 and (out[3] == 1).all()
        out = spec_augment(x, lengths, time_masks=0, time_width=6, time_fraction=0.5, freq_masks=1, freq_width=3)
        assert (out[0, 0] == 0).sum() <= 3


def test_spec_augment_is_on_in_training_batches_only(tmp_path):
    arrays, y = ragged()
    np.savez(tmp_path / "d.npz", X=np.concatenate(arrays), lengths=[len(a) for a in arrays], y=y)
    dm = SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), time_masks=2, time_mask_width=4, freq_masks=1, freq_mask_width=1)
    dm.setup("fit")
    samples = [dm.splits["train"][i] for i in range(8)]
    plain = SpeechCollate("t")(samples)["x"]
    torch.manual_seed(0)
    train = dm.collate("train")(samples)["x"]
    assert not torch.equal(train, plain) and torch.equal(train[plain == 0], plain[plain == 0])
    assert torch.equal(train[train != 0], plain[train != 0])  # masking only zeroes values
    for split in ("val", "test", "predict"):
        assert torch.equal(dm.collate(split)(samples)["x"], plain)
    assert SpeechDataModule(source="file", path=str(tmp_path / "d.npz")).collate("train").augment is None  # off by default


def test_noise_augmentation_adds_unit_scaled_gaussian_noise_inside_sequences_in_training_only(tmp_path):
    torch.manual_seed(0)
    lengths = torch.tensor([400, 100])
    x = torch.zeros(2, 400, 6)
    out = spec_augment(x, lengths, time_masks=0, time_width=1, time_fraction=0.5, freq_masks=0, freq_width=1, noise=0.2)
    assert (out[1, 100:] == 0).all()  # padding untouched
    assert abs(float(out[0].std()) - 0.2) < 0.01 and abs(float(out[0].mean())) < 0.01
    arrays, y = ragged()
    np.savez(tmp_path / "d.npz", X=np.concatenate(arrays), lengths=[len(a) for a in arrays], y=y)
    dm = SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), augment_noise=0.1)
    dm.setup("fit")
    samples = [dm.splits["train"][i] for i in range(8)]
    assert not torch.equal(dm.collate("train")(samples)["x"], dm.collate("val")(samples)["x"])
    assert dm.collate("val").augment is None
    with pytest.raises(SeqlabError, match="augment_noise must be >= 0"):
        SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), augment_noise=-1)


def test_time_stretch_interpolates_between_the_end_frames_and_is_drawn_per_sequence_in_training(tmp_path):
    ramp = torch.arange(10, dtype=torch.float32)[:, None].repeat(1, 3)  # (10, 3): frame t holds t
    longer = time_stretch(ramp, 1.9)  # 19 frames from 0 to 9: a finer ramp
    assert longer.shape == (19, 3)
    torch.testing.assert_close(longer[:, 0], torch.linspace(0, 9, 19))
    assert time_stretch(ramp, 0.5).shape == (5, 3) and time_stretch(ramp[:1], 0.6).shape == (1, 3)
    assert time_stretch(ramp, 1.01) is ramp  # rounds to the same length: unchanged
    arrays, y = ragged()
    np.savez(tmp_path / "d.npz", X=np.concatenate(arrays), lengths=[len(a) for a in arrays], y=y)
    dm = SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), augment_stretch=0.3)
    dm.setup("fit")
    samples = [dm.splits["train"][i] for i in range(16)]
    torch.manual_seed(0)
    batch = dm.collate("train")(samples)
    original = torch.tensor([len(x) for _, x, _ in samples])
    ratio = batch["lengths"] / original
    assert ((ratio > 0.6) & (ratio < 1.4)).all() and len(set(batch["lengths"].tolist())) > 1 and not torch.equal(batch["lengths"], original)
    assert torch.equal(dm.collate("val")(samples)["lengths"], original)
    with pytest.raises(SeqlabError, match=r"augment_stretch must be in \[0, 1\)"):
        SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), augment_stretch=1.0)


def test_random_crop_keeps_a_contiguous_part_and_is_drawn_per_sequence_in_training(tmp_path):
    ramp = torch.arange(20, dtype=torch.float32)[:, None].repeat(1, 3)  # (20, 3): frame t holds t
    torch.manual_seed(0)
    kept = [random_crop(ramp, 0.4) for _ in range(200)]
    for part in kept:
        assert 12 <= len(part) <= 20  # at least 1 - 0.4 of 20 frames
        torch.testing.assert_close(part[:, 0], torch.arange(part[0, 0], part[0, 0] + len(part)))  # a run of the ramp
    assert len({len(p) for p in kept}) > 5 and len({float(p[0, 0]) for p in kept}) > 5  # lengths and starts vary
    assert random_crop(ramp[:1], 0.9).shape == (1, 3)
    arrays, y = ragged()
    np.savez(tmp_path / "d.npz", X=np.concatenate(arrays), lengths=[len(a) for a in arrays], y=y)
    dm = SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), augment_crop=0.5)
    dm.setup("fit")
    samples = [dm.splits["train"][i] for i in range(16)]
    batch = dm.collate("train")(samples)
    original = torch.tensor([len(x) for _, x, _ in samples])
    assert (batch["lengths"] <= original).all() and (batch["lengths"] >= (original * 0.5).round()).all()
    assert not torch.equal(batch["lengths"], original)
    assert torch.equal(dm.collate("test")(samples)["lengths"], original)
    with pytest.raises(SeqlabError, match=r"augment_crop must be in \[0, 1\)"):
        SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), augment_crop=1.0)


def test_offset_shifts_each_training_sequence_by_one_vector_on_its_static_coefficients_only(tmp_path):
    arrays, y = ragged(60)
    np.savez(tmp_path / "d.npz", X=np.concatenate(arrays), lengths=[len(a) for a in arrays], y=y)
    dm = SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), deltas=1, augment_offset=0.5)
    dm.setup("fit")
    samples = [dm.splits["train"][i] for i in range(40)]
    torch.manual_seed(0)
    batch = dm.collate("train")(samples)
    shifts = []
    for row, (_, x, _) in enumerate(samples):
        diff = batch["x"][row, : len(x)] - x  # (T, 6): 3 coefficients, then their deltas
        torch.testing.assert_close(diff[:, 3:], torch.zeros(len(x), 3))  # deltas of a constant shift are 0
        torch.testing.assert_close(diff[:, :3], diff[:1, :3].expand(len(x), 3))  # one vector for all frames
        shifts.append(diff[0, :3])
        assert (batch["x"][row, len(x) :] == 0).all()  # padding untouched
    assert float(torch.stack(shifts).std()) == pytest.approx(0.5, rel=0.2)
    assert torch.equal(dm.collate("val")(samples)["x"][0, : len(samples[0][1])], samples[0][1])
    with pytest.raises(SeqlabError, match="augment_offset is a standard deviation"):
        SpeechDataModule(source="file", path=str(tmp_path / "d.npz"), augment_offset=-1)


# -- the real archives -----------------------------------------------------------------------------
def test_fsdd_archive_matches_its_documented_counts():
    with np.load(fetch_member(FSDD_ARCHIVE), allow_pickle=False) as f:
        assert f["X"].shape == (53999, 13) and f["lengths"].sum() == 53999
        assert np.bincount(f["y"]).tolist() == [300] * 10
        assert (f["lengths"].min(), f["lengths"].max()) == (6, 92)
    dm = SpeechDataModule()  # the default of configs/fsdd.yaml
    dm.setup("fit")
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 2160, "val": 240, "test": 600}
    assert np.bincount(dm.splits["test"].labels.numpy()).tolist() == [60] * 10  # stratified by digit
    assert dm.spec.labels == [str(d) for d in range(10)] and dm.spec.feature_dim == 13


def test_japanese_vowels_official_split():
    dm = SpeechDataModule(source="japanese_vowels", task_name="japanese_vowels")
    dm.setup("fit")
    sizes = {k: len(v) for k, v in dm.splits.items()}
    assert sizes["train"] + sizes["val"] == 270 and sizes["test"] == 370
    assert dm.spec.labels == [str(s) for s in range(1, 10)] and dm.spec.feature_dim == 12
    lengths = [n for s in dm.splits.values() for n in s.lengths()]
    assert (min(lengths), max(lengths)) == (7, 29)


# -- prediction ------------------------------------------------------------------------------------
def test_predict_inputs_and_their_errors(tmp_path):
    root = make_wav_folder(tmp_path / "wavs", per_class=6)
    dm = SpeechDataModule(source="wav_folder", path=str(root), cache_dir=str(tmp_path / "c"), test_size=0.34, val_size=0.25)
    dm.ensure_preprocessing()
    dm.predict_input = str(root / "high" / "high1.wav")
    assert len(dm.predict_dataset()) == 1
    dm.predict_input = str(root / "low")
    batch = next(iter(dm.predict_dataloader()))
    assert batch["x"].shape[0] == 6 and batch["x"].shape[2] == 13 and "y" not in batch
    listed = [str(root / "low" / "low2.wav"), root / "high" / "high1.wav"]  # a list of WAV files, in its order
    dm.predict_input = listed
    x = dm.predict_dataset()
    assert [o["file"] for o in dm.predict_origins] == [str(p) for p in listed]
    dm.predict_input = str(root / "low" / "low2.wav")
    torch.testing.assert_close(x[0][1], dm.predict_dataset()[0][1])  # (index, frames, label)
    dm.predict_input = [str(root / "low"), str(tmp_path / "gone.wav")]
    with pytest.raises(SeqlabError, match=r"lists \[.*low', .*gone.wav'\], which are not .wav files \(or do not exist\)"):
        dm.predict_dataset()
    np.savez(tmp_path / "frames.npz", X=np.zeros((2, 5, 13), np.float32))
    dm.predict_input = str(tmp_path / "frames.npz")
    assert dm.predict_dataset().lengths() == [5, 5]
    np.save(tmp_path / "wrong.npy", np.zeros((5, 12), np.float32))
    dm.predict_input = str(tmp_path / "wrong.npy")
    with pytest.raises(SeqlabError, match=r"frames of shape \(5, 12\), but the model reads \(time, 13\)"):
        dm.predict_dataset()
    dm.predict_input = str(tmp_path / "nothing.wav")
    with pytest.raises(SeqlabError, match="nothing.wav does not exist"):
        dm.predict_dataset()
    (tmp_path / "frames.csv").write_text("a,b\n1,2\n")
    dm.predict_input = str(tmp_path / "frames.csv")
    with pytest.raises(SeqlabError, match="reads .wav files, folders of them, or .npz/.npy frames, not .csv"):
        dm.predict_dataset()
    arrays = SpeechDataModule(source="japanese_vowels", task_name="japanese_vowels", predict_input=str(root / "low"))
    arrays.ensure_preprocessing()
    with pytest.raises(SeqlabError, match="trained on precomputed frames"):
        arrays.predict_dataset()


def test_fit_then_predict_wavs_with_the_checkpoints_statistics(tmp_path, monkeypatch):
    """Through the CLI: fit on generated tones, then predict new WAVs (one at 8 kHz) with the checkpoint."""
    from seqlab.cli import main

    monkeypatch.chdir(tmp_path)
    root = make_wav_folder(tmp_path / "wavs", per_class=12)
    args = [
        "--config", str(ROOT / "configs" / "fsdd.yaml"), "--data.source=wav_folder", f"--data.path={root}", "--data.task_name=tones",
        f"--data.cache_dir={tmp_path / 'c'}", "--data.test_size=0.25", "--data.val_size=0.25", "--data.batch_size=4",
        "--model.embed_dim=16", "--model.hidden_size=16", "--trainer.logger=false",
        "--trainer.enable_model_summary=false",
    ]  # fmt: skip
    cli = main(["fit", *args, "--trainer.max_epochs=10", "--model.optimizer.init_args.lr=0.01", "--data.time_masks=1"])
    assert float(cli.trainer.checkpoint_callback.best_model_score) == 1.0  # low and high tones are easy to tell apart
    best = cli.trainer.checkpoint_callback.best_model_path
    new = tmp_path / "new"
    new.mkdir()
    noise = 0.05 * np.random.default_rng(1).standard_normal(4800).astype(np.float32)  # as in training: a bare tone looks unlike any clip
    write_wav(new / "a_low.wav", tone(310.0, 0.3, 8000) + noise[:2400], 8000)
    write_wav(new / "b_high.wav", tone(1950.0, 0.3) + noise, 16000)
    out = tmp_path / "p.jsonl"
    # The config asks for other features (n_mfcc=20) and no normalisation: the checkpoint's settings must win.
    pred = main(["predict", *args, f"--ckpt_path={best}", "--data.n_mfcc=20", "--data.normalize=false",
                 f"--data.predict_input={new}", f"--prediction_writer.output_path={out}"])  # fmt: skip
    assert pred.datamodule.preprocessing == cli.datamodule.preprocessing
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in rows] == ["low", "high"]
    assert [r["file"] for r in rows] == [str(new / "a_low.wav"), str(new / "b_high.wav")]  # each line names its clip
    assert [r["file"] for r in seqlab.load(best).predict(str(new))] == [r["file"] for r in rows]  # the API too
    listed = [str(new / "b_high.wav"), str(new / "a_low.wav")]  # a list of WAV files, on the command line and in the API
    main(["predict", *args, f"--ckpt_path={best}", f"--data.predict_input={json.dumps(listed)}", f"--prediction_writer.output_path={out}"])
    assert [(r["file"], r["label"]) for r in map(json.loads, out.read_text().splitlines())] == [(listed[0], "high"), (listed[1], "low")]
    assert [r["label"] for r in seqlab.load(best).predict(listed)] == ["high", "low"]


def test_the_settings_a_checkpoint_replaces_are_named_by_their_options():
    from seqlab.data.audio import AudioFeatures

    frames = {"labels": ["a", "b"], "frame_deltas": 1, "frame_delta_width": 2, "feature_dim": 24, "stats": {"mean": [0.0]}, "audio": None}
    dm = SpeechDataModule(source="japanese_vowels", deltas=2, normalize=False)
    assert dm.replaced_settings(frames) == {"deltas": (1, 2), "normalize": (True, False)}
    assert SpeechDataModule(source="japanese_vowels", deltas=1).replaced_settings(frames) == {}  # the training config's settings
    audio = {"labels": ["a", "b"], "feature_dim": 13, "stats": None, "audio": AudioFeatures().to_dict()}
    dm = SpeechDataModule(source="wav_folder", path="clips", n_mels=20, feature="logmel", normalize=False)
    assert dm.replaced_settings(audio) == {"n_mels": (40, 20), "feature": ("mfcc", "logmel")}
