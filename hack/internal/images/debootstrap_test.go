package images

import (
	"testing"
)

func TestMountsUnder(t *testing.T) {
	mps, err := mountsUnder("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if len(mps) == 0 || mps[len(mps)-1] != "/proc" {
		t.Fatalf("mounts under /proc: %v", mps)
	}
}
