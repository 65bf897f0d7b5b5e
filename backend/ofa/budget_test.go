package ofa

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

func TestReadPixelBudget(t *testing.T) {
	p := func(kv ...string) map[string]*modelconfig.ModelParameter {
		m := map[string]*modelconfig.ModelParameter{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = &modelconfig.ModelParameter{StringValue: kv[i+1]}
		}
		return m
	}
	tests := []struct {
		name        string
		params      map[string]*modelconfig.ModelParameter
		h, w, batch int
		want        pixelBudget
		bad         bool
	}{
		{"small model: the floor", p(), 64, 64, 16, pixelBudget{12_000_000, 192_000_000}, false},
		{"large model: 64 times its input", p(), 480, 480, 4, pixelBudget{64 * 480 * 480, 4 * 64 * 480 * 480}, false},
		{"no batching", p(), 64, 64, 0, pixelBudget{12_000_000, 12_000_000}, false},
		{"image from the config", p("max_image_pixels", "1000"), 64, 64, 8, pixelBudget{1000, 8000}, false},
		{"request from the config", p("max_request_pixels", "5"), 64, 64, 8, pixelBudget{12_000_000, 5}, false},
		{"no image limit", p("max_image_pixels", "-1"), 64, 64, 8, pixelBudget{-1, 0}, false},
		{"not a number", p("max_request_pixels", "lots"), 64, 64, 8, pixelBudget{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readPixelBudget(tt.params, tt.h, tt.w, tt.batch)
			if (err != nil) != tt.bad {
				t.Fatalf("err %v, want error %v", err, tt.bad)
			}
			if !tt.bad && got != tt.want {
				t.Fatalf("budget %+v, want %+v", got, tt.want)
			}
		})
	}
}

// The prefix decode gives a prefix of what the whole decode gives, whatever the text.
func FuzzDecodeBase64Prefix(f *testing.F) {
	f.Add([]byte(base64.StdEncoding.EncodeToString([]byte("\xff\xd8\xff\xe0 a jpeg header and more"))), 8)
	f.Add([]byte("aGVs\n bG8="), 3)
	f.Add([]byte("a"), 1)
	f.Fuzz(func(t *testing.T, text []byte, limit int) {
		if limit <= 0 || limit > 1<<16 {
			return
		}
		var a, b []byte
		head, err := decodeBase64Prefix(text, limit, &a)
		if err != nil {
			return
		}
		whole, err := decodeBase64(text, &b)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(whole, head) {
			t.Fatalf("prefix %q is not a prefix of %q", head, whole)
		}
	})
}
