package framework

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// CertManagerModule is the module whose deploy/crds directory holds
// cert-manager's CRDs (Certificate, Issuer, ...), at the version the
// repository's go.mod pins for cert-manager's API types.
const CertManagerModule = "github.com/cert-manager/cert-manager"

// CertManagerCRDDir returns the deploy/crds directory of the cert-manager
// module pinned by the repository's go.mod, downloading the module into the
// module cache (with checksum verification) if it is not there yet.
func CertManagerCRDDir(root string) (string, error) {
	dir, err := moduleDir(root, CertManagerModule)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "deploy", "crds")
	if _, err := os.Stat(filepath.Join(p, "cert-manager.io_certificates.yaml")); err != nil {
		return "", fmt.Errorf("cert-manager CRDs: %w", err)
	}
	return p, nil
}

// InstallCertManagerCRDs installs cert-manager's CRDs into the control plane
// and waits until they are served. Installing them again updates them, so
// tests that need them call this themselves.
func (e *Env) InstallCertManagerCRDs() error {
	dir, err := CertManagerCRDDir(e.Root)
	if err != nil {
		return err
	}
	if _, err := envtest.InstallCRDs(e.Config, envtest.CRDInstallOptions{Paths: []string{dir}, ErrorIfPathMissing: true}); err != nil {
		return fmt.Errorf("install cert-manager CRDs from %s: %w", dir, err)
	}
	return nil
}
