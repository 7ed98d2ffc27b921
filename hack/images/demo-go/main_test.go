package main

import (
	"net/http/httptest"
	"testing"
)

func TestHandler(t *testing.T) {
	h := newHandler()
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/add/2/3", 200, "5"},
		{"/add/-7/3", 200, "-4"},
		{"/add/99999999999999999999/1", 200, "100000000000000000000"},
		{"/healthz", 200, "ok"},
		{"/add/2/x", 400, ""},
		{"/add/1.5/1", 400, ""},
		{"/add/1e3/1", 400, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.code {
			t.Errorf("%s: code %d, want %d", tc.path, rec.Code, tc.code)
		}
		if tc.code == 200 && rec.Body.String() != tc.body {
			t.Errorf("%s: body %q, want %q", tc.path, rec.Body.String(), tc.body)
		}
	}
}
