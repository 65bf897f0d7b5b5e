package tracing

import "strings"

// MetadataCarrier carries W3C trace context (traceparent, tracestate) in gRPC metadata, whose keys are
// lower case (google.golang.org/grpc/metadata.MD converts to it directly). HTTP headers use
// propagation.HeaderCarrier.
type MetadataCarrier map[string][]string

// Get returns the first value of key.
func (m MetadataCarrier) Get(key string) string {
	if v := m[strings.ToLower(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key.
func (m MetadataCarrier) Set(key, value string) { m[strings.ToLower(key)] = []string{value} }

// Keys lists the keys present.
func (m MetadataCarrier) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
