package main

import (
	"crypto/sha256"
	"encoding/hex"
)

const testVersion = "v1.2.3"

// fakeArtifacts stands for a release's archives, with made-up checksums.
func fakeArtifacts() []Artifact {
	var arts []Artifact
	for _, pl := range Plugins {
		for _, p := range AllPlatforms {
			file := ArchiveName(pl, testVersion, p)
			sum := sha256.Sum256([]byte(file))
			arts = append(arts, Artifact{Plugin: pl, Platform: p, File: file, Sha256: hex.EncodeToString(sum[:])})
		}
	}
	return arts
}

func sums(arts []Artifact) map[string]string {
	m := map[string]string{}
	for _, a := range arts {
		m[a.File] = a.Sha256
	}
	return m
}
