package prompt

import (
	"errors"
	"fmt"
	"strings"
)

// Meta is the prompt part of an exported model's ofa_meta.json (written by
// scripts/export_ofa.py, its keys documented in models/README.md): the two
// templates with named fields ("{premise}", "{hypothesis}"), the prompt
// override they came from (configuration.json's model.prompt, or null), and
// the lengths. It decodes with encoding/json from the whole file.
type Meta struct {
	PromptWithPremise    string  `json:"prompt_with_premise"`
	PromptWithoutPremise string  `json:"prompt_without_premise"`
	PromptOverride       *string `json:"prompt_override"`
	MaxSrcLength         int     `json:"max_src_length"`
	MaxTextLength        int     `json:"max_text_length"`
}

// Config returns the Builder configuration that reproduces ModelScope's
// preprocessor for the model (scripts/ofa/prompts.py is the Python side):
//
//   - the templates, their named fields turned positional (premise 0 and
//     hypothesis 1 in the premise template, hypothesis 0 in the other);
//   - AllowUnused when configuration.json's prompt set the templates, since
//     ModelScope's str.format then leaves out what the prompt has no field
//     for;
//   - MaxWords = max_src_length: pre_caption's word limit on each text (0: no
//     limit);
//   - MaxTokens = max_src_length, capped at max_text_length-2 so that
//     [bos] + ids + [eos] fits the module's position table (0: the cap).
//
// MaxInputBytes, Bos and Eos keep their defaults; the caller may set them.
func (m Meta) Config() (Config, error) {
	var errs []error
	if m.PromptWithPremise == "" || m.PromptWithoutPremise == "" {
		errs = append(errs, errors.New("prompt_with_premise and prompt_without_premise are required"))
	}
	if m.MaxSrcLength < 0 {
		errs = append(errs, fmt.Errorf("max_src_length must not be negative, got %d", m.MaxSrcLength))
	}
	if m.MaxTextLength < 3 {
		errs = append(errs, fmt.Errorf("max_text_length must be at least 3, got %d", m.MaxTextLength))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("prompt: metadata: %w", err)
	}
	words, tokens := m.MaxSrcLength, m.MaxSrcLength
	if words == 0 {
		words = -1
	}
	if tokens == 0 || tokens > m.MaxTextLength-2 {
		tokens = m.MaxTextLength - 2
	}
	return Config{
		Template:        positional(m.PromptWithoutPremise, "hypothesis"),
		PremiseTemplate: positional(m.PromptWithPremise, "premise", "hypothesis"),
		MaxWords:        words,
		MaxTokens:       tokens,
		AllowUnused:     m.PromptOverride != nil,
	}, nil
}

// positional rewrites the named fields of tmpl ("{premise}") as the
// positional ones parseTemplate reads ("{0}"), names mapped to indices by
// their order in names; "{{" and "}}" stay escapes. A name it does not know
// is left as it is, for parseTemplate to refuse.
func positional(tmpl string, names ...string) string {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if (c == '{' || c == '}') && i+1 < len(tmpl) && tmpl[i+1] == c {
			b.WriteString(tmpl[i : i+2])
			i++
			continue
		}
		if c == '{' {
			if end := strings.IndexByte(tmpl[i:], '}'); end > 0 {
				name := tmpl[i+1 : i+end]
				if k := indexOf(names, name); k >= 0 {
					fmt.Fprintf(&b, "{%d}", k)
					i += end
					continue
				}
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
