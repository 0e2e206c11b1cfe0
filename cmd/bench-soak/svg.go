package main

// A small SVG line-plot writer: one metric against time, the warm-up
// shaded, the steady part's fit line and its ±tolerance band drawn. Enough
// for docs/; no plotting dependency.

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// series is one line of a plot.
type series struct {
	name  string
	t, v  []float64 // seconds, value in the plot's unit
	color string
	thin  bool // a faint line without a legend entry (one viewer among many)
	plain bool // no dots on the samples (a reference line)
}

// plot is one chart.
type plot struct {
	title, unit string
	series      []series
	warmup      float64 // seconds; shaded
	// fit, when set, is the steady part's line y = a + b·t over [t0, t1]
	// (of series[0]), drawn dashed, with the band mean·(1 ± tol).
	fit           bool
	a, b, t0, t1  float64
	mean, tol     float64
	note          string // under the title
	width, height int
	plotL, plotR  int // margins
	plotT, plotB  int
}

// niceStep is a step of 1, 2 or 5 × 10^k giving about n ticks over span.
func niceStep(span float64, n int) float64 {
	if span <= 0 || math.IsNaN(span) || math.IsInf(span, 0) {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// tickLabel formats a tick value without float noise.
func tickLabel(v, step float64) string {
	if step >= 1 {
		return fmt.Sprintf("%.0f", v)
	}
	d := int(math.Ceil(-math.Log10(step)))
	return fmt.Sprintf("%.*f", d, v)
}

// svg renders the plot.
func (p plot) svg() string {
	if p.width == 0 {
		p.width, p.height, p.plotL, p.plotR, p.plotT, p.plotB = 720, 340, 70, 20, 72, 44
	}
	// The legend: rows above the plot, a short line of each colour; the
	// plot moves down by the rows it takes.
	type entry struct {
		name, color string
		x, y        float64
	}
	var legend []entry
	for _, s := range p.series {
		if !s.thin {
			legend = append(legend, entry{name: s.name, color: s.color})
		}
	}
	if p.fit {
		legend = append(legend, entry{name: "fit after the warm-up, its mean ±" + tolStr(p.tol), color: "#d62728"})
	}
	if len(legend) == 1 && !p.fit {
		legend = nil // the title says it
	}
	lx, ly := float64(p.plotL), float64(p.plotT)-8
	for i := range legend {
		wide := 20 + 6.2*float64(len([]rune(legend[i].name))) + 16
		if lx > float64(p.plotL) && lx+wide > float64(p.width-p.plotR) {
			lx, ly = float64(p.plotL), ly+16
		}
		legend[i].x, legend[i].y = lx, ly
		lx += wide
	}
	if len(legend) > 0 {
		grow := int(ly - (float64(p.plotT) - 8))
		p.plotT += grow
		p.height += grow
	}

	// Time in minutes on the x axis, from 0.
	tmax, vmax := 0.0, 0.0
	for _, s := range p.series {
		for i := range s.t {
			tmax = math.Max(tmax, s.t[i])
			if !math.IsNaN(s.v[i]) && !math.IsInf(s.v[i], 0) {
				vmax = math.Max(vmax, s.v[i])
			}
		}
	}
	if p.fit {
		vmax = math.Max(vmax, p.mean*(1+p.tol))
	}
	tmaxMin := math.Max(tmax/60, 1.0/60)
	xstep := niceStep(tmaxMin, 8)
	xtop := math.Ceil(tmaxMin/xstep) * xstep
	if vmax <= 0 {
		vmax = 1
	}
	ystep := niceStep(vmax, 5)
	ytop := math.Ceil(vmax*1.05/ystep) * ystep
	w, h := float64(p.width-p.plotL-p.plotR), float64(p.height-p.plotT-p.plotB)
	x := func(sec float64) float64 { return float64(p.plotL) + sec/60/xtop*w }
	y := func(v float64) float64 { return float64(p.plotT) + h - v/ytop*h }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		p.width, p.height, p.width, p.height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", p.width, p.height)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="15" font-weight="bold">%s</text>`+"\n", p.plotL, esc(p.title))
	if p.note != "" {
		fmt.Fprintf(&b, `<text x="%d" y="38" fill="#444">%s</text>`+"\n", p.plotL, esc(p.note))
	}
	// Warm-up and the tolerance band.
	if p.warmup > 0 {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%.1f" fill="#eeeeee"/>`+"\n",
			x(0), p.plotT, x(math.Min(p.warmup, xtop*60))-x(0), h)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#888">warm-up</text>`+"\n", x(0)+4, p.plotT+14)
	}
	if p.fit {
		lo, hi := p.mean*(1-p.tol), p.mean*(1+p.tol)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#2ca02c" fill-opacity="0.12"/>`+"\n",
			x(p.t0), y(hi), x(p.t1)-x(p.t0), y(lo)-y(hi))
	}
	// Grid and axes.
	for v := 0.0; v <= ytop+ystep/2; v += ystep {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", p.plotL, y(v), p.width-p.plotR, y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", p.plotL-6, y(v)+4, tickLabel(v, ystep))
	}
	for m := 0.0; m <= xtop+xstep/2; m += xstep {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x(m*60), p.plotT, x(m*60), p.height-p.plotB)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(m*60), p.height-p.plotB+16, tickLabel(m, xstep))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", p.plotL, p.plotT, w, h)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">minutes</text>`+"\n", float64(p.plotL)+w/2, p.height-8)
	fmt.Fprintf(&b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", float64(p.plotT)+h/2, esc(p.unit))
	// The lines: faint ones first, under the others.
	for pass := 0; pass < 2; pass++ {
		for _, s := range p.series {
			if s.thin != (pass == 0) || len(s.t) == 0 {
				continue
			}
			var pts []string
			for i := range s.t {
				if math.IsNaN(s.v[i]) || math.IsInf(s.v[i], 0) {
					continue
				}
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.t[i]), y(s.v[i])))
			}
			width, opacity := 2.0, 1.0
			if s.thin {
				width, opacity = 1, 0.25
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="%.0f" stroke-opacity="%.2f" points="%s"/>`+"\n",
				s.color, width, opacity, strings.Join(pts, " "))
			if !s.thin && !s.plain && len(pts) <= 200 {
				for _, pt := range pts {
					xy := strings.Split(pt, ",")
					fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2.5" fill="%s"/>`+"\n", xy[0], xy[1], s.color)
				}
			}
		}
	}
	if p.fit {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d62728" stroke-width="1.5" stroke-dasharray="6 4"/>`+"\n",
			x(p.t0), y(p.a+p.b*p.t0), x(p.t1), y(p.a+p.b*p.t1))
	}
	// The legend, laid out above.
	for _, e := range legend {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", e.x, e.y-4, e.x+16, e.y-4, e.color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", e.x+20, e.y, esc(e.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func esc(s string) string { return html.EscapeString(s) }
