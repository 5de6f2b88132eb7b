package benchkit

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

func TestChartIsWellFormedAndComplete(t *testing.T) {
	rows := []Row{
		{TargetInfo: TargetInfo{Name: Reference, Label: "direct <no proxy>"}, Body: BodySmall, RPS: 30000, CPUPerReq: 24.1},
		{TargetInfo: TargetInfo{Name: Reference, Label: "direct <no proxy>"}, Body: BodyLarge, RPS: 10000, CPUPerReq: 47.8},
		{TargetInfo: TargetInfo{Name: "nginx", Label: "nginx & co"}, Body: BodySmall, RPS: 11445, CPUPerReq: 32.9},
		{TargetInfo: TargetInfo{Name: "nginx", Label: "nginx & co"}, Body: BodyLarge, RPS: 4808, CPUPerReq: math.NaN()},
	}
	svg := Chart(rows, "title & more", 64)
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var texts []string
	rects := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local == "rect" {
				rects++
			}
		case xml.CharData:
			if s := strings.TrimSpace(string(tok)); s != "" {
				texts = append(texts, s)
			}
		}
	}
	all := strings.Join(texts, "|")
	for _, want := range []string{"title & more", "direct <no proxy>", "nginx & co", "30,000", "11,445", "4,808", "24.1", "47.8", "32.9", "13-byte body", "16 KiB body"} {
		if !strings.Contains(all, want) {
			t.Errorf("chart text lacks %q: %s", want, all)
		}
	}
	// Background, two legend swatches, 4 req/s bars and 3 CPU bars (NaN skipped).
	if rects != 1+2+4+3 {
		t.Errorf("chart has %d rects, want 10", rects)
	}
}

func TestNiceScale(t *testing.T) {
	for _, tc := range []struct{ in, scale, step float64 }{
		{29854, 30000, 10000},
		{187.6, 200, 50},
		{4, 4, 1},
		{0.7, 0.8, 0.2},
		{0, 1, 0.25},
		{math.NaN(), 1, 0.25},
	} {
		scale, step := niceScale(tc.in)
		if math.Abs(scale-tc.scale) > 1e-9 || math.Abs(step-tc.step) > 1e-9 {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", tc.in, scale, step, tc.scale, tc.step)
		}
	}
	if got := tick(50, 50); got != "50" {
		t.Errorf("tick(50, 50) = %q, want 50", got)
	}
	if got := tick(0.4, 0.2); got != "0.4" {
		t.Errorf("tick(0.4, 0.2) = %q, want 0.4", got)
	}
}
