package kserve

// maxNesting is encoding/json's nesting limit, which validJSON keeps so
// that the messages of encoding/json (which words validJSON's refusals)
// apply.
const maxNesting = 10000

// validJSON reports whether b is one JSON value with optional whitespace
// around it, exactly as json.Valid does (FuzzDecodeJSONInfer checks that
// they agree), without its per-byte state machine: json.Valid was a fifth
// of the handler's CPU per request.
func validJSON(b []byte) bool {
	var buf [64]byte
	stack := buf[:0] // the open containers: '{' or '['
	p := 0
outer:
	for {
		// A value starts at p.
		p = skipWS(b, p)
		if p >= len(b) {
			return false
		}
		ok := true
		switch c := b[p]; c {
		case '{', '[':
			if len(stack) >= maxNesting {
				return false
			}
			stack = append(stack, c)
			p = skipWS(b, p+1)
			if p < len(b) && b[p] == c+2 { // '}' is '{'+2, ']' is '['+2
				p++
				stack = stack[:len(stack)-1]
				break
			}
			if c == '{' {
				if p, ok = memberName(b, p); !ok {
					return false
				}
			}
			continue outer
		case '"':
			p, ok = scanString(b, p)
		case 't':
			p, ok = literal(b, p, "true")
		case 'f':
			p, ok = literal(b, p, "false")
		case 'n':
			p, ok = literal(b, p, "null")
		default:
			p, ok = scanNumber(b, p)
		}
		if !ok {
			return false
		}
		// After a value: a comma, a closing bracket, or the end.
		for {
			p = skipWS(b, p)
			if len(stack) == 0 {
				return p == len(b)
			}
			if p >= len(b) {
				return false
			}
			top := stack[len(stack)-1]
			switch b[p] {
			case ',':
				p++
				if top == '{' {
					if p, ok = memberName(b, skipWS(b, p)); !ok {
						return false
					}
				}
				continue outer
			case top + 2:
				p++
				stack = stack[:len(stack)-1]
			default:
				return false
			}
		}
	}
}

func skipWS(b []byte, p int) int {
	for p < len(b) {
		switch b[p] {
		case ' ', '\t', '\n', '\r':
			p++
		default:
			return p
		}
	}
	return p
}

// memberName scans `"name" :` at p and returns the position after the colon.
func memberName(b []byte, p int) (int, bool) {
	if p >= len(b) || b[p] != '"' {
		return p, false
	}
	p, ok := scanString(b, p)
	if !ok {
		return p, false
	}
	p = skipWS(b, p)
	if p >= len(b) || b[p] != ':' {
		return p, false
	}
	return p + 1, true
}

// scanString scans the string literal at p (b[p] is '"').
func scanString(b []byte, p int) (int, bool) {
	for p++; p < len(b); {
		c := b[p]
		switch {
		case c == '"':
			return p + 1, true
		case c < 0x20:
			return p, false
		case c == '\\':
			if p+1 >= len(b) {
				return p, false
			}
			switch b[p+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p += 2
			case 'u':
				if p+5 >= len(b) {
					return p, false
				}
				for _, h := range b[p+2 : p+6] {
					if !isHex(h) {
						return p, false
					}
				}
				p += 6
			default:
				return p, false
			}
		default:
			p++
		}
	}
	return p, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func literal(b []byte, p int, lit string) (int, bool) {
	if len(b)-p < len(lit) || string(b[p:p+len(lit)]) != lit {
		return p, false
	}
	return p + len(lit), true
}

// scanNumber scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at p.
func scanNumber(b []byte, p int) (int, bool) {
	if p < len(b) && b[p] == '-' {
		p++
	}
	if p >= len(b) || !isDigit(b[p]) {
		return p, false
	}
	if b[p] == '0' {
		p++
	} else {
		for p < len(b) && isDigit(b[p]) {
			p++
		}
	}
	if p < len(b) && b[p] == '.' {
		p++
		if p >= len(b) || !isDigit(b[p]) {
			return p, false
		}
		for p < len(b) && isDigit(b[p]) {
			p++
		}
	}
	if p < len(b) && (b[p] == 'e' || b[p] == 'E') {
		p++
		if p < len(b) && (b[p] == '+' || b[p] == '-') {
			p++
		}
		if p >= len(b) || !isDigit(b[p]) {
			return p, false
		}
		for p < len(b) && isDigit(b[p]) {
			p++
		}
	}
	return p, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
