//go:build linux

package cluster

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// CertSpec describes one certificate signed by the cluster CA.
type CertSpec struct {
	// Name is the file stem: <dir>/<Name>.crt and <dir>/<Name>.key.
	Name   string
	CN     string
	Orgs   []string
	DNS    []string
	IPs    []net.IP
	Server bool
	Client bool
}

const (
	certValidity = 365 * 24 * time.Hour
	// certMinLeft is how long a certificate must still be valid to be reused.
	certMinLeft = 7 * 24 * time.Hour
)

// PKI is the set of files under one directory: ca.crt/ca.key, one pair per
// CertSpec, and the service-account key pair sa.key/sa.pub.
type PKI struct {
	Dir string
}

func (p PKI) CACert() string          { return filepath.Join(p.Dir, "ca.crt") }
func (p PKI) CAKey() string           { return filepath.Join(p.Dir, "ca.key") }
func (p PKI) Cert(name string) string { return filepath.Join(p.Dir, name+".crt") }
func (p PKI) Key(name string) string  { return filepath.Join(p.Dir, name+".key") }
func (p PKI) SAKey() string           { return filepath.Join(p.Dir, "sa.key") }
func (p PKI) SAPub() string           { return filepath.Join(p.Dir, "sa.pub") }

// Ensure creates what is missing or invalid and reuses the rest. It returns
// the names of the files it (re)generated.
func (p PKI) Ensure(specs []CertSpec, now time.Time) ([]string, error) {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return nil, err
	}
	var made []string
	ca, caKey, err := p.loadCA(now)
	if err != nil {
		ca, caKey, err = newCA(now)
		if err != nil {
			return nil, err
		}
		if err := writePair(p.CACert(), p.CAKey(), ca.Raw, caKey); err != nil {
			return nil, err
		}
		made = append(made, "ca")
	}
	for _, s := range specs {
		if certValid(p.Cert(s.Name), p.Key(s.Name), ca, s, now) == nil {
			continue
		}
		der, key, err := issue(ca, caKey, s, now)
		if err != nil {
			return nil, fmt.Errorf("issue %s: %w", s.Name, err)
		}
		if err := writePair(p.Cert(s.Name), p.Key(s.Name), der, key); err != nil {
			return nil, err
		}
		made = append(made, s.Name)
	}
	if _, err := loadKey(p.SAKey()); err != nil || !fileExists(p.SAPub()) {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			return nil, err
		}
		if err := writeKey(p.SAKey(), k); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p.SAPub(), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
			return nil, err
		}
		made = append(made, "sa")
	}
	return made, nil
}

func (p PKI) loadCA(now time.Time) (*x509.Certificate, crypto.Signer, error) {
	c, err := loadCert(p.CACert())
	if err != nil {
		return nil, nil, err
	}
	k, err := loadKey(p.CAKey())
	if err != nil {
		return nil, nil, err
	}
	if !c.IsCA || now.Add(certMinLeft).After(c.NotAfter) {
		return nil, nil, errors.New("CA expired or not a CA")
	}
	if !publicKeysEqual(c.PublicKey, k.Public()) {
		return nil, nil, errors.New("CA key does not match")
	}
	return c, k, nil
}

func newCA(now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kubectl-dev-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, key, err
}

func issue(ca *x509.Certificate, caKey crypto.Signer, s CertSpec, now time.Time) ([]byte, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: s.CN, Organization: s.Orgs},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		DNSNames:     s.DNS,
		IPAddresses:  s.IPs,
	}
	if s.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if s.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	return der, key, err
}

// certValid reports why the pair on disk cannot be reused for spec s, or nil.
func certValid(certFile, keyFile string, ca *x509.Certificate, s CertSpec, now time.Time) error {
	c, err := loadCert(certFile)
	if err != nil {
		return err
	}
	k, err := loadKey(keyFile)
	if err != nil {
		return err
	}
	if !publicKeysEqual(c.PublicKey, k.Public()) {
		return errors.New("key does not match certificate")
	}
	if err := c.CheckSignatureFrom(ca); err != nil {
		return err
	}
	if now.Add(certMinLeft).After(c.NotAfter) || now.Before(c.NotBefore) {
		return errors.New("expired or expiring")
	}
	if c.Subject.CommonName != s.CN || !slices.Equal(c.Subject.Organization, s.Orgs) {
		return errors.New("subject differs")
	}
	for _, d := range s.DNS {
		if !slices.Contains(c.DNSNames, d) {
			return fmt.Errorf("missing DNS SAN %s", d)
		}
	}
	for _, ip := range s.IPs {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return fmt.Errorf("missing IP SAN %s", ip)
		}
	}
	if s.Server && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return errors.New("not a server certificate")
	}
	if s.Client && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return errors.New("not a client certificate")
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(err)
	}
	return n
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

func loadCert(file string) (*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no certificate", file)
	}
	return x509.ParseCertificate(blk.Bytes)
}

func loadKey(file string) (crypto.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM key", file)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", file)
	}
	return s, nil
}

func writeKey(file string, k crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	return writeFileAtomic(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func writePair(certFile, keyFile string, der []byte, k crypto.Signer) error {
	if err := writeKey(keyFile, k); err != nil {
		return err
	}
	return writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFileAtomic(file string, data []byte, mode os.FileMode) error {
	if old, err := os.ReadFile(file); err == nil && bytes.Equal(old, data) {
		return os.Chmod(file, mode)
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
