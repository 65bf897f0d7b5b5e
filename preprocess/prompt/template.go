package prompt

import (
	"fmt"
	"strconv"
	"strings"
)

// template is a parsed Python format string with positional fields only:
// "{}" (numbered automatically), "{0}", "{1}", and the escapes "{{", "}}".
type template struct {
	parts []templatePart
}

type templatePart struct {
	literal string
	arg     int // index of the argument that follows literal, or -1
}

// parseTemplate parses src for use with nargs arguments and, unless
// allowUnused, requires each argument to be used, so a template cannot
// silently drop the hypothesis.
func parseTemplate(src string, nargs int, allowUnused bool) (template, error) {
	var t template
	var lit strings.Builder
	used := make([]bool, nargs)
	auto, manual := 0, false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '{' && i+1 < len(src) && src[i+1] == '{', c == '}' && i+1 < len(src) && src[i+1] == '}':
			lit.WriteByte(c)
			i++
		case c == '}':
			return template{}, fmt.Errorf("single '}' at byte %d of template %q", i, src)
		case c == '{':
			end := strings.IndexByte(src[i:], '}')
			if end < 0 {
				return template{}, fmt.Errorf("unclosed '{' at byte %d of template %q", i, src)
			}
			field := src[i+1 : i+end]
			var arg int
			if field == "" {
				if manual {
					return template{}, fmt.Errorf("template %q mixes {} with numbered fields", src)
				}
				arg = auto
				auto++
			} else {
				n, err := strconv.Atoi(field)
				if err != nil || n < 0 || field[0] == '+' {
					return template{}, fmt.Errorf("template %q: field {%s} is not supported (only {} or {N})", src, field)
				}
				if auto > 0 {
					return template{}, fmt.Errorf("template %q mixes {} with numbered fields", src)
				}
				manual = true
				arg = n
			}
			if arg >= nargs {
				return template{}, fmt.Errorf("template %q uses argument %d of %d", src, arg, nargs)
			}
			used[arg] = true
			t.parts = append(t.parts, templatePart{literal: lit.String(), arg: arg})
			lit.Reset()
			i += end
		default:
			lit.WriteByte(c)
		}
	}
	for k, u := range used {
		if !u && !allowUnused {
			return template{}, fmt.Errorf("template %q does not use argument %d of %d", src, k, nargs)
		}
	}
	t.parts = append(t.parts, templatePart{literal: lit.String(), arg: -1})
	return t, nil
}

// format fills the template with args, as Python's str.format would.
func (t template) format(args ...string) string {
	n := 0
	for _, p := range t.parts {
		n += len(p.literal)
		if p.arg >= 0 {
			n += len(args[p.arg])
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range t.parts {
		b.WriteString(p.literal)
		if p.arg >= 0 {
			b.WriteString(args[p.arg])
		}
	}
	return b.String()
}
