"""The user cache behind dmlcsr-demo (dmlcsr.cache) and the demo's use of it: where it
lives, hits without rebuilding, keys that change with what changes the weights, broken
entries rebuilt; plus the demo's quieting of the exporter and its cached parity reports."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import dmlcsr
from dmlcsr import cache
from dmlcsr.cache import cache_dir, cached_file, file_sha256, lookup, place, short_hash


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """A cache of the test's own: XDG_CACHE_HOME in tmp_path, no override."""
    monkeypatch.delenv(cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "dmlcsr"


class Builder:
    """Writes a few random bytes per call and counts the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.rng = np.random.default_rng()

    def __call__(self, path: Path) -> None:
        self.calls += 1
        path.write_bytes(self.rng.bytes(4096))


def test_cache_dir_follows_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv(cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "dmlcsr"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG spec: relative values are ignored
    assert cache_dir() == tmp_path / "home" / ".cache" / "dmlcsr"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "dmlcsr"
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_a_hit_returns_the_same_file_without_building(isolated):
    build = Builder()
    first = cached_file("thing.bin", build)
    assert first.path == isolated / "thing.bin" and not first.hit and build.calls == 1
    content = first.path.read_bytes()
    second = cached_file("thing.bin", build)
    assert second.hit and second.path == first.path and build.calls == 1
    assert second.path.read_bytes() == content and second.sha256 == first.sha256 == file_sha256(first.path)
    assert not [p for p in isolated.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_disabled_rebuilds_and_overwrites(isolated):
    build = Builder()
    before = cached_file("thing.bin", build).path.read_bytes()
    again = cached_file("thing.bin", build, enabled=False)
    assert not again.hit and build.calls == 2 and again.path.read_bytes() != before
    assert cached_file("thing.bin", build).hit and build.calls == 2


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "digest missing", "digest garbage"])
def test_a_broken_entry_is_rebuilt(isolated, damage):
    build = Builder()
    entry = cached_file("thing.bin", build)
    digest = entry.path.with_name("thing.bin.sha256")
    if damage == "flipped byte":
        data = bytearray(entry.path.read_bytes())
        data[100] ^= 0xFF
        entry.path.write_bytes(bytes(data))
    elif damage == "truncated":
        entry.path.write_bytes(entry.path.read_bytes()[:1000])
    elif damage == "digest missing":  # killed between the file's rename and the digest's
        digest.unlink()
    else:
        digest.write_bytes(b"\xff\xfe not hex")
    assert lookup(entry.path) is None
    again = cached_file("thing.bin", build)
    assert not again.hit and build.calls == 2 and file_sha256(again.path) == digest.read_text().strip()
    assert cached_file("thing.bin", build).hit and build.calls == 2


def test_a_failed_build_leaves_nothing_and_the_next_call_builds(isolated):
    def fails(path: Path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cached_file("thing.bin", fails)
    assert not isolated.exists() or list(isolated.iterdir()) == []
    build = Builder()
    assert not cached_file("thing.bin", build).hit and build.calls == 1


def test_stale_temporaries_of_killed_builds_are_removed(isolated):
    isolated.mkdir(parents=True)
    stale, fresh = isolated / ".thing.tmp-1-dead.bin", isolated / ".other.tmp-2-live.bin"
    for path in (stale, fresh):
        path.write_bytes(b"partial")
    old = time.time() - cache.STALE_TEMPORARY_S - 60
    os.utime(stale, (old, old))
    cached_file("thing.bin", Builder())
    assert not stale.exists() and fresh.exists()  # a temporary of a build still running is left alone


def test_place_links_or_copies_and_replaces(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"new bytes")
    target = tmp_path / "out" / "target.bin"
    target.parent.mkdir()
    target.write_bytes(b"old")
    assert place(source, target) == target and target.read_bytes() == b"new bytes"
    assert place(source, target).read_bytes() == b"new bytes"  # placing it again is harmless


def test_short_hash_separates_its_parts():
    assert short_hash("ab", "c") != short_hash("a", "bc")
    assert short_hash("a", b"b") == short_hash("a", "b") and len(short_hash("x")) == 12


class Tiny(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)


@pytest.fixture
def fake_demo_model(monkeypatch):
    """make_demo_model replaced by a tiny seeded module that records its calls."""
    from dmlcsr import demo_model

    calls = []

    def make(num_classes=19, seed=0, input_size=(473, 473), progress=False, **_):
        calls.append((num_classes, input_size))
        torch.manual_seed(seed + sum(input_size))
        return Tiny(num_classes)

    monkeypatch.setattr(demo_model, "make_demo_model", make)
    return calls


def test_demo_checkpoint_key_follows_size_classes_version_and_recipe(isolated, fake_demo_model, monkeypatch,
                                                                      face_paths):
    from dmlcsr.demo_model import recipe_fingerprint
    from dmlcsr.export.artefacts import demo_checkpoint_cached

    base = demo_checkpoint_cached(19, (473, 473))
    assert base.path.parent == isolated and not base.hit and fake_demo_model == [(19, (473, 473))]
    again = demo_checkpoint_cached(19, (473, 473))
    assert again.hit and again.path == base.path and len(fake_demo_model) == 1  # not rebuilt
    names = {base.path.name, demo_checkpoint_cached(19, (225, 225)).path.name,
             demo_checkpoint_cached(11, (473, 473)).path.name}
    monkeypatch.setattr(dmlcsr, "__version__", dmlcsr.__version__ + ".post1")
    names.add(demo_checkpoint_cached(19, (473, 473)).path.name)
    assert len(names) == 4 and len(fake_demo_model) == 4
    assert torch.load(base.path)["conv.weight"].shape[0] == 19
    assert recipe_fingerprint(face_paths[:2]) != recipe_fingerprint() == recipe_fingerprint(face_paths)


def test_bench_checkpoint_in_its_folder_is_kept_else_taken_from_the_cache(isolated, fake_demo_model, tmp_path):
    from dmlcsr.export.artefacts import make_demo_checkpoint

    messages: list[str] = []
    work = tmp_path / "work"
    work.mkdir()
    path = make_demo_checkpoint(work, (64, 64), messages.append)
    assert path.is_file() and len(fake_demo_model) == 1 and messages
    other = tmp_path / "other"
    other.mkdir()
    assert make_demo_checkpoint(other, (64, 64), messages.append).read_bytes() == path.read_bytes()
    assert len(fake_demo_model) == 1  # the second folder got the cached file
    path.write_bytes(b"the bench's own")
    assert make_demo_checkpoint(work, (64, 64), messages.append).read_bytes() == b"the bench's own"


def test_exporter_torchvision_notices_are_dropped_at_their_logger_only():
    from dmlcsr.export.artefacts import EXPORTER_REGISTRY_LOGGER, quiet_exporter_notices

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger, other = logging.getLogger(EXPORTER_REGISTRY_LOGGER), logging.getLogger("torch.onnx.other")
    handler = Keep()
    for each in (logger, other):
        each.addHandler(handler)
    try:
        quiet_exporter_notices()
        quiet_exporter_notices()
        assert len([f for f in logger.filters if type(f).__name__ == "_TorchvisionNotices"]) == 1
        logger.warning("torchvision is not installed. Skipping %s", "torchvision::nms")
        logger.warning("something else")
        other.warning("torchvision is not installed. Skipping %s", "torchvision::nms")
    finally:
        for each in (logger, other):
            each.removeHandler(handler)
    assert seen == ["something else", "torchvision is not installed. Skipping torchvision::nms"]


def test_cached_parity_reports_read_back_as_written():
    from dmlcsr.export.compare import ParityAccumulator, format_report
    from dmlcsr.export.demo import _reports_from_json

    rng = np.random.default_rng()
    accumulator = ParityAccumulator(5, (32, 32))
    reference = rng.normal(size=(2, 5, 8, 8)).astype(np.float32)
    accumulator.update(reference, reference + rng.normal(scale=0.3, size=reference.shape).astype(np.float32))
    report = accumulator.report("x.onnx", "int8-qdq", [f"c{i}" for i in range(5)])
    report.notes.append("a note")
    back = _reports_from_json(json.dumps([report.to_dict()]))
    assert back == [report] and format_report(back[0]) == format_report(report)


def test_calibration_prints_drive_the_bar():
    import io

    from tqdm import tqdm

    from dmlcsr.export.demo import _CalibrationProgress

    with tqdm(total=3, file=io.StringIO()) as bar:
        stream = _CalibrationProgress(bar)
        for _ in range(3):
            print("Collecting tensor data and making histogram ...", file=stream)
        print("Finding optimal threshold for each tensor using 'percentile' algorithm ...", file=stream)
        assert bar.n == 3


def test_the_fit_computes_the_whole_head_at_its_sampled_pixels():
    """demo_model's fit evaluates the parsing head at sampled pixels only; those logits are
    the whole-map head's at the same pixels, before and after conv1's low-rank update is
    merged into its weight."""
    from dmlcsr.demo_model import HeadInputs, _SampledHead
    from dmlcsr.networks.parsing import Parsing

    generator = torch.Generator().manual_seed(int(np.random.default_rng().integers(1 << 31)))
    head = Parsing(512, 256, 7).eval()
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    context, low_level = torch.randn(2, 512, 9, 11, generator=generator), torch.randn(2, 256, 17, 21,
                                                                                   generator=generator)
    sampled = _SampledHead(head, HeadInputs(context, low_level, None), rank=4, generator=generator)
    pick = torch.randint(2 * 17 * 21, (300,), generator=generator)

    def whole() -> torch.Tensor:
        with torch.no_grad():
            return head(context, low_level)[0].permute(0, 2, 3, 1).reshape(-1, 7)[pick]

    with torch.no_grad():
        torch.testing.assert_close(sampled.logits(pick), whole(), rtol=1e-4, atol=1e-4)
        sampled.up.normal_(generator=generator)
        before_merge = sampled.logits(pick)
        sampled.merge()
    torch.testing.assert_close(whole(), before_merge, rtol=1e-4, atol=1e-4)
