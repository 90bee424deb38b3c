"""The agent's observability metrics (prometheus_client), registered on a registry the caller
owns, so whichever HTTP server serves /metrics can expose them. Names follow Kube-OVN's
`kube_ovn_vpc_egress_gateway_*` set with vegd's prefix; labels carry no addresses or ports.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

PREFIX = "vegd_gateway_"
FLOW_LABELS = ("family", "protocol", "nat_type")


class ObservabilityMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, text: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(PREFIX + name, text, labels, registry=registry)

        self.flows_started = counter("conntrack_nat_flows_started_total",
                                     "translated connections that started", FLOW_LABELS)
        self.flows_ended = counter("conntrack_nat_flows_ended_total",
                                   "translated connections that ended", FLOW_LABELS)
        self.flows_active = Gauge(PREFIX + "conntrack_nat_flows_active",
                                  "translated connections seen starting and not yet ended",
                                  FLOW_LABELS, registry=registry)
        self.packets = counter("conntrack_nat_packets_total",
                               "packets of ended translated connections (needs accounting)",
                               (*FLOW_LABELS, "direction"))
        self.bytes = counter("conntrack_nat_bytes_total",
                             "bytes of ended translated connections (needs accounting)",
                             (*FLOW_LABELS, "direction"))
        self.events = counter("conntrack_events_total",
                              "conntrack events read from the kernel", ("event",))
        self.accounting = Gauge(PREFIX + "conntrack_accounting_available",
                                "1 when net.netfilter.nf_conntrack_acct is on (end records "
                                "carry counters)", registry=registry)
        self.listening = Gauge(PREFIX + "conntrack_events_listening",
                               "1 while the agent reads conntrack events (observability on)",
                               registry=registry)
        self.records_written = counter("translation_records_written_total",
                                       "translation records written")
        self.records_dropped = counter("translation_records_dropped_total",
                                       "translation records not written, by reason "
                                       "(enobufs: kernel receive-buffer overruns, each losing "
                                       "one or more events)", ("reason",))
        self.recovered = counter("conntrack_events_recovered_total",
                                 "starts and ends found by re-reading the conntrack table after "
                                 "an overrun (their events were lost)", ("event",))
        self.config_reloads = counter("observability_config_reload_total",
                                      "observability settings (re)loaded", ("result",))
        self.tracked_evictions = counter("conntrack_tracked_evictions_total",
                                         "started connections forgotten to bound memory")
        for reason in ("enobufs", "queue_full", "rate_limit", "filter"):
            self.records_dropped.labels(reason)
        for result in ("success", "failure"):
            self.config_reloads.labels(result)
