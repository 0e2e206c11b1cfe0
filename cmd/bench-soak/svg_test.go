package main

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

// The plot is well-formed XML with the lines, the warm-up and the fit
// drawn, and text escaped.
func TestPlotSVG(t *testing.T) {
	p := plot{title: "server RSS <bytes> & more", unit: "MiB", warmup: 120, fit: true, a: 100, b: 0.01, t0: 180, t1: 600, mean: 103, tol: 0.1,
		series: []series{
			{name: "rss", t: []float64{60, 120, 180, 240, 600}, v: []float64{90, 100, 101, 102, 106}, color: "#1f77b4"},
			{name: "faint", t: []float64{60, 600}, v: []float64{1, 2}, color: "#1f77b4", thin: true},
		}}
	out := p.svg()
	d := xml.NewDecoder(strings.NewReader(out))
	counts := map[string]int{}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, out)
		}
		if se, ok := tok.(xml.StartElement); ok {
			counts[se.Name.Local]++
		}
	}
	if counts["svg"] != 1 || counts["polyline"] != 2 || counts["circle"] != 5 || counts["line"] < 3 {
		t.Errorf("elements %v", counts)
	}
	for _, want := range []string{"server RSS &lt;bytes&gt; &amp; more", "warm-up", `stroke-dasharray="6 4"`, "minutes"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the plot", want)
		}
	}
}

func TestNiceStep(t *testing.T) {
	for _, tt := range []struct {
		span float64
		n    int
		want float64
	}{{120, 8, 20}, {3, 8, 0.5}, {10, 5, 2}, {0, 5, 1}, {450, 5, 100}} {
		if got := niceStep(tt.span, tt.n); got != tt.want {
			t.Errorf("niceStep(%v, %d) = %v, want %v", tt.span, tt.n, got, tt.want)
		}
	}
	if got := tickLabel(0.5, 0.5); got != "0.5" {
		t.Errorf("tickLabel(0.5) = %q", got)
	}
}
