// Package e2e holds the end-to-end tests: they run against a real cluster
// (the project's own unless KUBECONFIG names another) and drive the built
// plugins through kubectl's plugin discovery. See docs/testing.md.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/test/e2e/framework"
)

var env *framework.Env

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Fprintln(os.Stderr, "e2e: skipped in -short mode")
		os.Exit(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	var err error
	// KDEV_E2E_KEEP_IMAGES=1 uses the images already in the registry (for
	// a run beside other work on the same cluster whose agent image must
	// not change under it); the agent image must then match bin/.
	env, err = framework.SetupWith(ctx, framework.Options{KeepImages: os.Getenv("KDEV_E2E_KEEP_IMAGES") != ""})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
