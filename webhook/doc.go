// Package webhook decides Kubernetes admission requests with meshguard's rules.
//
// A request flows AdmissionReview -> rules.Request (object, old object,
// operation, user, dry-run) -> findings (rules.Evaluator) -> an action per
// finding -> AdmissionResponse:
//
//   - deny: the request is refused with a Forbidden status listing every denied
//     finding (code, rule, the offending items, the fix) on one line;
//   - warn: the finding is returned in AdmissionResponse.warnings, which kubectl
//     prints as "Warning: ...";
//   - audit: the finding is recorded as an audit annotation and a metric only;
//   - exempt: an admin exemption covers it; it is recorded like audit.
//
// The default action follows severity (Critical and High deny, Medium warns,
// Low and Info audit). The admin Policy (a file, usually a ConfigMap) may set a
// global mode (enforce, warn, audit), allow per-namespace modes and per-object
// exemption annotations, and list exemptions with a reason and an expiry. None
// of these can be granted by the objects themselves unless the Policy says so,
// and changes to meshguard's own labels are judged by the catalog like any
// other finding.
//
// On UPDATE, a finding already present in the old object with the same
// message does not block the request (scale, image bump) unless its rule is
// Critical. A request that cannot be evaluated gets an error response, never
// an allow; so does a request whose rules need context that cannot be read
// now (contexterr.go), instead of a decision on an empty context.
package webhook
