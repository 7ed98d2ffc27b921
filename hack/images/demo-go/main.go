// Command demo is the Go demo app of the test images: an HTTP server on :8080
// (PORT overrides) that answers /add/{x}/{y} with x+y written the way Python's
// str(x + y) writes it (integers of any size; anything else is a 400), and
// /healthz with "ok".
package main

import (
	"log"
	"math/big"
	"net/http"
	"os"
)

func newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /add/{x}/{y}", func(w http.ResponseWriter, r *http.Request) {
		x, okx := new(big.Int).SetString(r.PathValue("x"), 10)
		y, oky := new(big.Int).SetString(r.PathValue("y"), 10)
		if !okx || !oky {
			http.Error(w, "x and y must be integers", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(new(big.Int).Add(x, y).String()))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	return mux
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	addr := ":" + port
	log.Printf("demo: listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, newHandler()))
}
