package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// Summarizer is the part of the engine metrics read.
type Summarizer interface {
	Summarize() offload.Summary
}

// Metrics is a Prometheus collector over the engine and the NICs, read at
// scrape time.
type Metrics struct {
	eng                                            Summarizer
	node                                           NodeInfo
	flows, reasons, used, capacity, packets, bytes *prometheus.Desc
	storeFailures, storeOK                         *prometheus.Desc
}

var _ prometheus.Collector = (*Metrics)(nil)

// NewMetrics returns the collector; register it with a prometheus.Registry.
func NewMetrics(eng Summarizer, node NodeInfo) *Metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("offloadd_"+name, help, labels, nil)
	}
	return &Metrics{eng: eng, node: node,
		flows:         d("flows", "Flows by NIC and state (hardware, software, pending, failed).", "device", "state"),
		reasons:       d("flows_not_in_hardware", "Flows not in hardware, by the code of their first reason.", "reason"),
		used:          d("hardware_table_used_entries", "Entries used in the NIC's hardware flow table.", "device"),
		capacity:      d("hardware_table_capacity_entries", "Size of the NIC's hardware flow table (0: unknown).", "device"),
		packets:       d("flow_packets_total", "Packets counted by the flows, per NIC and plane.", "device", "plane"),
		bytes:         d("flow_bytes_total", "Bytes counted by the flows, per NIC and plane (hardware excludes L2 headers).", "device", "plane"),
		storeFailures: d("state_save_failures_total", "Failed writes of the desired state to the state store."),
		storeOK:       d("state_store_ok", "1 while the desired state is written as changes come, 0 while writes fail (changes are refused)."),
	}
}

// Describe sends the metric descriptions.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.flows, m.reasons, m.used, m.capacity, m.packets, m.bytes, m.storeFailures, m.storeOK} {
		ch <- d
	}
}

// Collect reads the engine's summary and each NIC's table use.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	s := m.eng.Summarize()
	ok := 1.0
	if s.StoreFailing {
		ok = 0
	}
	ch <- prometheus.MustNewConstMetric(m.storeOK, prometheus.GaugeValue, ok)
	ch <- prometheus.MustNewConstMetric(m.storeFailures, prometheus.CounterValue, float64(s.StoreFailures))
	for dev, states := range s.States {
		for _, st := range []offload.State{offload.StateHardware, offload.StateSoftware, offload.StatePending, offload.StateFailed} {
			ch <- prometheus.MustNewConstMetric(m.flows, prometheus.GaugeValue, float64(states[st]), dev, st.String())
		}
		for _, pl := range []flow.Plane{flow.Hardware, flow.Software} {
			ch <- prometheus.MustNewConstMetric(m.packets, prometheus.CounterValue, float64(s.Packets[dev][pl]), dev, pl.String())
			ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.CounterValue, float64(s.Bytes[dev][pl]), dev, pl.String())
		}
	}
	for code, n := range s.Reasons {
		ch <- prometheus.MustNewConstMetric(m.reasons, prometheus.GaugeValue, float64(n), string(code))
	}
	for _, d := range m.node.Devices() {
		used, total := d.Capacity()
		name := d.Info().Name
		ch <- prometheus.MustNewConstMetric(m.used, prometheus.GaugeValue, float64(used), name)
		ch <- prometheus.MustNewConstMetric(m.capacity, prometheus.GaugeValue, float64(total), name)
	}
}
