package benchkit

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// chart geometry, in SVG user units (pixels).
const (
	chartWidth  = 920
	labelWidth  = 270 // target labels, right-aligned before the bars
	barsLeft    = labelWidth + 10
	barsWidth   = 520
	barHeight   = 12
	barGap      = 2
	groupGap    = 12
	panelTitleH = 34
	axisH       = 22
)

// bodyColors are the bar colours of BodySmall and BodyLarge.
var bodyColors = map[string]string{BodySmall: "#4e79a7", BodyLarge: "#f28e2b"}

// Chart draws rows as a self-contained SVG: one panel of requests per
// second and one of CPU microseconds per request, a pair of bars (13-byte
// and 16 KiB bodies) per target, targets in the order they appear in rows.
func Chart(rows []Row, title string, conns int) []byte {
	var targets []TargetInfo
	seen := make(map[string]bool)
	for _, r := range rows {
		if !seen[r.Name] {
			seen[r.Name] = true
			targets = append(targets, r.TargetInfo)
		}
	}
	value := make(map[string]map[string]Row) // target → body → row
	for _, r := range rows {
		if value[r.Name] == nil {
			value[r.Name] = make(map[string]Row)
		}
		value[r.Name][r.Body] = r
	}
	panelH := panelTitleH + len(targets)*(2*barHeight+barGap+groupGap) + axisH
	height := 70 + 2*panelH + 30

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartWidth, height)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", 10, esc(title))
	// Legend.
	x := barsLeft
	for _, body := range []string{BodySmall, BodyLarge} {
		fmt.Fprintf(&b, `<rect x="%d" y="38" width="12" height="12" fill="%s"/>`, x, bodyColors[body])
		fmt.Fprintf(&b, `<text x="%d" y="48">%s</text>`+"\n", x+16, esc(BodyTitle(body)))
		x += 150
	}
	y := 70
	panel(&b, y, fmt.Sprintf("Requests per second, wrk -c%d (median of rounds; higher is better)", conns), targets, value,
		func(r Row) float64 { return r.RPS }, func(v float64) string { return groupDigits(v) })
	y += panelH
	panel(&b, y, "CPU µs per request of the proxy process(es) (direct: the backend's; lower is better)", targets, value,
		func(r Row) float64 { return r.CPUPerReq }, func(v float64) string { return fmt.Sprintf("%.1f", v) })
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// panel draws one bar panel whose top is at y.
func panel(b *bytes.Buffer, y int, title string, targets []TargetInfo, value map[string]map[string]Row,
	metric func(Row) float64, format func(float64) string) {
	fmt.Fprintf(b, `<text x="10" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", y+18, esc(title))
	top := y + panelTitleH
	biggest := 0.0
	for _, t := range targets {
		for _, r := range value[t.Name] {
			if v := metric(r); !math.IsNaN(v) {
				biggest = max(biggest, v)
			}
		}
	}
	scale, step := niceScale(biggest)
	bottom := top + len(targets)*(2*barHeight+barGap+groupGap)
	// Grid lines and their labels.
	for v := 0.0; v <= scale+step/2; v += step {
		gx := barsLeft + int(math.Round(v/scale*barsWidth))
		fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#dddddd"/>`, gx, top-4, gx, bottom)
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle" fill="#666666" font-size="10">%s</text>`+"\n", gx, bottom+14, esc(tick(v, step)))
	}
	for i, t := range targets {
		gy := top + i*(2*barHeight+barGap+groupGap)
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelWidth, gy+barHeight+4, esc(t.Label))
		for j, body := range []string{BodySmall, BodyLarge} {
			r, ok := value[t.Name][body]
			if !ok || math.IsNaN(metric(r)) {
				continue
			}
			v := metric(r)
			by := gy + j*(barHeight+barGap)
			w := int(math.Round(v / scale * barsWidth))
			fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s</title></rect>`,
				barsLeft, by, w, barHeight, bodyColors[body], esc(fmt.Sprintf("%s, %s: %s", t.Label, BodyTitle(body), format(v))))
			fmt.Fprintf(b, `<text x="%d" y="%d" font-size="10">%s</text>`+"\n", barsLeft+w+4, by+barHeight-2, esc(format(v)))
		}
	}
}

// niceScale returns an axis maximum at or above biggest made of four
// to seven steps of 1, 2 or 5 times a power of ten.
func niceScale(biggest float64) (scale, step float64) {
	if biggest <= 0 || math.IsNaN(biggest) || math.IsInf(biggest, 0) {
		return 1, 0.25
	}
	raw := biggest / 4
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if step = m * pow; step >= raw {
			break
		}
	}
	return math.Ceil(biggest/step) * step, step
}

// tick formats an axis value: integers with grouped digits when the step
// is whole, else with as many decimals as the step needs.
func tick(v, step float64) string {
	if step >= 1 {
		return groupDigits(v)
	}
	decimals := int(math.Ceil(-math.Log10(step)))
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

// esc escapes s for SVG text and attribute values.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
