//go:build linux

package cluster

import (
	"net"
	"slices"
	"testing"
	"time"
)

func TestPKIEnsureReusesAndRepairs(t *testing.T) {
	c := testConfig(t)
	specs, err := c.CertSpecs()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	made, err := c.PKI().Ensure(specs, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(made) != len(specs)+2 { // + ca + sa
		t.Fatalf("made %v", made)
	}
	made, err = c.PKI().Ensure(specs, now)
	if err != nil || len(made) != 0 {
		t.Fatalf("second Ensure made %v, %v", made, err)
	}
	// A changed spec (new SAN) regenerates only that certificate.
	specs[0].DNS = append(specs[0].DNS, "extra.example")
	made, _ = c.PKI().Ensure(specs, now)
	if !slices.Equal(made, []string{"apiserver"}) {
		t.Fatalf("made %v, want [apiserver]", made)
	}
	// Expiring certificates are regenerated (the CA lives longer).
	made, _ = c.PKI().Ensure(specs, now.Add(certValidity))
	if len(made) != len(specs) || slices.Contains(made, "ca") {
		t.Fatalf("made %v", made)
	}
	cert, err := loadCert(c.PKI().Cert("apiserver"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(cert.IPAddresses, net.ParseIP("10.96.0.1").Equal) || !slices.Contains(cert.DNSNames, "kubernetes.default") {
		t.Fatalf("apiserver SANs %v %v", cert.IPAddresses, cert.DNSNames)
	}
	admin, _ := loadCert(c.PKI().Cert("admin"))
	if admin.Subject.CommonName != "kubernetes-admin" || !slices.Equal(admin.Subject.Organization, []string{"system:masters"}) {
		t.Fatalf("admin subject %v", admin.Subject)
	}
	kl, _ := loadCert(c.PKI().Cert("kubelet-client"))
	if kl.Subject.CommonName != "system:node:"+c.NodeName || kl.Subject.Organization[0] != "system:nodes" {
		t.Fatalf("kubelet subject %v", kl.Subject)
	}
}
