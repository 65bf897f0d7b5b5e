package modelconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ToJSON renders cfg the way Triton serves GET /v2/models/{m}/config:
// proto field names, every scalar field printed even when it holds its
// default, empty lists and maps printed, unset sub-messages left out, enums
// as their names, and 64-bit integers as JSON numbers (proto3's JSON mapping
// would quote them). Fields appear in declaration order.
func ToJSON(cfg *ModelConfig) ([]byte, error) {
	var b bytes.Buffer
	if err := writeMessage(&b, cfg.ProtoReflect()); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// FromJSON parses a model config in proto3 JSON form (the "config"
// parameter of a repository load request). Unknown fields are errors.
func FromJSON(data []byte) (*ModelConfig, error) {
	cfg := &ModelConfig{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(data, cfg); err != nil {
		return nil, fmt.Errorf("invalid model config JSON: %w", err)
	}
	return cfg, nil
}

func writeMessage(b *bytes.Buffer, m protoreflect.Message) error {
	b.WriteByte('{')
	fields := m.Descriptor().Fields()
	first := true
	for i := range fields.Len() {
		fd := fields.Get(i)
		// Unset sub-messages and unset oneof members are left out; scalar
		// fields, lists and maps are always printed.
		if !m.Has(fd) && (fd.ContainingOneof() != nil || (fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap())) {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeString(b, string(fd.Name()))
		b.WriteByte(':')
		var err error
		switch v := m.Get(fd); {
		case fd.IsList():
			err = writeList(b, fd, v.List())
		case fd.IsMap():
			err = writeMap(b, fd, v.Map())
		default:
			err = writeValue(b, fd, v)
		}
		if err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

func writeList(b *bytes.Buffer, fd protoreflect.FieldDescriptor, l protoreflect.List) error {
	b.WriteByte('[')
	for i := range l.Len() {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := writeValue(b, fd, l.Get(i)); err != nil {
			return err
		}
	}
	b.WriteByte(']')
	return nil
}

func writeMap(b *bytes.Buffer, fd protoreflect.FieldDescriptor, m protoreflect.Map) error {
	type entry struct {
		key string
		val protoreflect.Value
	}
	var entries []entry
	m.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		entries = append(entries, entry{k.String(), v})
		return true
	})
	slices.SortFunc(entries, func(a, b entry) int {
		// Numeric keys sort numerically, string keys lexically.
		if len(a.key) != len(b.key) && fd.MapKey().Kind() != protoreflect.StringKind {
			return len(a.key) - len(b.key)
		}
		return bytes.Compare([]byte(a.key), []byte(b.key))
	})
	b.WriteByte('{')
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(b, e.key)
		b.WriteByte(':')
		if err := writeValue(b, fd.MapValue(), e.val); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

func writeValue(b *bytes.Buffer, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return writeMessage(b, v.Message())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			writeString(b, string(ev.Name()))
		} else {
			b.WriteString(strconv.FormatInt(int64(v.Enum()), 10))
		}
	case protoreflect.StringKind:
		writeString(b, v.String())
	case protoreflect.BoolKind:
		b.WriteString(strconv.FormatBool(v.Bool()))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		b.WriteString(strconv.FormatUint(v.Uint(), 10))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("field %s: %v cannot be written as JSON", fd.Name(), f)
		}
		b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	default:
		return fmt.Errorf("field %s: unsupported kind %v", fd.Name(), fd.Kind())
	}
	return nil
}

func writeString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a Go string always marshals
	b.Write(enc)
}
