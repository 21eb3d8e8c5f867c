"""Prometheus metrics of the service, on their own registry (so several servers in one
process, as in tests, never share counters).

Latency histograms per RPC and per rank profile, documents scored, feed operations by
result, errors by status code, resident documents and bytes per schema (read from the
store at scrape time), the device in use and any fallback from the GPU, and, when the
GPU backend runs, the device's memory and utilisation through NVML (nvidia-ml-py,
imported lazily: without it those gauges are left out, and the log says so).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# from 0.5 ms to 30 s: an in-memory scoring of a small shard up to a full scan on the CPU
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rpc_latency = Histogram("tensorrank_rpc_latency_seconds", "Latency of each RPC, by method and status code",
                                     ["method", "code"], buckets=LATENCY_BUCKETS, registry=r)
        self.rank_latency = Histogram("tensorrank_rank_latency_seconds",
                                      "Scoring time of successful Rank requests, by schema and rank profile",
                                      ["schema", "profile"], buckets=LATENCY_BUCKETS, registry=r)
        self.documents_scored = Counter("tensorrank_documents_scored", "Documents scored by the first phase",
                                        ["schema", "profile"], registry=r)
        self.feed_operations = Counter("tensorrank_feed_operations", "Feed operations, by kind and result",
                                       ["operation", "result"], registry=r)
        self.errors = Counter("tensorrank_rpc_errors", "RPCs that ended with an error status, by method and code",
                              ["method", "code"], registry=r)
        self.deadline_stops = Counter("tensorrank_scoring_deadline_stops",
                                      "Scorings stopped because the client's deadline passed", ["schema", "profile"],
                                      registry=r)
        self.device = Gauge("tensorrank_device_info", "The device the server scores on (value 1), and why",
                            ["device", "reason"], registry=r)
        self.device_fallbacks = Counter("tensorrank_device_fallbacks",
                                        "Starts that fell back from the GPU to the CPU, by reason", ["reason"],
                                        registry=r)
        self.serving = Gauge("tensorrank_serving", "1 while the server is serving, 0 while starting or draining",
                             registry=r)

    def watch_store(self, read: Callable[[], dict[str, tuple[int, int]]]) -> None:
        """Report resident documents and bytes per schema; `read` gives schema -> (documents, bytes)."""
        self.registry.register(_StoreCollector(read))

    def watch_gpu(self, device_index: int = 0) -> bool:
        """Device memory and utilisation gauges through NVML; False (logged) when NVML is unavailable."""
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            log.warning("GPU metrics are off: nvidia-ml-py (pynvml) is not installed; "
                        "`pip install nvidia-ml-py` to get device memory and utilisation gauges")
            return False
        try:
            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
        except pynvml.NVMLError as e:
            log.warning("GPU metrics are off: NVML could not be initialised: %s", e)
            return False
        self.registry.register(_NvmlCollector(pynvml, handle, device_index))
        log.info("GPU metrics through NVML for device %d", device_index)
        return True

    def serve_http(self, host: str, port: int) -> int:
        """Expose /metrics; returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_address[1])


class _StoreCollector(Collector):
    def __init__(self, read: Callable[[], dict[str, tuple[int, int]]]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        docs = GaugeMetricFamily("tensorrank_resident_documents", "Live documents resident in memory, per schema",
                                 labels=["schema"])
        size = GaugeMetricFamily("tensorrank_resident_bytes",
                                 "Bytes of the resident attribute columns (their capacity), per schema",
                                 labels=["schema"])
        for schema, (n, nbytes) in sorted(self.read().items()):
            docs.add_metric([schema], n)
            size.add_metric([schema], nbytes)
        yield docs
        yield size

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # without this the registry would call collect() at registration, before the store exists
        return iter(())


class _NvmlCollector(Collector):
    def __init__(self, nvml: Any, handle: Any, index: int) -> None:
        self.nvml = nvml
        self.handle = handle
        self.index = str(index)
        self.lock = threading.Lock()
        self.failed = False

    def collect(self) -> Iterator[GaugeMetricFamily]:
        used = GaugeMetricFamily("tensorrank_gpu_memory_used_bytes", "Device memory in use (NVML)", labels=["gpu"])
        total = GaugeMetricFamily("tensorrank_gpu_memory_total_bytes", "Device memory in all (NVML)", labels=["gpu"])
        util = GaugeMetricFamily("tensorrank_gpu_utilization_ratio",
                                 "Fraction of the last sample period a kernel ran (NVML)", labels=["gpu"])
        with self.lock:
            try:
                mem = self.nvml.nvmlDeviceGetMemoryInfo(self.handle)
                rates = self.nvml.nvmlDeviceGetUtilizationRates(self.handle)
            except self.nvml.NVMLError as e:
                if not self.failed:
                    log.warning("NVML stopped answering, GPU gauges left out: %s", e)
                    self.failed = True
                return
        used.add_metric([self.index], float(mem.used))
        total.add_metric([self.index], float(mem.total))
        util.add_metric([self.index], float(rates.gpu) / 100.0)
        yield used
        yield total
        yield util

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())
