// Package certs provides the serving certificate of meshguard's webhook
// server. The webhook server always serves HTTPS from files in a directory
// (--cert-dir), read by controller-runtime's certwatcher, so a renewed
// certificate is picked up without a restart. A Source decides where those
// files come from and when they may be served; one setting (Options.Mode,
// --cert-mode) chooses the implementation:
//
//   - self-signed (the default, needs nothing else in the cluster):
//     open-policy-agent/cert-controller's rotator keeps a CA and a serving
//     certificate for <service>.<namespace>.svc in a Secret, renews them well
//     before they expire, and injects the CA into meshguard's own webhook
//     configurations, which it updates by name. The Secret's certificate, key
//     and CA are written into the certificate directory whenever the Secret
//     changes (when the directory is a read-only Secret volume, the kubelet
//     keeps it current instead).
//   - cert-manager: the chart renders an Issuer and a Certificate and
//     cert-manager injects the CA (cert-manager.io/inject-ca-from); the binary
//     reads the Certificate's Ready condition through cert-manager's API types
//     and serves the mounted Secret.
//   - files: serve whatever the directory holds (local runs and tests).
//
// In every mode the webhook server starts only once a certificate is loaded
// (ServeWhenReady), and until then /readyz fails with the reason at
// /readyz/certificate and in the logs. Once serving, /readyz fails in every
// mode while the certificate file has expired or is not valid yet, and
// RegisterMetrics exports its expiry and validity. There is no insecure
// fallback: without a certificate nothing is served.
package certs
