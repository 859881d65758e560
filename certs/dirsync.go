package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// errReadOnly reports a certificate directory that cannot be written: a
// Secret volume, which the kubelet keeps current.
var errReadOnly = errors.New("certificate directory is read-only")

// writeFiles writes the files whose content differs, each atomically (a
// temporary file renamed over the old one, so certwatcher never reads half a
// file). The key is written before the certificate; until both are written
// certwatcher keeps serving the previous, still valid, pair.
func writeFiles(dir string, files []namedData) error {
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, f.data) {
			continue
		}
		if err := writeAtomic(p, f.data, f.mode); err != nil {
			if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
				return fmt.Errorf("%w: %w", errReadOnly, err)
			}
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

type namedData struct {
	name string
	data []byte
	mode os.FileMode
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(name)
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	return nil
}

// filesHold reports whether the directory holds exactly this certificate and key.
func filesHold(f Files, cert, key []byte) bool {
	c, err := os.ReadFile(f.certPath())
	if err != nil || !bytes.Equal(c, cert) {
		return false
	}
	k, err := os.ReadFile(f.keyPath())
	return err == nil && bytes.Equal(k, key)
}

// loadPair loads the key pair from the directory and returns the leaf
// certificate, checking that it is valid now.
func loadPair(f Files, now time.Time) (*x509.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(f.certPath(), f.keyPath())
	if err != nil {
		return nil, fmt.Errorf("load %s and %s: %w", f.certPath(), f.keyPath(), err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", f.certPath(), err)
	}
	return leaf, validAt(f, leaf, now)
}

// servedCertValid is the /readyz check once serving, in every mode: the
// certificate file exists and is valid now, neither expired nor not valid
// yet (the key is not read: a renewal writes it first, and certwatcher keeps
// the previous pair until both match).
func servedCertValid(f Files, now time.Time) error {
	leaf, err := readLeaf(f)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	if err := validAt(f, leaf, now); err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	return nil
}

// parsePair checks that a certificate and key from a Secret form a pair and
// returns the leaf certificate.
func parsePair(cert, key []byte) (*x509.Certificate, error) {
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(pair.Certificate[0])
}

// isPEMCertificate reports whether data holds at least one PEM certificate.
func isPEMCertificate(data []byte) bool {
	b, _ := pem.Decode(data)
	return b != nil && b.Type == "CERTIFICATE"
}
