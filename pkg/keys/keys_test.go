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

func TestMergeAuthorizedKeys(t *testing.T) {
	_, a, _ := NewEd25519("alice")
	_, b, _ := NewEd25519("bob")
	aRenamed := strings.TrimSuffix(a, "alice") + "alice@laptop"

	cases := []struct {
		name     string
		existing string
		add      []string
		want     string
		changed  bool
	}{
		{"empty", "", []string{a}, a + "\n", true},
		{"second developer", a + "\n", []string{b}, a + "\n" + b + "\n", true},
		{"same key again", a + "\n" + b + "\n", []string{a}, a + "\n" + b + "\n", false},
		{"same key, other comment", a + "\n", []string{aRenamed}, a + "\n", false},
		{"foreign lines kept", "# team keys\n" + a + "\n", []string{b}, "# team keys\n" + a + "\n" + b + "\n", true},
		{"blank lines dropped", "\n\n" + a + "\n\n", nil, a + "\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, changed, err := MergeAuthorizedKeys([]byte(c.existing), c.add...)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want || changed != c.changed {
				t.Errorf("got %q (changed %v), want %q (changed %v)", got, changed, c.want, c.changed)
			}
		})
	}
	if _, _, err := MergeAuthorizedKeys(nil, "not a key"); err == nil {
		t.Error("merging a non-key succeeded")
	}
}

func TestParseAuthorizedKeys(t *testing.T) {
	_, a, _ := NewEd25519("alice")
	ks, err := RequireAuthorizedKeys([]byte("# c\n\n" + a + "\n"))
	if err != nil || len(ks) != 1 || ks[0].Comment != "alice" {
		t.Fatalf("RequireAuthorizedKeys = %+v, %v", ks, err)
	}
	if _, err := RequireAuthorizedKeys([]byte("# nothing\n")); err == nil || !strings.Contains(err.Error(), "no public key") {
		t.Fatalf("empty file: %v", err)
	}
	if _, err := ParseAuthorizedKeys([]byte(a + "\nssh-ed25519 garbage\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad line: %v", err)
	}
}
