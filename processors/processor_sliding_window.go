package processors

import (
	"time"

	"github.com/weir-stream/weir/component"
)

const (
	slidingSize  = "size"
	slidingSlide = "slide"
	// ArkFlow's buffer fields (counts of messages and an emission
	// interval), mapped onto time: see the spec.
	slidingWindowSize = "window_size"
	slidingSlideSize  = "slide_size"
	slidingInterval   = "interval"
)

func slidingWindowSpec() component.Spec {
	return component.Spec{
		Name:     "sliding_window",
		Stateful: true,
		Summary: "Aggregates rows per key in overlapping windows [start, start+size) that start every slide " +
			"(aligned to the Unix epoch), so a record belongs to size/slide windows; event time (timestamp_field; " +
			"watermark = largest event time − max_out_of_orderness) or processing time. A window emits one row " +
			"(key, window_start, window_end as epoch ms, aggregates) when the watermark reaches its end + " +
			"allowed_lateness, and every open window is emitted at the end of the input; a record whose windows " +
			"have all closed goes to the error output (late record). ArkFlow's `buffer: {type: sliding_window, " +
			"window_size: N, slide_size: M, interval: D}` counts messages; weir maps it onto time: windows slide " +
			"every interval and span window_size/slide_size slides.",
		Fields: windowFields(
			component.Field{Name: slidingSize, Type: component.TypeDuration,
				Description: "Window length (required unless ArkFlow's fields are used)."},
			component.Field{Name: slidingSlide, Type: component.TypeDuration,
				Description: "Distance between window starts, at most size (required unless ArkFlow's fields are used)."},
			component.Field{Name: slidingWindowSize, Type: component.TypeInt,
				Description: "ArkFlow: messages per window; with slide_size and interval, size = interval × window_size / slide_size."},
			component.Field{Name: slidingSlideSize, Type: component.TypeInt,
				Description: "ArkFlow: messages the window slides by (at most window_size)."},
			component.Field{Name: slidingInterval, Type: component.TypeDuration,
				Description: "ArkFlow: time between window emissions; it becomes slide."},
		),
		Example: "pipeline:\n  processors:\n    - type: json_to_arrow\n    - type: sliding_window\n" +
			"      size: 10m\n      slide: 1m\n      key: sensor\n      timestamp_field: ts\n" +
			"      aggregates:\n        - {function: avg, field: temperature, as: avg_temperature}\n",
	}
}

func init() {
	component.RegisterProcessor(slidingWindowSpec(), newSlidingWindow)
}

func newSlidingWindow(conf *component.Config, res component.Resources) (component.Processor, error) {
	size, slide := conf.Duration(slidingSize), conf.Duration(slidingSlide)
	wsize, ssize, interval := conf.Int(slidingWindowSize), conf.Int(slidingSlideSize), conf.Duration(slidingInterval)
	arkflow := wsize != 0 || ssize != 0 || interval != 0
	var sizeMs, slideMs int64
	var err error
	switch {
	case arkflow && (size != 0 || slide != 0):
		return nil, conf.Errorf(slidingWindowSize, "set either size and slide, or ArkFlow's window_size, slide_size and interval")
	case arkflow:
		switch {
		case wsize < 1:
			return nil, conf.Errorf(slidingWindowSize, "must be at least 1 (with slide_size and interval)")
		case ssize < 1:
			return nil, conf.Errorf(slidingSlideSize, "must be at least 1 (with window_size and interval)")
		case ssize > wsize:
			return nil, conf.Errorf(slidingSlideSize, "must not exceed window_size (%d)", wsize)
		}
		if slideMs, err = windowMillis(conf, slidingInterval, interval); err != nil {
			return nil, err
		}
		sizeMs = slideMs * int64(wsize) / int64(ssize)
		slide = interval
	default:
		if size == 0 {
			return nil, conf.Errorf(slidingSize, "is required (or ArkFlow's window_size, slide_size and interval)")
		}
		if slide == 0 {
			return nil, conf.Errorf(slidingSlide, "is required")
		}
		if sizeMs, err = windowMillis(conf, slidingSize, size); err != nil {
			return nil, err
		}
		if slideMs, err = windowMillis(conf, slidingSlide, slide); err != nil {
			return nil, err
		}
		if slideMs > sizeMs {
			return nil, conf.Errorf(slidingSlide, "must not exceed size (%v): records between windows would belong to none", size)
		}
	}
	return newWindowProc(conf, res, windowParams{typ: "sliding_window", mode: windowFixed, size: sizeMs, slide: slideMs,
		tick: time.Duration(slideMs) * time.Millisecond})
}
