// Package prompt turns a visual-entailment request's text into the token
// ids OFA's encoder takes: each text is normalised with OFA's pre_caption,
// placed into the prompt template (one for a hypothesis alone, one for a
// premise and a hypothesis), tokenised with GPT-2 BPE, truncated and framed
// as [bos] + ids + [eos] — ModelScope's OfaVisualEntailmentPreprocessor,
// which the served checkpoint comes from.
//
// Input limits come first and are cheap: text that is not valid UTF-8, or
// longer than Config.MaxInputBytes, is refused before any normalisation or
// tokenisation, so a 1 MB hypothesis costs a length check. Within the limit,
// text is truncated the way ModelScope truncates it (to MaxWords words, then
// the prompt to MaxTokens BPE tokens) rather than refused.
package prompt

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// The templates of ModelScope's visual-entailment preprocessor (its
// defaults when the model configuration sets no "prompt"), as Python format
// strings.
const (
	// DefaultTemplate frames a hypothesis alone.
	DefaultTemplate = ` does the image describe " {} "?`
	// DefaultPremiseTemplate frames a premise (text1) and a hypothesis (text2).
	DefaultPremiseTemplate = ` can image and text1 " {} " imply text2 " {} "?`
)

const (
	// DefaultMaxLength is ModelScope's max_src_length default, used both as
	// the word limit of pre_caption and the token limit of the prompt.
	DefaultMaxLength = 256
	// DefaultMaxInputBytes bounds each text before any work: far above any
	// caption of DefaultMaxLength words, far below what would cost real time.
	DefaultMaxInputBytes = 16 << 10
)

// Errors returned by Build, wrapped with the field and the numbers; test
// with errors.Is. All are the client's fault (HTTP 400).
var (
	ErrInvalidUTF8 = errors.New("text is not valid UTF-8")
	ErrTooLong     = errors.New("text is too long")
	ErrEmpty       = errors.New("text is empty")
)

// Encoder is the tokenizer a Builder needs; *bpe.Tokenizer is one.
type Encoder interface {
	// AppendEncode appends the BPE ids of text (no special tokens) to dst.
	AppendEncode(dst []int32, text string) []int32
	// ID returns the id of a special token such as "<s>".
	ID(token string) (int32, bool)
}

// Config sets the templates and limits; the zero value means ModelScope's
// defaults. A model's exported metadata may override the templates.
type Config struct {
	// Template frames a hypothesis alone: a Python format string with one
	// field ("{}" or "{0}"). Empty means DefaultTemplate.
	Template string
	// PremiseTemplate frames a premise and a hypothesis, in that order
	// ("{}" twice, or "{0}" and "{1}"). Empty means DefaultPremiseTemplate.
	PremiseTemplate string
	// MaxWords is pre_caption's word limit for each text: 0 means
	// DefaultMaxLength, negative means none.
	MaxWords int
	// MaxTokens caps the prompt's BPE ids before bos and eos are added (the
	// result has at most MaxTokens+2 ids): 0 means DefaultMaxLength,
	// negative means none.
	MaxTokens int
	// MaxInputBytes refuses longer premise or hypothesis text with
	// ErrTooLong: 0 means DefaultMaxInputBytes, negative means no limit.
	MaxInputBytes int
	// Bos and Eos name the tokens framing the ids: empty means "<s>" and
	// "</s>".
	Bos, Eos string
	// AllowUnused accepts templates that leave an argument out, as Python's
	// str.format does: ModelScope formats the prompt a model's
	// configuration.json sets with the texts it has, whatever fields the
	// prompt holds (Meta sets it for such a prompt). Otherwise a template must
	// use every argument, so it cannot drop the hypothesis by mistake.
	AllowUnused bool
}

// Builder builds encoder input ids; it is safe for concurrent use when its
// Encoder is.
type Builder struct {
	enc       Encoder
	alone     template
	premise   template
	maxWords  int
	maxTokens int
	maxBytes  int
	bos, eos  int64
}

// New checks cfg and returns a Builder.
func New(enc Encoder, cfg Config) (*Builder, error) {
	if enc == nil {
		return nil, errors.New("prompt: nil Encoder")
	}
	b := &Builder{enc: enc}
	var err error
	if cfg.Template == "" {
		cfg.Template = DefaultTemplate
	}
	if b.alone, err = parseTemplate(cfg.Template, 1, cfg.AllowUnused); err != nil {
		return nil, fmt.Errorf("prompt: Template: %w", err)
	}
	if cfg.PremiseTemplate == "" {
		cfg.PremiseTemplate = DefaultPremiseTemplate
	}
	if b.premise, err = parseTemplate(cfg.PremiseTemplate, 2, cfg.AllowUnused); err != nil {
		return nil, fmt.Errorf("prompt: PremiseTemplate: %w", err)
	}
	b.maxWords = orDefault(cfg.MaxWords, DefaultMaxLength)
	b.maxTokens = orDefault(cfg.MaxTokens, DefaultMaxLength)
	b.maxBytes = orDefault(cfg.MaxInputBytes, DefaultMaxInputBytes)
	for _, s := range []struct {
		name string
		dflt string
		dst  *int64
	}{{cfg.Bos, "<s>", &b.bos}, {cfg.Eos, "</s>", &b.eos}} {
		if s.name == "" {
			s.name = s.dflt
		}
		id, ok := enc.ID(s.name)
		if !ok {
			return nil, fmt.Errorf("prompt: the tokenizer has no token %q", s.name)
		}
		*s.dst = int64(id)
	}
	return b, nil
}

func orDefault(v, dflt int) int {
	switch {
	case v == 0:
		return dflt
	case v < 0:
		return -1
	}
	return v
}

// Prompt returns the prompt text for premise and hypothesis: both
// normalised with PreCaption and placed into the premise template, or the
// hypothesis alone into the other template when premise is "". (A premise
// that normalises to "" still selects the premise template, as in
// ModelScope, where the presence of text2 decides.)
func (b *Builder) Prompt(premise, hypothesis string) (string, error) {
	if err := b.check("hypothesis", hypothesis); err != nil {
		return "", err
	}
	if err := b.check("premise", premise); err != nil {
		return "", err
	}
	h := PreCaption(hypothesis, b.maxWords)
	if h == "" {
		return "", &FieldError{Field: "hypothesis", Err: fmt.Errorf("%w after normalisation", ErrEmpty)}
	}
	if premise == "" {
		return b.alone.format(h), nil
	}
	return b.premise.format(PreCaption(premise, b.maxWords), h), nil
}

// Build returns the encoder input ids for premise and hypothesis:
// [bos] + the prompt's BPE ids (at most MaxTokens) + [eos]. premise may be
// "" (no premise). Errors wrap ErrInvalidUTF8, ErrTooLong or ErrEmpty and
// name the field and limit.
func (b *Builder) Build(premise, hypothesis string) ([]int64, error) {
	text, err := b.Prompt(premise, hypothesis)
	if err != nil {
		return nil, err
	}
	var buf [128]int32
	ids := b.enc.AppendEncode(buf[:0], text)
	if b.maxTokens >= 0 && len(ids) > b.maxTokens {
		ids = ids[:b.maxTokens]
	}
	out := make([]int64, 0, len(ids)+2)
	out = append(out, b.bos)
	for _, id := range ids {
		out = append(out, int64(id))
	}
	return append(out, b.eos), nil
}

// FieldError is a refusal of one text of a request: Field is "premise" or
// "hypothesis", Err wraps ErrInvalidUTF8, ErrTooLong or ErrEmpty.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return "prompt: " + e.Field + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *FieldError) Unwrap() error { return e.Err }

func (b *Builder) check(field, text string) error {
	if b.maxBytes >= 0 && len(text) > b.maxBytes {
		return &FieldError{Field: field, Err: fmt.Errorf("%w: %d bytes, the limit is %d bytes", ErrTooLong, len(text), b.maxBytes)}
	}
	if !utf8.ValidString(text) {
		return &FieldError{Field: field, Err: ErrInvalidUTF8}
	}
	return nil
}
