package certs

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Mode selects the certificate source.
type Mode string

// Modes.
const (
	// ModeSelfSigned keeps a self-signed CA and serving certificate in a Secret
	// with cert-controller's rotator and injects the CA into the webhook
	// configurations.
	ModeSelfSigned Mode = "self-signed"
	// ModeCertManager serves the Secret cert-manager issues for a Certificate
	// and waits for the Certificate to be Ready.
	ModeCertManager Mode = "cert-manager"
	// ModeFiles serves the files in the certificate directory as they are.
	ModeFiles Mode = "files"
)

// Modes lists the valid modes.
var Modes = []Mode{ModeSelfSigned, ModeCertManager, ModeFiles}

// EnvPodNamespace is the environment variable (set from the downward API)
// that supplies Options.Namespace when --namespace is not given.
const EnvPodNamespace = "POD_NAMESPACE"

// Options configure the certificate source. NewOptions sets the defaults;
// the defaults match the Helm chart's names.
type Options struct {
	// Mode is self-signed (default), cert-manager or files.
	Mode Mode
	// Namespace holds the Secret (self-signed) or the Certificate
	// (cert-manager) and the Service. Default: $POD_NAMESPACE (see Complete).
	// Required in self-signed and cert-manager modes.
	Namespace string
	// SecretName is the Secret that holds ca.crt, tls.crt, tls.key (and, in
	// self-signed mode, ca.key). Default "meshguard-tls".
	SecretName string
	// ServiceName is the webhook Service; the serving certificate is issued
	// for <ServiceName>.<Namespace>.svc. Default "meshguard".
	ServiceName string
	// ExtraDNSNames are further DNS names of the self-signed serving
	// certificate. Default: <ServiceName>.<Namespace>.svc.cluster.local.
	ExtraDNSNames []string
	// ValidatingWebhookConfiguration and MutatingWebhookConfiguration are
	// meshguard's own webhook configurations, which self-signed mode injects
	// the CA into (by name; empty skips one). Default "meshguard" for both.
	ValidatingWebhookConfiguration, MutatingWebhookConfiguration string
	// CAValidity is how long a self-signed CA is valid. Default 10 years.
	CAValidity time.Duration
	// CertValidity is how long a self-signed serving certificate is valid.
	// Default 1 year.
	CertValidity time.Duration
	// RenewBefore renews a certificate (CA or serving) once it would expire
	// within this duration. It must be shorter than both validities. Default 90 days.
	RenewBefore time.Duration
	// CheckInterval is how often the self-signed certificates are checked
	// for renewal (changes to the Secret are also acted on at once). It must
	// be shorter than RenewBefore. Default 1 hour.
	CheckInterval time.Duration
	// CertificateName is the cert-manager Certificate whose Ready condition
	// gates serving in cert-manager mode. Default "meshguard".
	CertificateName string
	// PollInterval is how often the Certificate is read in cert-manager mode.
	// Default 10s.
	PollInterval time.Duration
	// ControllerName names the self-signed rotator's controller. Controller
	// names are unique per process; tests that start several servers set it.
	// Default "cert-rotator". Not a flag.
	ControllerName string
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{
		Mode:                           ModeSelfSigned,
		SecretName:                     "meshguard-tls",
		ServiceName:                    "meshguard",
		ValidatingWebhookConfiguration: "meshguard",
		MutatingWebhookConfiguration:   "meshguard",
		CAValidity:                     10 * 365 * 24 * time.Hour,
		CertValidity:                   365 * 24 * time.Hour,
		RenewBefore:                    90 * 24 * time.Hour,
		CheckInterval:                  time.Hour,
		CertificateName:                "meshguard",
		PollInterval:                   10 * time.Second,
		ControllerName:                 "cert-rotator",
	}
}

// AddFlags binds the flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	modes := make([]string, len(Modes))
	for i, m := range Modes {
		modes[i] = string(m)
	}
	fs.Var((*modeValue)(&o.Mode), "cert-mode", "where the serving certificate comes from: "+strings.Join(modes, ", ")+
		" (files serves --cert-dir as it is, for local runs)")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "meshguard's namespace, holding the certificate Secret and the Service (default: $"+EnvPodNamespace+")")
	fs.StringVar(&o.SecretName, "cert-secret", o.SecretName, "Secret holding the serving certificate (self-signed: kept by meshguard; cert-manager: issued by cert-manager)")
	fs.StringVar(&o.ServiceName, "cert-service", o.ServiceName, "webhook Service; the self-signed certificate is issued for <service>.<namespace>.svc")
	fs.StringSliceVar(&o.ExtraDNSNames, "cert-dns-names", o.ExtraDNSNames, "further DNS names of the self-signed certificate (default: <service>.<namespace>.svc.cluster.local)")
	fs.StringVar(&o.ValidatingWebhookConfiguration, "validating-webhook-configuration", o.ValidatingWebhookConfiguration, `meshguard's ValidatingWebhookConfiguration, which self-signed mode injects the CA into ("" skips it)`)
	fs.StringVar(&o.MutatingWebhookConfiguration, "mutating-webhook-configuration", o.MutatingWebhookConfiguration, `meshguard's MutatingWebhookConfiguration, which self-signed mode injects the CA into ("" skips it)`)
	fs.DurationVar(&o.CAValidity, "cert-ca-validity", o.CAValidity, "validity of the self-signed CA")
	fs.DurationVar(&o.CertValidity, "cert-validity", o.CertValidity, "validity of the self-signed serving certificate")
	fs.DurationVar(&o.RenewBefore, "cert-renew-before", o.RenewBefore, "renew a self-signed certificate once it expires within this duration")
	fs.DurationVar(&o.CheckInterval, "cert-check-interval", o.CheckInterval, "how often the self-signed certificates are checked for renewal")
	fs.StringVar(&o.CertificateName, "cert-manager-certificate", o.CertificateName, "cert-manager mode: the Certificate whose Ready condition gates serving")
	fs.DurationVar(&o.PollInterval, "cert-manager-poll-interval", o.PollInterval, "cert-manager mode: how often the Certificate's Ready condition is read")
}

// Complete fills Namespace from getenv(EnvPodNamespace) when it is empty.
func (o *Options) Complete(getenv func(string) string) {
	if o.Namespace == "" && getenv != nil {
		o.Namespace = getenv(EnvPodNamespace)
	}
}

// Validate rejects unusable options, naming the flag.
func (o *Options) Validate() error {
	switch o.Mode {
	case ModeFiles:
		return nil
	case ModeSelfSigned, ModeCertManager:
	default:
		return fmt.Errorf("--cert-mode: %q is not one of %s", o.Mode, modeList())
	}
	var errs []error
	if o.Namespace == "" {
		errs = append(errs, fmt.Errorf("--namespace: required with --cert-mode %s (or set $%s)", o.Mode, EnvPodNamespace))
	} else if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("--namespace: %q: %s", o.Namespace, strings.Join(msgs, "; ")))
	}
	if o.Mode == ModeCertManager {
		errs = append(errs, dnsSubdomain("--cert-manager-certificate", o.CertificateName, true))
		if o.PollInterval <= 0 {
			errs = append(errs, fmt.Errorf("--cert-manager-poll-interval: %s is not positive", o.PollInterval))
		}
		return errors.Join(errs...)
	}
	errs = append(errs,
		dnsSubdomain("--cert-secret", o.SecretName, true),
		dnsLabel("--cert-service", o.ServiceName),
		dnsSubdomain("--validating-webhook-configuration", o.ValidatingWebhookConfiguration, false),
		dnsSubdomain("--mutating-webhook-configuration", o.MutatingWebhookConfiguration, false),
	)
	for _, n := range o.ExtraDNSNames {
		if msgs := validation.IsDNS1123Subdomain(strings.TrimPrefix(n, "*.")); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--cert-dns-names: %q: %s", n, strings.Join(msgs, "; ")))
		}
	}
	switch {
	case o.RenewBefore <= 0:
		errs = append(errs, fmt.Errorf("--cert-renew-before: %s is not positive", o.RenewBefore))
	case o.CertValidity <= o.RenewBefore:
		errs = append(errs, fmt.Errorf("--cert-validity: %s must be longer than --cert-renew-before (%s), or the certificate is renewed continuously", o.CertValidity, o.RenewBefore))
	case o.CAValidity < o.CertValidity:
		errs = append(errs, fmt.Errorf("--cert-ca-validity: %s must not be shorter than --cert-validity (%s)", o.CAValidity, o.CertValidity))
	}
	if o.CheckInterval <= 0 || (o.RenewBefore > 0 && o.CheckInterval >= o.RenewBefore) {
		errs = append(errs, fmt.Errorf("--cert-check-interval: %s must be positive and shorter than --cert-renew-before (%s), or a renewal can be missed", o.CheckInterval, o.RenewBefore))
	}
	return errors.Join(errs...)
}

// DNSName is the self-signed serving certificate's primary DNS name.
func (o *Options) DNSName() string { return o.ServiceName + "." + o.Namespace + ".svc" }

func (o *Options) extraDNSNames() []string {
	if len(o.ExtraDNSNames) > 0 {
		return o.ExtraDNSNames
	}
	return []string{o.DNSName() + ".cluster.local"}
}

func dnsSubdomain(flag, v string, required bool) error {
	if v == "" {
		if required {
			return fmt.Errorf("%s: required", flag)
		}
		return nil
	}
	if msgs := validation.IsDNS1123Subdomain(v); len(msgs) > 0 {
		return fmt.Errorf("%s: %q: %s", flag, v, strings.Join(msgs, "; "))
	}
	return nil
}

func dnsLabel(flag, v string) error {
	if v == "" {
		return fmt.Errorf("%s: required", flag)
	}
	if msgs := validation.IsDNS1123Label(v); len(msgs) > 0 {
		return fmt.Errorf("%s: %q: %s", flag, v, strings.Join(msgs, "; "))
	}
	return nil
}

func modeList() string {
	s := make([]string, len(Modes))
	for i, m := range Modes {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

// modeValue is a pflag.Value that accepts only the known modes.
type modeValue Mode

func (m *modeValue) String() string { return string(*m) }
func (m *modeValue) Type() string   { return "mode" }
func (m *modeValue) Set(s string) error {
	for _, v := range Modes {
		if Mode(s) == v {
			*m = modeValue(v)
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", s, modeList())
}
