// Package httpconn holds weir's HTTP connectors: the `http` input (an HTTP
// server that turns each accepted request into one batch) and the `http`
// output (a client that sends one request per batch). The directory is
// connectors/http; the package is named httpconn so that it does not shadow
// net/http.
//
// Invariants:
//   - Input: a sender is answered 200 only after the request's batch has been
//     acknowledged by the pipeline (ack(nil)); every other outcome is a
//     non-2xx answer (500 on ack error, 503 when the queue is full or the
//     input is closing, 504 on timeout). A request answered 504 or 503 before
//     it was read is never handed to the pipeline. A request answered 504
//     after it was read may still be written: the sender's retry can
//     duplicate it (at-least-once).
//   - Input: at most queue_size requests wait to be read; more are refused
//     with 503 and Retry-After, which is the input's backpressure.
//   - Output: Write returns nil only after a 2xx answer; a retry after a lost
//     answer can duplicate a batch (at-least-once).
//   - Close leaves no goroutine behind (server, handlers, idle connections).
package httpconn
