// Package metrics holds weir's Prometheus metrics. Every metric is labelled
// by stream and component; components get pre-bound handles so the hot path
// never looks a label up.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry is the set of weir metrics of one process.
type Registry struct {
	Prom *prometheus.Registry

	recordsIn, recordsOut   *prometheus.CounterVec
	bytesIn, bytesOut       *prometheus.CounterVec
	errors, retries         *prometheus.CounterVec
	batchLatency, procTime  *prometheus.HistogramVec
	connected               *prometheus.GaugeVec
	checkpointDuration      *prometheus.HistogramVec
	checkpointSize          *prometheus.GaugeVec
	checkpointAlign         *prometheus.HistogramVec
	checkpointStall         *prometheus.HistogramVec
	checkpointFailures      *prometheus.CounterVec
	checkpointLastCompleted *prometheus.GaugeVec
	restoreDuration         *prometheus.GaugeVec
}

// New creates a registry with the Go and process collectors.
func New() *Registry {
	r := &Registry{Prom: prometheus.NewRegistry()}
	r.Prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	labels := []string{"stream", "component"}
	counter := func(name, help string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "weir", Name: name, Help: help}, labels)
		r.Prom.MustRegister(c)
		return c
	}
	r.recordsIn = counter("records_in_total", "Records received by a component.")
	r.recordsOut = counter("records_out_total", "Records emitted (inputs, processors) or written (outputs) by a component.")
	r.bytesIn = counter("bytes_in_total", "Payload bytes received by a component.")
	r.bytesOut = counter("bytes_out_total", "Payload bytes written by a component.")
	r.errors = counter("errors_total", "Records or operations that failed in a component.")
	r.retries = counter("retries_total", "Retried operations (writes, reads, connects) of a component.")
	latencyBuckets := prometheus.ExponentialBuckets(0.0001, 4, 10) // 100µs .. ~26s
	r.batchLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "weir", Name: "batch_latency_seconds",
		Help: "Time from a batch being read by the input to being written by the output.", Buckets: latencyBuckets}, labels)
	r.procTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "weir", Name: "processor_seconds",
		Help: "Time a processor (or output write) spent on one batch.", Buckets: latencyBuckets}, labels)
	r.connected = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "weir", Name: "connected",
		Help: "1 when a component is connected, 0 while it is retrying."}, labels)
	r.Prom.MustRegister(r.batchLatency, r.procTime, r.connected)

	sl := []string{"stream"}
	r.checkpointDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "weir", Name: "checkpoint_duration_seconds",
		Help: "Time from triggering a checkpoint to its manifest being written.", Buckets: latencyBuckets}, sl)
	r.checkpointSize = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "weir", Name: "checkpoint_size_bytes",
		Help: "Bytes of the last completed checkpoint: kind=full (all files it references) or incremental (files it uploaded)."}, []string{"stream", "kind"})
	r.checkpointAlign = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "weir", Name: "checkpoint_alignment_seconds",
		Help: "Time an operator held inputs while aligning barriers.", Buckets: latencyBuckets}, labels)
	r.checkpointStall = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "weir", Name: "checkpoint_sync_stall_seconds",
		Help: "Synchronous part of a snapshot (freezing the state view), during which the operator stops.", Buckets: latencyBuckets}, labels)
	r.checkpointFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "weir", Name: "checkpoint_failures_total",
		Help: "Checkpoints that failed or timed out, by reason."}, []string{"stream", "reason"})
	r.checkpointLastCompleted = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "weir", Name: "checkpoint_last_completed_id",
		Help: "ID of the last completed checkpoint."}, sl)
	r.restoreDuration = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "weir", Name: "restore_duration_seconds",
		Help: "Time the last restore from a checkpoint took."}, sl)
	r.Prom.MustRegister(r.checkpointDuration, r.checkpointSize, r.checkpointAlign, r.checkpointStall,
		r.checkpointFailures, r.checkpointLastCompleted, r.restoreDuration)
	return r
}

// Component is the set of pre-bound metrics of one component.
type Component struct {
	RecordsIn, RecordsOut prometheus.Counter
	BytesIn, BytesOut     prometheus.Counter
	Errors, Retries       prometheus.Counter
	BatchLatency          prometheus.Observer
	ProcessTime           prometheus.Observer
	Connected             prometheus.Gauge
}

// Component returns the handles of one component of a stream.
func (r *Registry) Component(stream, component string) *Component {
	l := prometheus.Labels{"stream": stream, "component": component}
	return &Component{
		RecordsIn:    r.recordsIn.With(l),
		RecordsOut:   r.recordsOut.With(l),
		BytesIn:      r.bytesIn.With(l),
		BytesOut:     r.bytesOut.With(l),
		Errors:       r.errors.With(l),
		Retries:      r.retries.With(l),
		BatchLatency: r.batchLatency.With(l),
		ProcessTime:  r.procTime.With(l),
		Connected:    r.connected.With(l),
	}
}

// Checkpoint is the set of checkpoint metrics of one stream.
type Checkpoint struct {
	Duration      prometheus.Observer
	FullSize      prometheus.Gauge
	IncrSize      prometheus.Gauge
	LastCompleted prometheus.Gauge
	Restore       prometheus.Gauge
	r             *Registry
	stream        string
}

// Checkpoint returns the checkpoint handles of a stream.
func (r *Registry) Checkpoint(stream string) *Checkpoint {
	return &Checkpoint{
		Duration:      r.checkpointDuration.WithLabelValues(stream),
		FullSize:      r.checkpointSize.WithLabelValues(stream, "full"),
		IncrSize:      r.checkpointSize.WithLabelValues(stream, "incremental"),
		LastCompleted: r.checkpointLastCompleted.WithLabelValues(stream),
		Restore:       r.restoreDuration.WithLabelValues(stream),
		r:             r,
		stream:        stream,
	}
}

// Failed counts a failed checkpoint with a reason (timeout, storage, task).
func (c *Checkpoint) Failed(reason string) {
	c.r.checkpointFailures.WithLabelValues(c.stream, reason).Inc()
}

// Alignment returns the alignment-time observer of an operator.
func (c *Checkpoint) Alignment(component string) prometheus.Observer {
	return c.r.checkpointAlign.WithLabelValues(c.stream, component)
}

// Stall returns the synchronous-snapshot observer of an operator.
func (c *Checkpoint) Stall(component string) prometheus.Observer {
	return c.r.checkpointStall.WithLabelValues(c.stream, component)
}
