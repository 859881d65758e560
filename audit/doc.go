// Package audit runs meshguard's rules over manifests, offline: the dry-run a
// platform team puts in CI or runs over `helm template` output.
//
// Read turns files, directories (recursively) and stdin into documents, keeping
// each document's file, index and line; multi-document YAML, JSON and List
// kinds are expanded. A document that cannot be parsed becomes an InputError and
// the rest is still audited. Run builds the cluster context (namespaces, the
// root namespace's PeerAuthentication, AuthorizationPolicies) from the
// documents themselves, evaluates every object and returns a Report, which the
// writers render as text, JSON, SARIF 2.1.0 or JUnit.
package audit
