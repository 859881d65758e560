package netpol

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// MaxPolicyName is the longest NetworkPolicy name (a DNS subdomain).
const MaxPolicyName = 253

// BoundedName returns s when it has at most max characters, else its first
// max-11 characters (without a trailing '-' or '.') and 10 hex digits of its
// SHA-256: two long names never share a result, and the result stays a
// valid DNS label or subdomain when s is one.
func BoundedName(s string, max int) string {
	if len(s) <= max {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return strings.TrimRight(s[:max-11], "-.") + "-" + hex.EncodeToString(sum[:])[:10]
}
