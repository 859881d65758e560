package rules

import (
	"fmt"
	"strconv"
	"strings"
)

// Helpers over decoded JSON objects. They never panic on unexpected shapes:
// a wrong type reads as absent, and the fact builders report a field error
// where a wrong type would change a decision.

func str(m map[string]any, key string) string {
	if m == nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}

func mapAt(m map[string]any, path ...string) map[string]any {
	cur := m
	for _, p := range path {
		if cur == nil {
			return nil
		}
		next, _ := cur[p].(map[string]any)
		cur = next
	}
	return cur
}

func listAt(m map[string]any, path ...string) []any {
	if len(path) == 0 || m == nil {
		return nil
	}
	parent := mapAt(m, path[:len(path)-1]...)
	if parent == nil {
		return nil
	}
	l, _ := parent[path[len(path)-1]].([]any)
	return l
}

func boolAt(m map[string]any, key string) bool {
	if m == nil {
		return false
	}
	b, _ := m[key].(bool)
	return b
}

// intAt returns an integer field; ok is false when it is absent or not a whole number.
func intAt(m map[string]any, key string) (int64, bool) {
	if m == nil {
		return 0, false
	}
	return intValue(m[key])
}

// intValue returns an integer value; ok is false when it is not a whole number.
func intValue(v any) (int64, bool) {
	switch v := v.(type) {
	case float64:
		if v != float64(int64(v)) {
			return 0, false
		}
		return int64(v), true
	case int64:
		return v, true
	case int:
		return int64(v), true
	}
	return 0, false
}

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, val := range m {
		if s, ok := val.(string); ok {
			out[k] = s
		}
	}
	return out
}

func apiGroup(apiVersion string) string {
	if i := strings.Index(apiVersion, "/"); i >= 0 {
		return apiVersion[:i]
	}
	return ""
}

// checkType reports a field error when a present field has the wrong JSON type.
func checkType(m map[string]any, path, key string, want string) error {
	if v, bad := wrongType(m, key, want); bad {
		return typeError(path, key, want, v)
	}
	return nil
}

// wrongType reports whether a present field has the wrong JSON type, and its
// value. It lets a caller build the field's path only for an error.
func wrongType(m map[string]any, key string, want string) (any, bool) {
	if m == nil {
		return nil, false
	}
	v, ok := m[key]
	if !ok || v == nil {
		return nil, false
	}
	okType := false
	switch want {
	case "object":
		_, okType = v.(map[string]any)
	case "array":
		_, okType = v.([]any)
	case "string":
		_, okType = v.(string)
	case "boolean":
		_, okType = v.(bool)
	case "integer":
		_, okType = intValue(v)
	case "integer or string":
		if _, okType = v.(string); !okType {
			_, okType = intValue(v)
		}
	}
	return v, !okType
}

// typeError is checkType's error for the value v of path.key.
func typeError(path, key, want string, v any) error {
	return fmt.Errorf("%s%s: expected %s, got %s", prefixPath(path), key, want, jsonType(v))
}

func prefixPath(p string) string {
	if p == "" {
		return ""
	}
	return p + "."
}

func jsonType(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64, int64, int:
		return "number"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func quote(s string) string { return strconv.Quote(s) }

func joinPath(parts []string) string { return strings.Join(parts, ".") }

// JSONNumbers converts, in place, the integers of an object that did not come
// from a JSON decoder (the unstructured converter's int64) into float64, so
// it looks like decoded JSON to the rules, which compare JSON numbers.
func JSONNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = JSONNumbers(x)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = JSONNumbers(x)
		}
		return t
	case int64:
		return float64(t)
	case int32:
		return float64(t)
	case int:
		return float64(t)
	}
	return v
}
