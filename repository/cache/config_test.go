package cache

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	for _, c := range []struct {
		values []string
		size   int64
		err    string
	}{
		{nil, 0, ""},
		{[]string{"local,size=1048576"}, 1048576, ""},
		{[]string{"local,size=1", "local,size=4096"}, 4096, ""}, // the last setting wins, as tritonserver's map does
		{[]string{"size=1048576"}, 0, "no cache specified"},
		{[]string{",size=1"}, 0, "no cache specified"},
		{[]string{"local"}, 0, "no cache specified"},
		{[]string{"local,size"}, 0, "option format is '<cache name>,<setting>=<value>'"},
		{[]string{"local,=5"}, 0, "option format"},
		{[]string{"local,size="}, 0, "option format"},
		{[]string{"redis,host=localhost"}, 0, "cache 'redis' is not available (ofaserve has the 'local' cache)"},
		{[]string{"local,bytes=5"}, 0, "unknown setting 'bytes' of the local cache (it has: size)"},
		{[]string{"local,size=0"}, 0, "size must be a positive number of bytes"},
		{[]string{"local,size=-5"}, 0, "size must be a positive number of bytes"},
		{[]string{"local,size=1MB"}, 0, "size must be a positive number of bytes"},
		{[]string{"local,size=99999999999999999999"}, 0, "size must be a positive number of bytes"},
	} {
		got, err := ParseConfig(c.values)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.values, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one containing %q", c.values, err, c.err)
		case got.Size != c.size:
			t.Errorf("%q: size %d, want %d", c.values, got.Size, c.size)
		}
	}
}

// FuzzParseConfig feeds --cache-config values from the command line: any
// string parses or is refused with an error that quotes it, and an accepted
// one has a positive size.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"local,size=1048576", "local,size=0", "redis,host=x", ",=", "local,size=1=2", "local,,size=3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c, err := ParseConfig([]string{v})
		if err != nil {
			if c.Size != 0 || !strings.Contains(err.Error(), strconv.Quote(v)) {
				t.Errorf("%q: refused with size %d and error %v", v, c.Size, err)
			}
			return
		}
		if c.Size <= 0 || !strings.HasPrefix(v, "local,size=") {
			t.Errorf("%q: accepted as size %d", v, c.Size)
		}
	})
}
