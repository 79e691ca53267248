"""Every service answers /healthz, /readyz and Prometheus /metrics."""

from __future__ import annotations

from heron_common.settings import Settings
from tests.support.system import running_system


async def test_health_readiness_and_metrics_on_every_service(settings: Settings) -> None:
    async with running_system(settings) as system:
        services = {"ingest": system.ingest, **system.others}
        assert set(services) == {"ingest", "detector", "notifier", "prober"}
        for name, running in services.items():
            async with system.http.get(running.url + "/healthz") as r:
                assert r.status == 200, name
            async with system.http.get(running.url + "/readyz") as r:
                assert (r.status, (await r.json())["status"]) == (200, "ready"), name
            async with system.http.get(running.url + "/metrics") as r:
                text = await r.text()
                assert r.status == 200 and "python_info" in text, name
        async with system.http.get(system.ingest.url + "/metrics") as r:
            assert "heron_ingest_requests_total" in await r.text()
        async with system.http.get(system.others["detector"].url + "/metrics") as r:
            assert "heron_detector_events_total" in await r.text()
