package processors

import (
	"github.com/weir-stream/weir/component"
)

const sessionGap = "gap"

func sessionWindowSpec() component.Spec {
	return component.Spec{
		Name:     "session_window",
		Stateful: true,
		Summary: "Aggregates each key's records into sessions: records at most gap apart belong to one session " +
			"(an event that bridges two sessions merges them). Event time (timestamp_field; watermark = largest " +
			"event time − max_out_of_orderness) or processing time. A session closes when the watermark passes " +
			"its last event + gap (+ allowed_lateness) and emits one row: key, window_start and window_end = the " +
			"timestamps of its FIRST and LAST event (epoch ms), aggregates; every open session is emitted at the " +
			"end of the input. A record that joins no open session and is more than gap + allowed_lateness behind " +
			"the watermark goes to the error output (late record). Also ArkFlow's `buffer: {type: session_window, gap: 5s}`.",
		Fields: windowFields(
			component.Field{Name: sessionGap, Type: component.TypeDuration, Required: true,
				Description: "Largest gap between two records of one session (ArkFlow's name too)."},
		),
		Example: "pipeline:\n  processors:\n    - type: json_to_arrow\n    - type: session_window\n" +
			"      gap: 30s\n      key: user\n      timestamp_field: ts\n      max_out_of_orderness: 1m\n" +
			"      key_column: user\n      start_column: start\n      end_column: end\n" +
			"      aggregates:\n        - {function: count, as: count}\n",
	}
}

func init() {
	component.RegisterProcessor(sessionWindowSpec(), newSessionWindow)
}

func newSessionWindow(conf *component.Config, res component.Resources) (component.Processor, error) {
	gap := conf.Duration(sessionGap)
	ms, err := windowMillis(conf, sessionGap, gap)
	if err != nil {
		return nil, err
	}
	return newWindowProc(conf, res, windowParams{typ: "session_window", mode: windowSession, gap: ms, tick: gap})
}
