package main

import (
	"testing"
)

func TestFlags(t *testing.T) {
	for _, v := range []string{"v0.1.0", "v1.2.3-rc.1", "v0.0.0-dev"} {
		if !semverRE.MatchString(v) {
			t.Errorf("%s refused", v)
		}
	}
	for _, v := range []string{"0.1.0", "v1.2", "v01.2.3", "latest"} {
		if semverRE.MatchString(v) {
			t.Errorf("%s accepted", v)
		}
	}
	ps, err := ParsePlatforms("linux/amd64,windows/arm64")
	if err != nil || len(ps) != 2 || ps[1].Exe() != ".exe" || ps[1].ArchiveExt() != ".zip" {
		t.Fatalf("%v %v", ps, err)
	}
	if _, err := ParsePlatforms("linux/386"); err == nil {
		t.Fatal("linux/386 accepted")
	}
}
