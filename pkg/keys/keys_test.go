package keys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDir(t *testing.T) {
	if got, want := Dir("/x/y/config", "/home/u"), "/x/y/kubectl-dev"; got != want {
		t.Errorf("Dir(kubeconfig) = %q, want %q", got, want)
	}
	if got, want := Dir("", "/home/u"), "/home/u/.kube/kubectl-dev"; got != want {
		t.Errorf("Dir(\"\") = %q, want %q", got, want)
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kubectl-dev")
	id, err := LoadOrCreate(dir, "me@test")
	if err != nil {
		t.Fatal(err)
	}
	if !id.Created || !strings.HasPrefix(id.PublicKey, "ssh-ed25519 ") || !strings.HasSuffix(id.PublicKey, " me@test") {
		t.Fatalf("first LoadOrCreate = %+v", id)
	}
	for name, want := range map[string]os.FileMode{"": 0o700, PrivateKeyFile: 0o600, PublicKeyFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode = %o, want %o", filepath.Join(dir, name), st.Mode().Perm(), want)
		}
	}
	again, err := LoadOrCreate(dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.PublicKey != id.PublicKey || again.Fingerprint != id.Fingerprint {
		t.Fatalf("second LoadOrCreate = %+v, want the same key as %+v", again, id)
	}
	// Without the .pub file the public key is derived from the private key.
	os.Remove(filepath.Join(dir, PublicKeyFile))
	derived, err := LoadIdentity(filepath.Join(dir, PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if derived.Fingerprint != id.Fingerprint {
		t.Fatalf("derived fingerprint %s, want %s", derived.Fingerprint, id.Fingerprint)
	}
}

func TestLoadIdentityErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(p, []byte("hello"), 0o600)
	if _, err := LoadIdentity(p); err == nil || !strings.Contains(err.Error(), "neither an SSH private key nor a public key") {
		t.Fatalf("LoadIdentity(junk) = %v", err)
	}
	if _, err := LoadIdentity(p + "-missing"); err == nil {
		t.Fatal("LoadIdentity(missing) succeeded")
	}
}

func TestHostKey(t *testing.T) {
	hk, err := NewHostKey("demo")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := CheckHostKey(hk.PrivatePEM)
	if err != nil {
		t.Fatal(err)
	}
	pk := signer.PublicKey()
	if pk.Type() != "ssh-ed25519" || !strings.HasSuffix(hk.PublicLine, "devagent@demo") {
		t.Fatalf("host key %s %q", pk.Type(), hk.PublicLine)
	}
	if _, err := CheckHostKey([]byte("  ")); err == nil {
		t.Fatal("empty host key accepted")
	}
	if _, err := CheckHostKey([]byte("-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n-----END OPENSSH PRIVATE KEY-----\n")); err == nil {
		t.Fatal("broken host key accepted")
	}
}
