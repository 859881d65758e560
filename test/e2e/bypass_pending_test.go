package e2e_test

// Filled by their own files once merged.
var (
	bypassCaptureCases []bypassCase
)
