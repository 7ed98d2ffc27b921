package gomod

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	if dir, err := parse("m@v1", []byte(`{"Path":"m","Version":"v1","Dir":"/c/m@v1"}`)); err != nil || dir != "/c/m@v1" {
		t.Errorf("parse = %q, %v", dir, err)
	}
	if _, err := parse("m@v9", []byte(`{"Path":"m","Version":"v9","Error":"unknown revision v9"}`)); err == nil || !strings.Contains(err.Error(), "unknown revision v9") {
		t.Errorf("an error from go mod download: %v", err)
	}
	if _, err := parse("m@v1", []byte(`not json`)); err == nil {
		t.Error("bad JSON: no error")
	}
}
