package webhook

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonReader decodes JSON from memory in one pass into the values the rules
// use (map[string]any, []any, string, float64, bool, nil): the same values,
// and the same errors for invalid JSON, out-of-range numbers and nesting, as
// encoding/json's Unmarshal into an `any`. It exists so that the webhook can
// decode an AdmissionReview and the objects in it in a single pass, without
// copying the objects into a RawExtension and decoding them again, and so that
// it can skip what no rule reads (metadata.managedFields) while still checking
// its syntax.
type jsonReader struct {
	data  []byte
	pos   int
	depth int
	// stack holds the elements of the arrays being decoded; each array is
	// copied out at its exact length when it ends.
	stack []any
	// heap estimates the bytes the decoded values hold (heapCost). When it
	// passes heapLimit, more is asked to raise heapLimit; its error stops the
	// decoding. nil more: no limit. The body's bytes bound ordinary JSON's
	// heap, but not deeply nested or empty-object-dense JSON, where one byte
	// of body decodes to 40 bytes of maps; the limit bounds that too.
	heap, heapLimit int64
	more            func(heap int64) error
}

// Estimated heap of decoded values (Go 1.26 maps and interfaces on amd64,
// checked against runtime.MemStats: 21x the body for an array of {}, 44x for
// {"a":{}}, 5.5x for a Deployment with 17,500 containers).
const (
	heapEmptyMap   = 48  // a map header
	heapMapGroup   = 272 // the first group of eight slots, allocated by the first entry
	heapMapEntry   = 48  // each entry past the first group
	heapSlot       = 16  // an interface in a map or slice
	heapString     = 16  // a string header boxed in an interface, plus its bytes
	heapNumber     = 8   // a boxed float64
	heapSliceFixed = 24  // a slice header boxed in an interface
)

// grew adds n to the heap estimate and asks for more when it passes the limit.
func (d *jsonReader) grew(n int64) error {
	d.heap += n
	if d.more != nil && d.heap > d.heapLimit {
		return d.more(d.heap)
	}
	return nil
}

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

// jsonError is a syntax error at a byte offset.
type jsonError struct {
	msg    string
	offset int
}

func (e *jsonError) Error() string {
	return fmt.Sprintf("invalid JSON at offset %d: %s", e.offset, e.msg)
}

func (d *jsonReader) errorf(format string, args ...any) error {
	return &jsonError{msg: fmt.Sprintf(format, args...), offset: d.pos}
}

func (d *jsonReader) unexpected(what string) error {
	if d.pos >= len(d.data) {
		return &jsonError{msg: "unexpected end of JSON input " + what, offset: d.pos}
	}
	return &jsonError{msg: fmt.Sprintf("invalid character %s %s", quoteChar(d.data[d.pos]), what), offset: d.pos}
}

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

func (d *jsonReader) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end of the input.
func (d *jsonReader) peek() byte {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return 0
	}
	return d.data[d.pos]
}

// end checks that only white space follows the top-level value.
func (d *jsonReader) end() error {
	if d.skipSpace(); d.pos < len(d.data) {
		return d.unexpected("after top-level value")
	}
	return nil
}

// value decodes any JSON value.
func (d *jsonReader) value() (any, error) {
	switch d.peek() {
	case '{':
		m, err := d.object(objectPlain)
		if err != nil {
			return nil, err
		}
		return m, nil
	case '[':
		return d.array()
	case '"':
		return d.str()
	case 't', 'f', 'n':
		return d.literal()
	default:
		return d.number()
	}
}

// objectKind says which members of an object are special while decoding.
type objectKind int

const (
	// objectPlain keeps every member, at any depth.
	objectPlain objectKind = iota
	// objectKubernetes is a Kubernetes object: its top-level "metadata" is
	// decoded as objectMetadata.
	objectKubernetes
	// objectMetadata is an object's metadata: "managedFields" is checked but
	// not kept. No rule reads managedFields, and they are a quarter of a
	// typical object's bytes. Nested objects keep every member.
	objectMetadata
)

// object decodes a JSON object of the given kind.
func (d *jsonReader) object(kind objectKind) (map[string]any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.pos++ // '{'
	m := map[string]any{}
	if err := d.grew(heapEmptyMap); err != nil {
		return nil, err
	}
	if d.peek() == '}' {
		d.pos++
		d.depth--
		return m, nil
	}
	entries := 0
	for {
		if d.peek() != '"' {
			return nil, d.unexpected("looking for beginning of object key string")
		}
		key, err := d.key()
		if err != nil {
			return nil, err
		}
		if d.peek() != ':' {
			return nil, d.unexpected("after object key")
		}
		d.pos++
		var v any
		switch {
		case kind == objectMetadata && key == "managedFields":
			if err := d.skip(); err != nil {
				return nil, err
			}
			// encoding/json keeps the last of duplicate members; a dropped
			// member is never kept.
			delete(m, key)
			goto next
		case kind == objectKubernetes && key == "metadata" && d.peek() == '{':
			v, err = d.object(objectMetadata)
		default:
			v, err = d.value()
		}
		if err != nil {
			return nil, err
		}
		m[key] = v
		entries++
		switch {
		case entries == 1:
			err = d.grew(heapMapGroup + heapSlot)
		case entries > 8:
			err = d.grew(heapMapEntry + heapSlot)
		default:
			err = d.grew(heapSlot)
		}
		if err != nil {
			return nil, err
		}
	next:
		switch d.peek() {
		case ',':
			d.pos++
		case '}':
			d.pos++
			d.depth--
			return m, nil
		default:
			return nil, d.unexpected("after object key:value pair")
		}
	}
}

// array decodes a JSON array.
func (d *jsonReader) array() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.pos++ // '['
	base := len(d.stack)
	if d.peek() == ']' {
		d.pos++
		d.depth--
		return []any{}, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			d.stack = d.stack[:base]
			return nil, err
		}
		d.stack = append(d.stack, v)
		switch d.peek() {
		case ',':
			d.pos++
		case ']':
			d.pos++
			d.depth--
			if err := d.grew(heapSliceFixed + heapSlot*int64(len(d.stack)-base)); err != nil {
				d.stack = d.stack[:base]
				return nil, err
			}
			out := make([]any, len(d.stack)-base)
			copy(out, d.stack[base:])
			clear(d.stack[base:])
			d.stack = d.stack[:base]
			return out, nil
		default:
			d.stack = d.stack[:base]
			return nil, d.unexpected("after array element")
		}
	}
}

func (d *jsonReader) enter() error {
	d.depth++
	if d.depth > maxJSONDepth {
		return d.errorf("exceeded max depth")
	}
	return nil
}

// literal decodes true, false or null.
func (d *jsonReader) literal() (any, error) {
	rest := d.data[d.pos:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		d.pos += 4
		return true, nil
	case len(rest) >= 5 && string(rest[:5]) == "false":
		d.pos += 5
		return false, nil
	case len(rest) >= 4 && string(rest[:4]) == "null":
		d.pos += 4
		return nil, nil
	}
	// Point at the first byte that does not match.
	for _, lit := range []string{"true", "false", "null"} {
		if rest[0] == lit[0] {
			for i := 1; i < len(lit); i++ {
				if i >= len(rest) || rest[i] != lit[i] {
					d.pos += i
					return nil, d.unexpected("in literal " + lit)
				}
			}
		}
	}
	return nil, d.unexpected("looking for beginning of value")
}

// smallInts are the boxed values of the integers 0 to 1023, which are most
// numbers in Kubernetes objects (ports, replicas, ids): boxing a float64 in an
// `any` allocates otherwise.
var smallInts = func() []any {
	s := make([]any, 1024)
	for i := range s {
		s[i] = float64(i)
	}
	return s
}()

// number decodes a JSON number to float64.
func (d *jsonReader) number() (any, error) {
	start := d.pos
	data := d.data
	i := d.pos
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		d.pos = i
		if i == start {
			return nil, d.unexpected("looking for beginning of value")
		}
		return nil, d.unexpected("in numeric literal")
	}
	integer := true
	if i < len(data) && data[i] == '.' {
		integer = false
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.pos = i
			return nil, d.unexpected("after decimal point in numeric literal")
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		integer = false
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.pos = i
			return nil, d.unexpected("in exponent of numeric literal")
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	d.pos = i
	lit := data[start:i]
	if integer && len(lit) <= 15 {
		// Exact in a float64: no parsing needed.
		var n int64
		neg := lit[0] == '-'
		digits := lit
		if neg {
			digits = lit[1:]
		}
		for _, c := range digits {
			n = n*10 + int64(c-'0')
		}
		if !neg && n < int64(len(smallInts)) {
			return smallInts[n], nil
		}
		if neg {
			if n == 0 {
				return negZero, nil
			}
			n = -n
		}
		return float64(n), nil
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return nil, &jsonError{msg: "cannot unmarshal number " + string(lit) + " into a float64", offset: start}
	}
	return f, nil
}

// negZero is -0, which encoding/json decodes from "-0".
var negZero any = func() float64 { z := 0.0; return -z }()

// key decodes an object key, returning a shared string for common keys.
func (d *jsonReader) key() (string, error) {
	raw, escaped, err := d.scanString()
	if err != nil {
		return "", err
	}
	if !escaped {
		if s, ok := commonStrings[string(raw)]; ok {
			return s, nil
		}
		return string(raw), nil
	}
	return unescape(raw), nil
}

// str decodes a string value.
func (d *jsonReader) str() (any, error) {
	raw, escaped, err := d.scanString()
	if err != nil {
		return nil, err
	}
	if escaped {
		return unescape(raw), nil
	}
	if s, ok := commonStrings[string(raw)]; ok {
		return s, nil
	}
	return string(raw), nil
}

// scanString checks the string at pos and returns its contents between the
// quotes; escaped is true when they need unescape (escapes or invalid UTF-8).
func (d *jsonReader) scanString() (raw []byte, escaped bool, err error) {
	data := d.data
	start := d.pos + 1
	i := start
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return data[start:i], escaped, nil
		case c == '\\':
			escaped = true
			i++
			if i >= len(data) {
				d.pos = i
				return nil, false, d.unexpected("in string escape code")
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for k := 0; k < 4; k++ {
					if i >= len(data) || !isHex(data[i]) {
						d.pos = i
						return nil, false, d.unexpected("in \\u hexadecimal character escape")
					}
					i++
				}
			default:
				d.pos = i
				return nil, false, d.unexpected("in string escape code")
			}
		case c < 0x20:
			d.pos = i
			return nil, false, d.unexpected("in string literal")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				escaped = true // replaced by U+FFFD, as encoding/json does
			}
			i += size
		}
	}
	d.pos = i
	return nil, false, d.unexpected("in string literal")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexValue(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// unescape decodes a string already checked by scanString: escapes, surrogate
// pairs (an unpaired surrogate becomes U+FFFD) and invalid UTF-8 (each bad
// byte becomes U+FFFD), as encoding/json does.
func unescape(raw []byte) string {
	out := make([]byte, 0, len(raw)+8)
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			e := raw[i+1]
			i += 2
			switch e {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hexValue(raw[i : i+4])
				i += 4
				if utf16.IsSurrogate(r) {
					if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' && isHex(raw[i+2]) && isHex(raw[i+3]) && isHex(raw[i+4]) && isHex(raw[i+5]) {
						if dec := utf16.DecodeRune(r, hexValue(raw[i+2:i+6])); dec != utf8.RuneError {
							i += 6
							out = utf8.AppendRune(out, dec)
							break
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
			default: // '"', '\\', '/'
				out = append(out, e)
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			i += size
			out = utf8.AppendRune(out, r)
		}
	}
	return string(out)
}

// skip checks the syntax of the next value without keeping it.
func (d *jsonReader) skip() error {
	switch d.peek() {
	case '{':
		if err := d.enter(); err != nil {
			return err
		}
		d.pos++
		if d.peek() == '}' {
			d.pos++
			d.depth--
			return nil
		}
		for {
			if d.peek() != '"' {
				return d.unexpected("looking for beginning of object key string")
			}
			if _, _, err := d.scanString(); err != nil {
				return err
			}
			if d.peek() != ':' {
				return d.unexpected("after object key")
			}
			d.pos++
			if err := d.skip(); err != nil {
				return err
			}
			switch d.peek() {
			case ',':
				d.pos++
			case '}':
				d.pos++
				d.depth--
				return nil
			default:
				return d.unexpected("after object key:value pair")
			}
		}
	case '[':
		if err := d.enter(); err != nil {
			return err
		}
		d.pos++
		if d.peek() == ']' {
			d.pos++
			d.depth--
			return nil
		}
		for {
			if err := d.skip(); err != nil {
				return err
			}
			switch d.peek() {
			case ',':
				d.pos++
			case ']':
				d.pos++
				d.depth--
				return nil
			default:
				return d.unexpected("after array element")
			}
		}
	case '"':
		_, _, err := d.scanString()
		return err
	case 't', 'f', 'n':
		_, err := d.literal()
		return err
	default:
		// Numbers are checked as they would be decoded, out-of-range
		// included, so that skipping changes no outcome.
		_, err := d.number()
		return err
	}
}

// rawValue skips the next value and returns its bytes (a RawExtension's).
func (d *jsonReader) rawValue() ([]byte, error) {
	d.skipSpace()
	start := d.pos
	if err := d.skip(); err != nil {
		return nil, err
	}
	return d.data[start:d.pos], nil
}

// stringValue decodes a string or null (left as ""); field names the member
// in errors.
func (d *jsonReader) stringValue(field string) (string, error) {
	switch d.peek() {
	case '"':
		raw, escaped, err := d.scanString()
		if err != nil {
			return "", err
		}
		if escaped {
			return unescape(raw), nil
		}
		if s, ok := commonStrings[string(raw)]; ok {
			return s, nil
		}
		return string(raw), nil
	case 'n':
		if _, err := d.literal(); err != nil {
			return "", err
		}
		return "", nil
	}
	return "", d.typeError(field, "string")
}

// typeError reports a value of the wrong JSON type for a typed field.
func (d *jsonReader) typeError(field, want string) error {
	at := d.pos
	got := "value"
	switch d.peek() {
	case '{':
		got = "object"
	case '[':
		got = "array"
	case '"':
		got = "string"
	case 't', 'f':
		got = "bool"
	case 'n':
		got = "null"
	default:
		got = "number"
	}
	if err := d.skip(); err != nil {
		return err
	}
	return &jsonError{msg: fmt.Sprintf("cannot unmarshal %s into %s of type %s", got, field, want), offset: at}
}

// members calls f for each member of the object at pos; null is an empty
// object. f must consume the member's value.
func (d *jsonReader) members(field string, f func(key string) error) error {
	switch d.peek() {
	case 'n':
		_, err := d.literal()
		return err
	case '{':
	default:
		return d.typeError(field, "object")
	}
	if err := d.enter(); err != nil {
		return err
	}
	d.pos++
	if d.peek() == '}' {
		d.pos++
		d.depth--
		return nil
	}
	for {
		if d.peek() != '"' {
			return d.unexpected("looking for beginning of object key string")
		}
		key, err := d.key()
		if err != nil {
			return err
		}
		if d.peek() != ':' {
			return d.unexpected("after object key")
		}
		d.pos++
		if err := f(key); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.pos++
		case '}':
			d.pos++
			d.depth--
			return nil
		default:
			return d.unexpected("after object key:value pair")
		}
	}
}

// errNotObject is returned by decodeObjectJSON for JSON that is not an object.
var errNotObject = errors.New("not a JSON object")

// commonStrings are keys and values that recur in every Kubernetes object;
// decoding returns these shared strings instead of allocating copies.
var commonStrings = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		"apiVersion", "kind", "metadata", "spec", "status", "name", "namespace", "labels", "annotations",
		"uid", "resourceVersion", "generation", "creationTimestamp", "generateName", "ownerReferences",
		"controller", "blockOwnerDeletion", "finalizers", "template", "selector", "matchLabels",
		"matchExpressions", "key", "operator", "values", "value", "replicas", "strategy", "type",
		"containers", "initContainers", "ephemeralContainers", "image", "imagePullPolicy", "args", "command",
		"env", "envFrom", "valueFrom", "fieldRef", "fieldPath", "ports", "containerPort", "protocol",
		"port", "targetPort", "resources", "limits", "requests", "cpu", "memory", "volumeMounts",
		"mountPath", "readOnly", "subPath", "volumes", "emptyDir", "medium", "sizeLimit", "secret",
		"secretName", "configMap", "projected", "sources", "serviceAccountToken", "path", "expirationSeconds",
		"audience", "downwardAPI", "items", "securityContext", "capabilities", "add", "drop",
		"privileged", "runAsUser", "runAsGroup", "runAsNonRoot", "allowPrivilegeEscalation",
		"readOnlyRootFilesystem", "fsGroup", "readinessProbe", "livenessProbe", "startupProbe", "httpGet",
		"tcpSocket", "initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold",
		"successThreshold", "terminationMessagePath", "terminationMessagePolicy", "restartPolicy",
		"dnsPolicy", "schedulerName", "serviceAccountName", "serviceAccount", "nodeName", "hostNetwork",
		"hostPID", "hostIPC", "tolerations", "effect", "tolerationSeconds", "priority",
		"enableServiceLinks", "preemptionPolicy", "terminationGracePeriodSeconds", "mtls", "mode",
		"portLevelMtls", "workloadSelector", "rules", "from", "to", "when", "action", "source", "operation",
		"principals", "namespaces", "methods", "paths", "hosts", "trafficPolicy", "tls", "host",
		"true", "false", "TCP", "UDP", "Always", "IfNotPresent", "Never", "File", "ClusterFirst",
		"default-scheduler", "NoExecute", "Exists", "Equal", "Memory", "v1", "apps/v1", "Pod", "Deployment",
		"ReplicaSet", "StatefulSet", "DaemonSet", "Service", "Namespace", "security.istio.io/v1",
		"networking.istio.io/v1", "STRICT", "PERMISSIVE", "DISABLE", "UNSET", "ISTIO_MUTUAL", "NET_ADMIN",
		"NET_RAW", "ALL", "istio-proxy", "istio-init", "app", "version", "istio-envoy", "istio-data",
		"istio-token", "istiod-ca-cert", "kube-api-access", "kube-root-ca.crt", "ca.crt", "token",
		"/var/run/secrets/kubernetes.io/serviceaccount", "/dev/termination-log", "istio.io/rev",
		"sidecar.istio.io/inject", "sidecar.istio.io/status", "istio-injection", "enabled",
		"kubectl.kubernetes.io/last-applied-configuration", "security.istio.io/tlsMode",
		"service.istio.io/canonical-name", "service.istio.io/canonical-revision", "pod-template-hash",
		"topology.istio.io/network", "prometheus.io/path", "prometheus.io/port", "prometheus.io/scrape",
		"/stats/prometheus", "15020", "15090", "15021", "15001", "15006", "15000",
	} {
		m[s] = s
	}
	return m
}()
