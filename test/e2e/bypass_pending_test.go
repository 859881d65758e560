package e2e_test

// Filled by their own files once merged.
var (
	bypassNetpolCases  []bypassCase
	bypassCaptureCases []bypassCase
)
