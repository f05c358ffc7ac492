package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// throughputPoint is weir's word count throughput at one thread_num.
type throughputPoint struct {
	threads int
	mbps    figure // median and min–max over the runs
}

// ckptPoint is the checkpoint size of one backend at one number of keys.
type ckptPoint struct {
	backend    string // as the report names it: "memory", "Pebble"
	keys       int
	full, incr float64 // bytes (medians over the runs)
}

// plotData is what the plot shows; the word count and checkpoint sections
// fill it in and redraw the plot after each.
type plotData struct {
	throughput []throughputPoint
	baseline   figure // the hand-written word count's MB/s (map[string]*int)
	plainMap   figure // the plain map[string]int word count's MB/s
	ckpts      []ckptPoint
}

// plotted is this run's plotData.
var plotted plotData

// plotPath is the plot next to the report: bench/results/latest.svg for
// bench/results/latest.md.
func plotPath() string {
	return strings.TrimSuffix(*outPath, filepath.Ext(*outPath)) + ".svg"
}

// sectionWanted tells whether the -only flag selects a section (as main
// does), so the first section that draws the plot can describe both
// panels.
func sectionWanted(name string) bool {
	all := true
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			all = false
			if s == name {
				return true
			}
		}
	}
	return all
}

// embedPlot writes the Markdown that shows the plot, described for the
// panels it will have once the selected sections have run.
func embedPlot(w interface{ WriteString(string) (int, error) }) {
	var panels []string
	if sectionWanted("wordcount") {
		panels = append(panels, "word count MB/s against `thread_num` (weir's median with min–max bars; the hand-written "+
			"baseline and the 0.5 target as horizontal lines)")
	}
	if sectionWanted("checkpoint") {
		panels = append(panels, "checkpoint bytes against the number of keys (log–log; full and incremental at 1 % churn, "+
			"memory and Pebble: both write the same file format, so their lines may coincide)")
	}
	w.WriteString(fmt.Sprintf("![weir benchmark plot](%s)\n\n", filepath.Base(plotPath())))
	w.WriteString(fmt.Sprintf("`%s`: %s.\n\n", filepath.Base(plotPath()), strings.Join(panels, "; ")))
}

// writePlot draws what the sections measured so far.
func writePlot() {
	must(drawPlot(plotPath(), plotted))
	fmt.Fprintf(os.Stderr, "runbench: wrote %s\n", plotPath())
}

// drawPlot writes an SVG of d to path: one panel for the throughput, one
// for the checkpoint sizes, side by side; a panel without data is left out.
func drawPlot(path string, d plotData) error {
	var panels []*plot.Plot
	if len(d.throughput) > 0 {
		p, err := throughputPanel(d)
		if err != nil {
			return fmt.Errorf("throughput panel: %w", err)
		}
		panels = append(panels, p)
	}
	if len(d.ckpts) > 0 {
		p, err := checkpointPanel(d.ckpts)
		if err != nil {
			return fmt.Errorf("checkpoint panel: %w", err)
		}
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		return fmt.Errorf("plot %s: no data", path)
	}
	const panelW, h = 6 * vg.Inch, 4.5 * vg.Inch
	c := vgsvg.New(panelW*vg.Length(len(panels)), h) // fonts not embedded: Liberation Serif has the metrics of Times New Roman
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadTop: vg.Points(6), PadBottom: vg.Points(6),
		PadLeft: vg.Points(6), PadRight: vg.Points(6), PadX: vg.Points(24)}
	for i, p := range panels {
		p.Draw(tiles.At(dc, i, 0))
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}

var (
	blue   = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	orange = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	gray   = color.RGBA{R: 90, G: 90, B: 90, A: 255}
	green  = color.RGBA{R: 44, G: 160, B: 44, A: 255}
)

// errPoints are medians with min–max error bars.
type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

func throughputPanel(d plotData) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Word count throughput vs thread_num"
	p.X.Label.Text = "thread_num"
	p.Y.Label.Text = "MB/s"

	pts := errPoints{XYs: make(plotter.XYs, len(d.throughput)), YErrors: make(plotter.YErrors, len(d.throughput))}
	var ticks plot.ConstantTicks
	xMax, yMax := 1.0, d.baseline.hi
	for i, t := range d.throughput {
		x := float64(t.threads)
		pts.XYs[i] = plotter.XY{X: x, Y: t.mbps.med}
		pts.YErrors[i].Low, pts.YErrors[i].High = t.mbps.med-t.mbps.lo, t.mbps.hi-t.mbps.med
		ticks = append(ticks, plot.Tick{Value: x, Label: fmt.Sprint(t.threads)})
		xMax, yMax = max(xMax, x), max(yMax, t.mbps.hi)
	}
	line, points, err := plotter.NewLinePoints(pts)
	if err != nil {
		return nil, err
	}
	line.Color, points.Color = blue, blue
	points.Shape = draw.CircleGlyph{}
	bars, err := plotter.NewYErrorBars(pts)
	if err != nil {
		return nil, err
	}
	bars.Color = blue
	p.Add(line, points, bars)
	p.Legend.Add("weir word_count.yaml, emit on_end (median, min–max)", line, points)

	// Horizontal lines over the whole x range.
	lo, hi := 0.5, xMax+0.5
	hline := func(y float64, c color.Color, dashes []vg.Length, name string) error {
		l, err := plotter.NewLine(plotter.XYs{{X: lo, Y: y}, {X: hi, Y: y}})
		if err != nil {
			return err
		}
		l.Color, l.Dashes = c, dashes
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	if d.baseline.med > 0 {
		if err := hline(d.baseline.med, orange, []vg.Length{vg.Points(6), vg.Points(3)},
			"hand-written Go word count, 1 thread (baseline)"); err != nil {
			return nil, err
		}
		if err := hline(d.baseline.med/2, gray, []vg.Length{vg.Points(2), vg.Points(2)}, "target: 0.5 × baseline"); err != nil {
			return nil, err
		}
	}
	if d.plainMap.med > 0 {
		if err := hline(d.plainMap.med, green, []vg.Length{vg.Points(6), vg.Points(3)},
			"hand-written, map[string]int (counts[string(w)]++)"); err != nil {
			return nil, err
		}
	}
	p.X.Min, p.X.Max = lo, hi
	p.X.Tick.Marker = ticks
	p.Y.Min, p.Y.Max = 0, yMax*1.1
	// Bottom left: below weir's points, and text after the icons, so a
	// font wider than the one measured runs into the plot, not off it.
	p.Legend.Top, p.Legend.Left = false, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(8), vg.Points(8)
	p.Add(plotter.NewGrid())
	return p, nil
}

func checkpointPanel(ckpts []ckptPoint) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Checkpoint size vs state size"
	p.X.Label.Text = "keys (int64 counts, 8-byte keys)"
	p.Y.Label.Text = "MB written per checkpoint"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}

	var backends []string
	byBackend := map[string][]ckptPoint{}
	for _, c := range ckpts {
		if _, ok := byBackend[c.backend]; !ok {
			backends = append(backends, c.backend)
		}
		byBackend[c.backend] = append(byBackend[c.backend], c)
	}
	var ticks plot.ConstantTicks
	seenKeys := map[int]bool{}
	xMin, xMax, yMin, yMax := 0.0, 0.0, 0.0, 0.0
	first := true
	for bi, b := range backends {
		pts := byBackend[b]
		for _, kind := range []string{"full", "incremental (1 % of keys changed)"} {
			xys := make(plotter.XYs, 0, len(pts))
			for _, c := range pts {
				v := c.full
				if kind != "full" {
					v = c.incr
				}
				if v <= 0 {
					continue // nothing to draw on a log scale
				}
				x, y := float64(c.keys), v/1e6
				xys = append(xys, plotter.XY{X: x, Y: y})
				if first {
					xMin, xMax, yMin, yMax, first = x, x, y, y, false
				}
				xMin, xMax, yMin, yMax = min(xMin, x), max(xMax, x), min(yMin, y), max(yMax, y)
				if !seenKeys[c.keys] {
					seenKeys[c.keys] = true
					ticks = append(ticks, plot.Tick{Value: x, Label: keysLabel(c.keys)})
				}
			}
			if len(xys) == 0 {
				continue
			}
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			c := blue
			if kind != "full" {
				c = orange
			}
			line.Color, points.Color = c, c
			if bi > 0 {
				// Usually the same numbers as the first backend's:
				// dashed, with small squares over its large circles,
				// so both show.
				line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
				points.Shape = draw.BoxGlyph{}
				points.Radius = vg.Points(2.5)
				points.Color = gray
			} else {
				points.Shape = draw.CircleGlyph{}
				points.Radius = vg.Points(5)
			}
			p.Add(line, points)
			p.Legend.Add(kind+", "+b, line, points)
		}
	}
	if first {
		return nil, fmt.Errorf("no positive checkpoint sizes")
	}
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = xMin/1.6, xMax*1.6
	p.Y.Min, p.Y.Max = yMin/3, yMax*30 // room for the legend at the top
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(8), -vg.Points(8)
	p.Add(plotter.NewGrid())
	return p, nil
}

// keysLabel writes 100000 as "100 k" and 10000000 as "10 M".
func keysLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%d M", n/1_000_000)
	case n >= 1_000 && n%1_000 == 0:
		return fmt.Sprintf("%d k", n/1_000)
	}
	return fmt.Sprint(n)
}
