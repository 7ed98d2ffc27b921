package images

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestImageDigestDeterministic(t *testing.T) {
	t.Setenv("KDEV_CACHE_DIR", t.TempDir())
	mk := func() v1.Hash {
		l, err := memLayer([]entry{file("pause", 0o755, []byte("x"))})
		if err != nil {
			t.Fatal(err)
		}
		img, err := image(v1.Config{Entrypoint: []string{"/pause"}}, l)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		if len(cf.Config.Env) == 0 {
			t.Fatal("image without Env (runc 1.1.5 needs one)")
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if a, b := mk(), mk(); a != b {
		t.Fatalf("image digests differ: %s %s", a, b)
	}
}
