package keys

import (
	"strings"
	"testing"
)

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
