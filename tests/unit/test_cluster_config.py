"""The configuration pieces of `make run-cluster` that need no server: endpoints.replicas.yml with the
environment scripts/cluster.sh gives the replicas, and the Redis URL taken apart for the lock store."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from rasa.core.lock_store import LockStore
from rasa.utils.endpoints import read_endpoint_config

from bot.locks import PromptRedisLockStore

ROOT = Path(__file__).resolve().parents[2]


def _cluster_stores():
    spec = importlib.util.spec_from_file_location("cluster_stores", ROOT / "scripts" / "cluster_stores.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_redis_url_is_taken_apart_for_the_lock_store():
    stores = _cluster_stores()
    assert stores.redis_settings("redis://127.0.0.1:6390/4") == {
        "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6390", "REDIS_DB": "4", "REDIS_PASSWORD": ""}
    assert stores.redis_settings("redis://:p%40ss@cache:6379")["REDIS_PASSWORD"] == "p@ss"
    assert stores.redis_settings("redis://cache")["REDIS_DB"] == "0"
    for bad in ("postgresql://x/y", "redis://cache/first"):
        with pytest.raises(stores.StoreError):
            stores.redis_settings(bad)


def test_the_replicas_lock_store_uses_the_clusters_redis_db_and_prefix(monkeypatch, tmp_path):
    """scripts/cluster.sh's endpoints file: endpoints.replicas.yml with the lock store's db and key
    prefix, every ${...} left for Rasa, which expands them from the replicas' environment."""
    for name, value in {"ACTION_ENDPOINT_URL": "http://127.0.0.1:5056/webhook",
                        "TRACKER_URL": "postgresql://postgres@127.0.0.1:5432/kepu_cluster",
                        "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6391", "REDIS_PASSWORD": ""}.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "endpoints.yml"
    path.write_text(_cluster_stores().cluster_endpoints(5, "kepucluster"), encoding="utf-8")
    store = LockStore.create(read_endpoint_config(str(path), "lock_store"))  # no connection is made yet
    assert isinstance(store, PromptRedisLockStore) and store.poll_seconds == 0.02
    kwargs = store.red.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs.get("password")) == ("127.0.0.1", 6391, 5, "")
    assert store.key_prefix == "kepucluster:lock:"
    tracker = read_endpoint_config(str(path), "tracker_store")
    assert (tracker.type, tracker.url) == ("bot.trackers.CachedSQLTrackerStore", "postgresql://postgres@127.0.0.1:5432/kepu_cluster")
    assert read_endpoint_config(str(path), "action_endpoint").url == "http://127.0.0.1:5056/webhook"


def test_a_prefix_rasa_would_ignore_is_refused():
    stores = _cluster_stores()
    with pytest.raises(stores.StoreError):
        stores.cluster_endpoints(2, "kepu:cluster")
