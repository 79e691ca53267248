"""docs/metrics.md names every Prometheus metric Heron exposes, and only those; the Grafana
dashboard (deploy/grafana/heron.json) queries only metrics that exist."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("heron_common", "heron_ingest", "heron_detector", "heron_notifier", "heron_prober")


def exposed() -> dict[str, str]:
    """Every heron_* metric as exposed (counters with ``_total``), with its type."""
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
    out = {}
    for collector in list(REGISTRY._collector_to_names):
        for metric in collector.collect():
            if metric.name.startswith("heron"):
                name = metric.name + ("_total" if metric.type == "counter" else "")
                out[name] = metric.type
    return out


def documented() -> dict[str, str]:
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\| `(heron_[a-z_]+)` \| (\w+) \|", text, re.M))


def test_every_metric_is_documented_with_its_type_and_nothing_else() -> None:
    metrics, docs = exposed(), documented()
    assert sorted(set(metrics) - set(docs)) == [], "undocumented in docs/metrics.md"
    assert sorted(set(docs) - set(metrics)) == [], "documented but no longer exposed"
    assert {n: t for n, t in docs.items()} == metrics


def test_the_grafana_dashboard_queries_only_metrics_that_exist() -> None:
    board = json.loads((ROOT / "deploy" / "grafana" / "heron.json").read_text(encoding="utf-8"))
    metrics = exposed()
    known = set(metrics) | {
        f"{n}{suffix}" for n, t in metrics.items() if t == "histogram" for suffix in ("_bucket", "_sum", "_count")
    }
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    used = set()
    for panel in panels:
        for target in panel.get("targets", []):
            used |= set(re.findall(r"\bheron_[a-z_]+", target["expr"]))
    assert used and sorted(used - known) == []
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("ingest", "latency", "queue", "consumer", "watermark", "incidents", "deliveries", "probe", "dead"):
        assert topic in titles, f"no panel about {topic}"
    assert any(v["name"] == "datasource" and v["type"] == "datasource" for v in board["templating"]["list"])
