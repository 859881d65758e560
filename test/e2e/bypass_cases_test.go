package e2e_test

// bypassCase is one way a tenant tries to get a weakened mesh past meshguard.
// TestBypass runs every case in a namespace of its own, created by the admin
// with NSLabels, as the tenant (a namespace owner impersonated with
// `kubectl --as`, not a meshguard admin) through the real API server.
//
// In Setup, Manifest and Args the token {{ns}} stands for the case's
// namespace and {{ns2}} for a second namespace created alike (for cases that
// need another namespace).
type bypassCase struct {
	// Name says what the tenant tries, as a sentence.
	Name string
	// NSLabels are the labels of the case's namespace. Nil means a namespace
	// enrolled with istio-injection=enabled.
	NSLabels map[string]string
	// Exempt places the case in a namespace where the suite's policy allows
	// object exemptions and an admin exemption for MESH0151
	// applies (bp-exempt-N).
	Exempt bool
	// Setup is YAML the admin applies before the attempt (admitted: the
	// admin is a meshguard admin only for meshguard's own labels, so Setup
	// holds objects without findings, or uses the case's namespace mode).
	Setup string
	// Prepare are kubectl commands the admin runs after Setup (for example
	// deleting an object that holds a finalizer).
	Prepare [][]string
	// Manifest is sent on kubectl's standard input.
	Manifest string
	// Args are kubectl's arguments; the default is "apply -f -".
	Args []string
	// Admin runs the attempt as the cluster admin instead of the tenant
	// (an attempt that only an admin can make, such as a namespace status
	// patch, is still judged).
	Admin bool
	// Code is the finding the denial must name.
	Code string
	// Fix is text of the fix (the rule's remediation) the denial must quote.
	Fix string
	// Open marks a bypass found and not closed yet, saying why it gets
	// through: the case is skipped (and says so) until a fix removes Open.
	Open string
	// Contains are further texts the denial must contain (the offending
	// items quoted in the message).
	Contains []string
}
