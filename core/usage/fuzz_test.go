package usage

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzPicker checks the incremental picker against encoding/json: for any
// valid JSON object, split anywhere, the kept "model" and "usage" are the
// bytes encoding/json finds. Invalid input must never panic.
func FuzzPicker(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		b, _ := os.ReadFile(name)
		f.Add(b, uint16(len(b)/2))
	}
	f.Add([]byte(`{"model":"m","usage":{"a":[1,{"b":"}"}]},"x":"\"{"}`), uint16(9))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		cut := int(split) % (len(data) + 1)
		var got [numSlots][]byte
		records := 0
		p := newPicker(func(p *picker) {
			records++
			for s := range got {
				got[s] = append([]byte(nil), p.value(slot(s))...)
			}
		})
		p.feed(data[:cut])
		p.feed(data[cut:])
		if !json.Valid(data) || bytes.IndexByte(data, '\\') >= 0 {
			return // escaped keys are not read by the picker, by design
		}
		var doc map[string]json.RawMessage
		if json.Unmarshal(data, &doc) != nil {
			return // not an object
		}
		if records != 1 {
			t.Fatalf("%d records in one object", records)
		}
		for key, s := range map[string]slot{"model": slotModel, "usage": slotUsage, "type": slotType} {
			want, ok := doc[key]
			if !ok || len(want) > maxValue {
				continue
			}
			if !bytes.Equal(got[s], want) {
				t.Fatalf("%s: picker kept %q; encoding/json found %q", key, got[s], want)
			}
		}
	})
}

// FuzzSSE feeds arbitrary streams, split anywhere, through the SSE reader
// and the vendors' rules: nothing may panic, and a split never changes the
// result.
func FuzzSSE(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.sse"))
	for _, name := range files {
		b, _ := os.ReadFile(name)
		f.Add(b, uint16(len(b)/3))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		cut := int(split) % (len(data) + 1)
		run := func(parts ...[]byte) Usage {
			var a accum
			s := newSSE(newPicker(a.record), &a.u.Model)
			for _, p := range parts {
				s.feed(p)
			}
			return a.u
		}
		whole, parts := run(data), run(data[:cut], data[cut:])
		if whole != parts {
			t.Fatalf("split at %d: %+v; whole: %+v", cut, parts, whole)
		}
	})
}
