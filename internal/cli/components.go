package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/config"
	"github.com/weir-stream/weir/internal/docgen"
)

func newComponentsCmd() *cobra.Command {
	var (
		format   string
		markdown bool
	)
	cmd := &cobra.Command{
		Use:   "components [KIND [NAME]]",
		Short: "List components, or show one component's fields",
		Long: `List the registered inputs, processors and outputs with their summaries (and,
for outputs, their delivery guarantee). With KIND (input, processor, output),
list that kind; with KIND and NAME, show every field of that component with its
type, default, whether it is required, its options and description, and an
example.

--format json prints the specs as JSON; --markdown prints the reference that
docs/components.md holds.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if markdown {
				if len(args) > 0 {
					return fmt.Errorf("components: --markdown documents every component; it takes no arguments")
				}
				return docgen.Markdown(out)
			}
			if format != "text" && format != "json" {
				return fmt.Errorf("components: --format: expected text or json, got %q", format)
			}
			kinds := component.Kinds
			if len(args) > 0 {
				k, err := parseKind(args[0])
				if err != nil {
					return err
				}
				kinds = []component.Kind{k}
			}
			if len(args) == 2 {
				reg := component.Lookup(kinds[0], args[1])
				if reg == nil {
					return fmt.Errorf("components: unknown %s %q%s", kinds[0], args[1], suggest(args[1], component.Names(kinds[0])))
				}
				if format == "json" {
					return writeJSON(out, docgen.Doc(reg.Spec))
				}
				return writeSpec(out, reg.Spec)
			}
			if format == "json" {
				docs := []docgen.SpecDoc{}
				for _, k := range kinds {
					for _, s := range docgen.Specs(k) {
						docs = append(docs, docgen.Doc(s))
					}
				}
				return writeJSON(out, docs)
			}
			return writeList(out, kinds)
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print the Markdown reference of the config file and every component (docs/components.md)")
	return cmd
}

// parseKind accepts a kind in singular or plural.
func parseKind(s string) (component.Kind, error) {
	for _, k := range component.Kinds {
		if s == string(k) || s == string(k)+"s" {
			return k, nil
		}
	}
	names := make([]string, len(component.Kinds))
	for i, k := range component.Kinds {
		names[i] = string(k)
	}
	return "", fmt.Errorf("components: unknown kind %q; expected one of: %s%s", s, strings.Join(names, ", "), suggest(strings.TrimSuffix(s, "s"), names))
}

func suggest(name string, candidates []string) string {
	if c := config.Closest(name, candidates); c != "" {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	return ""
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// writeList prints each kind's components with the first sentence of
// their summaries (and, for outputs, the delivery guarantee), in columns
// aligned across kinds.
func writeList(w io.Writer, kinds []component.Kind) error {
	nameW, deliveryW := 0, 0
	for _, k := range kinds {
		for _, s := range docgen.Specs(k) {
			nameW = max(nameW, len(s.Name))
			deliveryW = max(deliveryW, len(shortDelivery(s.Delivery)))
		}
	}
	for i, k := range kinds {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%sS\n", strings.ToUpper(string(k)))
		specs := docgen.Specs(k)
		if len(specs) == 0 {
			fmt.Fprintln(w, "  (none registered)")
		}
		for _, s := range specs {
			if k == component.KindOutput {
				fmt.Fprintf(w, "  %-*s  %-*s  %s\n", nameW, s.Name, deliveryW, shortDelivery(s.Delivery), firstSentence(s.Summary))
			} else {
				fmt.Fprintf(w, "  %-*s  %s\n", nameW, s.Name, firstSentence(s.Summary))
			}
		}
	}
	return nil
}

// shortDelivery is a delivery guarantee without its explanation:
// "exactly-once", "at-least-once", "none".
func shortDelivery(d component.Delivery) string {
	short, _, _ := strings.Cut(string(d), " (")
	return short
}

// firstSentence is s up to its first ". ".
func firstSentence(s string) string {
	s = oneLine(s)
	for i := 0; ; {
		j := strings.Index(s[i:], ". ")
		if j < 0 {
			return s
		}
		end := i + j + 1
		if !strings.HasSuffix(s[:end], "e.g.") && !strings.HasSuffix(s[:end], "i.e.") {
			return s[:end]
		}
		i = end
	}
}

// writeSpec prints one component: summary, guarantees, every field and the
// example.
func writeSpec(w io.Writer, s component.Spec) error {
	fmt.Fprintf(w, "%s (%s)\n  %s\n", s.Name, s.Kind, oneLine(s.Summary))
	if s.Delivery != "" {
		fmt.Fprintf(w, "  Delivery: %s\n", s.Delivery)
	}
	if s.Bounded {
		fmt.Fprintln(w, "  Bounded: the stream ends when the input is exhausted.")
	}
	if s.Stateful {
		fmt.Fprintln(w, "  Stateful: keeps keyed state, checkpointed with the pipeline.")
	}
	fmt.Fprintln(w, "\nFIELDS")
	fmt.Fprintln(w, "  type (string, required)\n      "+fmt.Sprintf("%q for this %s.", s.Name, s.Kind))
	writeFields(w, "", s.Fields)
	if ex := docgen.Example(s); ex != "" {
		fmt.Fprintln(w, "\nEXAMPLE")
		for _, l := range strings.Split(ex, "\n") {
			fmt.Fprintln(w, strings.TrimRight("  "+l, " "))
		}
	}
	return nil
}

func writeFields(w io.Writer, prefix string, fields []component.Field) {
	for _, f := range fields {
		attrs := []string{docgen.TypeName(f)}
		if f.Required {
			attrs = append(attrs, "required")
		}
		if d := docgen.FormatDefault(f); d != "" {
			attrs = append(attrs, "default: "+d)
		}
		if len(f.Options) > 0 {
			attrs = append(attrs, "one of: "+strings.Join(f.Options, ", "))
		}
		if f.Advanced {
			attrs = append(attrs, "advanced")
		}
		fmt.Fprintf(w, "  %s%s (%s)\n      %s\n", prefix, f.Name, strings.Join(attrs, ", "), oneLine(f.Description))
		if len(f.Fields) > 0 {
			sub := prefix + f.Name + "."
			if f.Type == component.TypeList {
				sub = prefix + f.Name + "[]."
			}
			writeFields(w, sub, f.Fields)
		}
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
