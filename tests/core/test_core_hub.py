"""Local-first model loading: a local dir, the cache, then the Hub only if it answers."""

from __future__ import annotations

import time

import pytest

from tagtune.errors import ModelNotFoundError
from tagtune.models.hub import hub_reachable, load_pretrained


def test_hub_probe_respects_offline_env_and_dead_endpoints(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    assert hub_reachable(timeout=1.0) is False


def test_cache_is_tried_first_and_an_offline_miss_fails_fast(monkeypatch):
    calls = []

    def loader(name, **kwargs):
        calls.append(kwargs)
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match=r"cannot load model 'org/model': not in the local cache and offline mode is on") as info:
        load_pretrained(loader, "org/model")
    assert time.perf_counter() - start < 1.0
    assert "--preset quick_test" in str(info.value)
    assert calls == [{"trust_remote_code": False, "local_files_only": True}]


def test_a_cached_model_loads_without_the_network(monkeypatch):
    def loader(name, **kwargs):
        assert kwargs["local_files_only"] is True
        return f"loaded {name}"

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_pretrained(loader, "org/model") == "loaded org/model"


def test_a_local_directory_is_loaded_directly_and_broken_ones_are_one_line(tmp_path):
    seen = {}

    def loader(name, **kwargs):
        seen["name"] = name
        if not (tmp_path / "config.json").exists():
            raise OSError("no config.json")
        return "ok"

    with pytest.raises(ModelNotFoundError, match="local path has no loadable files"):
        load_pretrained(loader, str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert load_pretrained(loader, str(tmp_path)) == "ok" and seen["name"] == str(tmp_path)
