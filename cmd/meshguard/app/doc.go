// Package app builds the meshguard command tree: `audit`, `rules list`,
// `rules explain` and `version`.
//
// Each command is built by a constructor that takes its streams and its run
// function, so tests can check flag parsing and validation with a fake run
// function, and run the real commands in-process through Main, which returns
// the exit code instead of calling os.Exit. Flags bind to an Options struct
// (NewXOptions sets the defaults, AddFlags binds them, Validate rejects bad
// values naming the flag); nothing is kept in package-level state except
// Version, which the linker sets.
package app
