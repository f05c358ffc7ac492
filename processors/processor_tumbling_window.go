package processors

import (
	"github.com/weir-stream/weir/component"
)

const (
	tumblingSize     = "size"
	tumblingInterval = "interval" // ArkFlow's buffer name for size
)

func tumblingWindowSpec() component.Spec {
	return component.Spec{
		Name:     "tumbling_window",
		Stateful: true,
		Summary: "Aggregates rows per key in fixed, non-overlapping windows [start, start+size) aligned to the " +
			"Unix epoch, by event time (timestamp_field; watermark = largest event time − max_out_of_orderness) " +
			"or processing time. A window emits one row (key, window_start, window_end as epoch ms, aggregates) " +
			"when the watermark reaches its end + allowed_lateness, and every open window is emitted at the end " +
			"of the input; records for closed windows go to the error output (late record). Also ArkFlow's " +
			"`buffer: {type: tumbling_window, interval: 1s}` (processing time, a count per window).",
		Fields: windowFields(
			component.Field{Name: tumblingSize, Type: component.TypeDuration,
				Description: "Window length (required, or ArkFlow's interval)."},
			component.Field{Name: tumblingInterval, Type: component.TypeDuration,
				Description: "ArkFlow's name for size (buffer: tumbling_window)."},
		),
		Example: "pipeline:\n  processors:\n    - type: json_to_arrow\n    - type: tumbling_window\n" +
			"      size: 1m\n      key: user\n      timestamp_field: ts\n      max_out_of_orderness: 5s\n" +
			"      aggregates:\n        - {function: count, as: events}\n        - {function: sum, field: amount, as: total}\n",
	}
}

func init() {
	component.RegisterProcessor(tumblingWindowSpec(), newTumblingWindow)
}

func newTumblingWindow(conf *component.Config, res component.Resources) (component.Processor, error) {
	size, interval := conf.Duration(tumblingSize), conf.Duration(tumblingInterval)
	field, d := tumblingSize, size
	switch {
	case size == 0 && interval == 0:
		return nil, conf.Errorf(tumblingSize, "is required (or ArkFlow's interval)")
	case size != 0 && interval != 0:
		return nil, conf.Errorf(tumblingInterval, "is ArkFlow's name for size; set one of them")
	case interval != 0:
		field, d = tumblingInterval, interval
	}
	ms, err := windowMillis(conf, field, d)
	if err != nil {
		return nil, err
	}
	return newWindowProc(conf, res, windowParams{typ: "tumbling_window", mode: windowFixed, size: ms, slide: ms, tick: d})
}
