// Package engine runs weir streams: it builds the components a stream's
// config names and wires them into a dataflow of bounded channels.
//
//	reader ─▶ source ─▶ worker 1..thread_num ─▶ collector ─▶ sink ─▶ output
//	                  (round robin)          (same round robin)    └▶ error_output
//
// Invariants:
//   - Every channel is bounded (capacity Options.QueueDepth), so a slow
//     output slows the input and memory stays flat.
//   - Data is dispatched to workers round robin and collected in the same
//     order, so output order equals input order whatever thread_num is.
//   - Control events (barriers, watermarks, end of stream, and the engine's
//     own flush ticks) are broadcast to every worker and travel in order with
//     the data. The collector aligns them: it forwards a control event only
//     once every worker has delivered it, which is barrier alignment for the
//     worker stage. Processors never see control events inside a batch.
//   - An input's acknowledgement rides on the batches derived from its batch
//     and is called only after the output has confirmed them (at-least-once).
//   - Output writes are retried with exponential backoff and jitter until
//     they succeed or the stream is stopped hard; a batch is never dropped.
//   - Graceful stop (the Run context is cancelled): the input stops, what is
//     in flight drains within Options.ShutdownTimeout, then everything is
//     cancelled. Every goroutine is waited for before Run returns.
package engine
